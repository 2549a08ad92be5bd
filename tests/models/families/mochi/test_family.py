"""The Mochi entries the generic loaders dispatch over: each claims its own files only, detects, builds and
describes them, and reads diffusers configs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from diffusers import AutoencoderKLMochi, MochiTransformer3DModel

from models.families.mochi.adapter import MochiAdapter
from models.families.mochi.family import MOCHI_TRANSFORMERS, MOCHI_VAES
from models.families.mochi.latents import MOCHI_LATENT
from models.families.wan.checkpoint import wan_transformer_to_original
from models.families.wan.vae_checkpoint import wan_vae_to_original
from models.loading import load_state_dict
from models.tiny.mochi import TRANSFORMER_FILE, VAE_FILE, tiny_mochi_transformer, write_tiny_mochi_files
from models.tiny.wan import tiny_wan_transformer, tiny_wan_vae


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, torch.Tensor]]:
    root: Path = tmp_path_factory.mktemp("models")
    write_tiny_mochi_files(root)
    return {
        "transformer": load_state_dict(root / TRANSFORMER_FILE),
        "vae": load_state_dict(root / VAE_FILE),
        "wan": wan_transformer_to_original(tiny_wan_transformer("wan2.1_t2v_1.3B_fp16").state_dict()),
        "wan_vae": wan_vae_to_original(tiny_wan_vae("wan_2.1_vae").state_dict()),
    }


def test_each_entry_claims_only_its_files(files: dict[str, dict[str, torch.Tensor]]) -> None:
    assert [name for name, sd in files.items() if MOCHI_TRANSFORMERS.matches(sd)] == ["transformer"]
    assert [name for name, sd in files.items() if MOCHI_VAES.matches(sd)] == ["vae"]


def test_transformer_entry_detects_and_builds(files: dict[str, dict[str, torch.Tensor]]) -> None:
    adapter = MOCHI_TRANSFORMERS.detect(files["transformer"], {})
    assert isinstance(adapter, MochiAdapter) and adapter.latent_format is MOCHI_LATENT
    assert adapter.describe() == "Mochi, dim 64, 2 layers, text width 32"
    module = MOCHI_TRANSFORMERS.build(dict(files["transformer"]), torch.bfloat16, {})
    assert isinstance(module, MochiTransformer3DModel) and module.proj_out.weight.dtype == torch.bfloat16
    assert "MochiTransformer3DModel" in MOCHI_TRANSFORMERS.diffusers_classes
    from_config = MOCHI_TRANSFORMERS.adapter_from_config(dict(tiny_mochi_transformer().config))
    assert from_config.describe() == adapter.describe()


def test_vae_entry_detects_and_builds(files: dict[str, dict[str, torch.Tensor]]) -> None:
    assert MOCHI_VAES.latent_format(files["vae"]) is MOCHI_LATENT
    module = MOCHI_VAES.build(dict(files["vae"]), torch.float32)
    assert isinstance(module, AutoencoderKLMochi)
    assert MOCHI_VAES.latent_format_from_config(dict(module.config)) is MOCHI_LATENT
    assert MOCHI_VAES.diffusers_classes == ("AutoencoderKLMochi",)


def test_vae_codec_round_trip_shapes(files: dict[str, dict[str, torch.Tensor]]) -> None:
    module = MOCHI_VAES.build(dict(files["vae"]), torch.float32)
    video = torch.rand(1, 3, 13, 32, 48) * 2 - 1
    with torch.no_grad():
        latent = MOCHI_VAES.codec.encode(module, video)
        assert latent.shape == (1, 12, MOCHI_LATENT.latent_frames(13), 4, 6)
        assert MOCHI_VAES.codec.decode(module, latent).shape == video.shape
