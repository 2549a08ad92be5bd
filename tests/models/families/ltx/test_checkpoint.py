"""LTX-Video single files: the tiny combined checkpoint and latent upsampler load to the models they stand for; the
released configs are detected from shapes alone and our key mappings agree with diffusers' conversions on the
released layouts; files of other kinds or layouts fail clearly."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import torch
from accelerate import init_empty_weights
from diffusers import AutoencoderKLLTXVideo, LTXVideoTransformer3DModel
from diffusers.loaders.single_file_utils import (
    convert_ltx_transformer_checkpoint_to_diffusers,
    convert_ltx_vae_checkpoint_to_diffusers,
)

from models.errors import StateDictError
from models.families.ltx.checkpoint import (
    ORIGINAL_PREFIX,
    detect_ltx_transformer,
    is_ltx_transformer,
    ltx_transformer_from_state_dict,
    ltx_transformer_to_original,
)
from models.families.ltx.family import LTX_TRANSFORMERS, LTX_VAES
from models.families.ltx.upsampler import detect_ltx_upsampler, is_ltx_upsampler, ltx_upsampler_from_state_dict
from models.families.ltx.vae_checkpoint import detect_ltx_vae, is_ltx_vae, ltx_vae_from_state_dict, ltx_vae_to_original
from models.loading import load_state_dict
from models.tiny.ltx import (
    CHECKPOINT_FILE,
    TINY_LTX_TRANSFORMER_CONFIG,
    TINY_LTX_UPSAMPLER_CONFIG,
    TINY_LTX_VAE_CONFIG,
    UPSAMPLER_FILE,
    tiny_ltx_transformer,
    tiny_ltx_upsampler,
    tiny_ltx_vae,
    write_tiny_ltx_files,
)

# The released 0.9.5 VAE (diffusers' conversion script's config for 0.9.5 / 0.9.7).
RELEASED_VAE = {
    **TINY_LTX_VAE_CONFIG,
    "block_out_channels": (128, 256, 512, 1024, 2048),
    "decoder_block_out_channels": (256, 512, 1024),
    "layers_per_block": (4, 6, 6, 2, 2),
    "decoder_layers_per_block": (5, 5, 5, 5),
}
RELEASED_2B = {"num_attention_heads": 32, "attention_head_dim": 64, "cross_attention_dim": 2048, "num_layers": 28}
RELEASED_13B = {"num_attention_heads": 32, "attention_head_dim": 128, "cross_attention_dim": 4096, "num_layers": 48}


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("models")
    write_tiny_ltx_files(root)
    return root


@pytest.fixture(scope="module")
def combined(models_dir: Path) -> dict[str, torch.Tensor]:
    return load_state_dict(models_dir / CHECKPOINT_FILE)


def meta_state_dict(model_class: type, config: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    with init_empty_weights():
        model = model_class(**config)
    return {key: torch.empty(tensor.shape, device="meta") for key, tensor in model.state_dict().items()}


def assert_same_weights(model: torch.nn.Module, reference: torch.nn.Module) -> None:
    expected = reference.state_dict()
    found = model.state_dict()
    assert found.keys() == expected.keys()
    for key, tensor in found.items():
        assert torch.equal(tensor.float(), expected[key]), key


def subset(config: Mapping[str, Any], keys: Mapping[str, Any]) -> dict[str, Any]:
    return {key: config[key] for key in keys}


def test_combined_checkpoint_holds_both_models(combined: dict[str, torch.Tensor]) -> None:
    assert is_ltx_transformer(combined) and is_ltx_vae(combined)
    assert LTX_TRANSFORMERS.matches(combined) and LTX_VAES.matches(combined)
    assert not is_ltx_upsampler(combined)
    spec = detect_ltx_transformer(combined)
    assert subset(spec.config, TINY_LTX_TRANSFORMER_CONFIG) == dict(TINY_LTX_TRANSFORMER_CONFIG)
    assert spec.describe() == "LTX-Video, dim 128, 2 layers"
    assert dict(detect_ltx_vae(combined).config) == dict(TINY_LTX_VAE_CONFIG)
    assert LTX_TRANSFORMERS.detect(combined, {}).describe() == spec.describe()
    assert LTX_VAES.latent_format(combined).channels == 128


def test_combined_checkpoint_builds_the_tiny_models(combined: dict[str, torch.Tensor]) -> None:
    transformer = LTX_TRANSFORMERS.build(dict(combined), torch.float32, {})
    assert isinstance(transformer, LTXVideoTransformer3DModel) and not transformer.training
    assert_same_weights(transformer, tiny_ltx_transformer())
    vae = LTX_VAES.build(dict(combined), torch.float32)
    assert isinstance(vae, AutoencoderKLLTXVideo)
    assert_same_weights(vae, tiny_ltx_vae())
    assert vae.latents_std.std() > 0.1  # the file's statistics, not diffusers' ones


def test_separate_files_without_prefix_load(combined: dict[str, torch.Tensor]) -> None:
    transformer = {k.removeprefix(ORIGINAL_PREFIX): v for k, v in combined.items() if k.startswith(ORIGINAL_PREFIX)}
    vae = {k.removeprefix("vae."): v for k, v in combined.items() if k.startswith("vae.")}
    assert is_ltx_transformer(transformer) and not is_ltx_vae(transformer)
    assert is_ltx_vae(vae) and not is_ltx_transformer(vae)
    assert_same_weights(ltx_transformer_from_state_dict(transformer, torch.float32), tiny_ltx_transformer())
    bf16 = ltx_vae_from_state_dict(vae, torch.bfloat16)
    assert bf16.encoder.conv_in.conv.weight.dtype == torch.bfloat16 and bf16.latents_mean.dtype == torch.float32


@pytest.mark.parametrize("released", [RELEASED_2B, RELEASED_13B], ids=["2B", "13B"])
def test_transformer_mapping_agrees_with_diffusers_on_released_configs(released: Mapping[str, Any]) -> None:
    config = {**TINY_LTX_TRANSFORMER_CONFIG, **released, "caption_channels": 4096}
    diffusers_keys = meta_state_dict(LTXVideoTransformer3DModel, config)
    original = {ORIGINAL_PREFIX + k: v for k, v in ltx_transformer_to_original(diffusers_keys).items()}
    assert "model.diffusion_model.patchify_proj.weight" in original
    assert "model.diffusion_model.transformer_blocks.0.attn1.q_norm.weight" in original
    assert convert_ltx_transformer_checkpoint_to_diffusers(dict(original)).keys() == diffusers_keys.keys()
    assert subset(detect_ltx_transformer(original).config, config) == config


def test_vae_mapping_agrees_with_diffusers_on_the_released_layout() -> None:
    diffusers_keys = meta_state_dict(AutoencoderKLLTXVideo, RELEASED_VAE)
    original = {"vae." + k: v for k, v in ltx_vae_to_original(diffusers_keys).items()}
    converted = convert_ltx_vae_checkpoint_to_diffusers(dict(original))
    assert converted.keys() == diffusers_keys.keys()
    assert dict(detect_ltx_vae(original).config) == RELEASED_VAE


def test_upsampler_file_loads_with_its_metadata(models_dir: Path) -> None:
    from safetensors import safe_open

    path = models_dir / UPSAMPLER_FILE
    with safe_open(str(path), "pt") as handle:
        metadata = handle.metadata()
    state_dict = load_state_dict(path)
    assert is_ltx_upsampler(state_dict) and not is_ltx_transformer(state_dict)
    assert json.loads(metadata["config"])["mid_channels"] == TINY_LTX_UPSAMPLER_CONFIG["mid_channels"]
    assert dict(detect_ltx_upsampler(state_dict, metadata).config) == dict(TINY_LTX_UPSAMPLER_CONFIG)
    assert_same_weights(ltx_upsampler_from_state_dict(state_dict, torch.float32, metadata), tiny_ltx_upsampler())
    disagreeing = {"config": json.dumps({**TINY_LTX_UPSAMPLER_CONFIG, "num_blocks_per_stage": 4})}
    with pytest.raises(StateDictError, match=r"num_blocks_per_stage 4 \(shapes: 1\)"):
        detect_ltx_upsampler(state_dict, disagreeing)
    with pytest.raises(StateDictError, match=r"only the 2x upsamplers"):
        detect_ltx_upsampler(state_dict, {"config": json.dumps({"rational_resampler": True, "spatial_scale": 1.5})})


def test_wrong_files_fail_clearly(combined: dict[str, torch.Tensor]) -> None:
    vae_only = {k: v for k, v in combined.items() if k.startswith("vae.")}
    with pytest.raises(StateDictError, match=r"not an LTX-Video diffusion model.*looks like a VAE"):
        detect_ltx_transformer(vae_only)
    transformer_only = {k: v for k, v in combined.items() if k.startswith(ORIGINAL_PREFIX)}
    with pytest.raises(StateDictError, match=r"not an LTX-Video VAE"):
        detect_ltx_vae(transformer_only)
    with pytest.raises(StateDictError, match=r"not an LTX-Video latent upsampler"):
        detect_ltx_upsampler(combined)

    gap = {k: v for k, v in transformer_only.items() if ".transformer_blocks.0." not in k}
    with pytest.raises(StateDictError, match=r"transformer_blocks.0 missing"):
        detect_ltx_transformer(gap)
    audio = {**transformer_only, ORIGINAL_PREFIX + "audio_patchify_proj.weight": torch.zeros(1)}
    with pytest.raises(StateDictError, match=r"audio_patchify_proj.*LTX-2"):
        detect_ltx_transformer(audio)
    misshapen = dict(transformer_only)
    misshapen[ORIGINAL_PREFIX + "transformer_blocks.1.attn1.q_norm.weight"] = torch.zeros(7)
    with pytest.raises(StateDictError, match=r"transformer_blocks.1.attn1.q_norm.weight is \(7,\)"):
        ltx_transformer_from_state_dict(misshapen, torch.float32)

    old_layout = {k.replace("down_blocks.1.conv.conv.", "down_blocks.1.conv."): v for k, v in vae_only.items()}
    with pytest.raises(StateDictError, match=r"0.9.0 / 0.9.1 VAE"):
        detect_ltx_vae(old_layout)
    incomplete = {k: v for k, v in vae_only.items() if "decoder.up_blocks.3." not in k}
    with pytest.raises(StateDictError, match=r"numbered with gaps"):
        detect_ltx_vae(incomplete)
