"""The Mochi VAE from single files in Genmo's layout: the tiny release file loads to the VAE it stands for, the
released layout is read from shapes alone and uses diffusers' conversion script's names, bad files fail clearly."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from diffusers import AutoencoderKLMochi

from models.errors import StateDictError
from models.families.mochi.latents import MOCHI_LATENT, latent_format_from_config
from models.families.mochi.vae_checkpoint import (
    detect_mochi_vae,
    is_mochi_vae,
    mochi_vae_from_state_dict,
    mochi_vae_to_diffusers,
    mochi_vae_to_original,
)
from models.loading import load_state_dict
from models.tiny.mochi import TINY_MOCHI_VAE, TRANSFORMER_FILE, VAE_FILE, tiny_mochi_vae, write_tiny_mochi_files


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("models")
    write_tiny_mochi_files(root)
    return root


def _released() -> AutoencoderKLMochi:
    """diffusers' default ``AutoencoderKLMochi``, the released VAE, on the meta device."""
    with torch.device("meta"):
        return AutoencoderKLMochi()


def _released_original() -> dict[str, torch.Tensor]:
    released = _released()
    return mochi_vae_to_original(released.state_dict(), released.config)


def test_release_file_builds_the_stand_in(models_dir: Path) -> None:
    state_dict = load_state_dict(models_dir / VAE_FILE)
    assert is_mochi_vae(state_dict)
    model = mochi_vae_from_state_dict(state_dict, torch.float32)
    expected = tiny_mochi_vae().state_dict()
    built = model.state_dict()
    assert built.keys() == expected.keys()
    assert all(torch.equal(built[key], tensor) for key, tensor in expected.items())


def test_config_is_read_from_shapes_alone(models_dir: Path) -> None:
    state_dict = {
        key: torch.empty(tensor.shape, device="meta") for key, tensor in load_state_dict(models_dir / VAE_FILE).items()
    }
    assert dict(detect_mochi_vae(state_dict).config) == dict(TINY_MOCHI_VAE)


def test_released_layout_is_detected_with_the_conversion_scripts_names() -> None:
    original = _released_original()
    spec = detect_mochi_vae(original)
    released = _released().config
    for name, value in spec.config.items():
        assert tuple(value) == tuple(released[name]) if isinstance(value, tuple) else value == released[name], name
    # names diffusers' scripts/convert_mochi_to_diffusers.py reads for the released layout
    for key in (
        "encoder.layers.0.weight",
        "encoder.layers.3.stack.5.bias",
        "encoder.layers.4.layers.0.weight",
        "encoder.layers.6.layers.6.attn_block.attn.qkv.weight",
        "encoder.layers.9.attn_block.norm.bias",
        "encoder.output_norm.weight",
        "decoder.blocks.0.0.weight",
        "decoder.blocks.0.3.stack.5.weight",
        "decoder.blocks.1.blocks.5.stack.0.bias",
        "decoder.blocks.3.proj.weight",
        "decoder.blocks.4.2.stack.3.weight",
        "decoder.output_proj.bias",
    ):
        assert key in original, key
    assert original["encoder.layers.4.layers.1.attn_block.attn.qkv.weight"].shape == (384, 128)
    assert original["decoder.blocks.1.proj.weight"].shape == (6144, 768)
    assert spec.describe() == "Mochi VAE, 12 latent channels, 8x spatial and 6x temporal compression"


def test_to_original_inverts_the_conversion() -> None:
    state = tiny_mochi_vae().state_dict()
    original = mochi_vae_to_original(state, TINY_MOCHI_VAE)
    back = mochi_vae_to_diffusers(dict(original), detect_mochi_vae(original))
    assert back.keys() == state.keys()
    assert all(torch.equal(back[key], tensor) for key, tensor in state.items())


def test_a_combined_checkpoint_prefix_is_found(models_dir: Path) -> None:
    state_dict = {"first_stage_model." + key: t for key, t in load_state_dict(models_dir / VAE_FILE).items()}
    state_dict["model.diffusion_model.other.weight"] = torch.zeros(1)
    model = mochi_vae_from_state_dict(state_dict, torch.float32)
    assert torch.equal(model.decoder.proj_out.weight, tiny_mochi_vae().decoder.proj_out.weight)


def test_one_half_alone_is_refused(models_dir: Path) -> None:
    state_dict = load_state_dict(models_dir / VAE_FILE)
    decoder_only = {key.removeprefix("decoder."): t for key, t in state_dict.items() if key.startswith("decoder.")}
    assert is_mochi_vae(decoder_only)
    with pytest.raises(StateDictError, match="only one half of the autoencoder \\(no encoder\\)"):
        detect_mochi_vae(decoder_only)


def test_a_diffusion_model_is_not_a_vae(models_dir: Path) -> None:
    state_dict = load_state_dict(models_dir / TRANSFORMER_FILE)
    assert not is_mochi_vae(state_dict)
    with pytest.raises(StateDictError, match="not a Mochi VAE"):
        detect_mochi_vae(state_dict)


def test_sides_that_disagree_are_refused(models_dir: Path) -> None:
    state_dict = {k: v for k, v in load_state_dict(models_dir / VAE_FILE).items() if ".blocks.2.blocks.1." not in k}
    with pytest.raises(StateDictError, match="residual blocks per stage but its decoder"):
        detect_mochi_vae(state_dict)


def test_misshapen_tensor_is_named_by_its_file_name(models_dir: Path) -> None:
    state_dict = dict(load_state_dict(models_dir / VAE_FILE))
    state_dict["encoder.layers.3.layers.2.attn_block.attn.qkv.weight"] = torch.zeros(96, 64)
    with pytest.raises(StateDictError, match=r"encoder\.layers\.3\.layers\.2\.attn_block\.attn\.qkv\.weight"):
        mochi_vae_from_state_dict(state_dict, torch.float32)


def test_latent_format_of_diffusers_configs() -> None:
    assert latent_format_from_config(dict(_released().config)) is MOCHI_LATENT
    assert latent_format_from_config({}) is MOCHI_LATENT
    scaled = latent_format_from_config({**_released().config, "scaling_factor": 2.0})
    assert scaled.std == tuple(value / 2.0 for value in MOCHI_LATENT.std) and scaled.mean == MOCHI_LATENT.mean
    assert MOCHI_LATENT.latent_frames(25) == 5 and MOCHI_LATENT.latent_frames(7) == 2
