"""HunyuanVideo single files: detection from shapes, conversion both ways (and agreement with diffusers' own
conversion at the released width), the VAE, and clear errors for files of another kind."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from accelerate import init_empty_weights
from diffusers import HunyuanVideoTransformer3DModel
from diffusers.loaders.single_file_utils import convert_hunyuan_video_transformer_to_diffusers
from safetensors.torch import load_file

from models.errors import StateDictError
from models.families.hunyuan.checkpoint import (
    ORIGINAL_PREFIX,
    _convert_keys,
    detect_hunyuan_transformer,
    hunyuan_transformer_to_original,
    is_hunyuan_transformer,
)
from models.families.hunyuan.family import (
    HUNYUAN_TRANSFORMERS,
    HUNYUAN_VAES,
    hunyuan_adapter_from_config,
    hunyuan_latent_format_from_config,
)
from models.families.hunyuan.latents import HUNYUAN_LATENT
from models.families.hunyuan.vae_checkpoint import detect_hunyuan_vae, is_hunyuan_vae
from models.tiny.hunyuan import (
    TINY_HUNYUAN_DIFFUSION_MODELS,
    TINY_HUNYUAN_VAE,
    TINY_TEXT_DIM,
    tiny_hunyuan_transformer,
    tiny_hunyuan_vae,
)

T2V = "hunyuan_video_t2v_720p_bf16"
CONCAT = "hunyuan_video_image_to_video_720p_bf16"
REPLACE = "hunyuan_video_v2_replace_image_to_video_720p_bf16"


def _file(models_dir: Path, stem: str) -> dict[str, torch.Tensor]:
    folder = "vae" if stem == TINY_HUNYUAN_VAE else "diffusion_models"
    return load_file(models_dir / folder / f"{stem}.safetensors")


def _meta(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {key: torch.empty(tensor.shape, dtype=tensor.dtype, device="meta") for key, tensor in state_dict.items()}


@pytest.mark.parametrize(
    ("stem", "variant", "in_channels", "condition", "guidance"),
    [
        (T2V, "t2v", 16, "token_replace", True),
        (REPLACE, "t2v", 16, "token_replace", True),
        (CONCAT, "i2v_concat", 33, "latent_concat", False),
    ],
)
def test_detects_config_from_shapes(
    hunyuan_dir: Path, stem: str, variant: str, in_channels: int, condition: str, guidance: bool
) -> None:
    spec = detect_hunyuan_transformer(_meta(_file(hunyuan_dir, stem)))
    assert spec.variant == variant
    config = spec.config
    assert config["in_channels"] == in_channels and config["out_channels"] == 16
    assert config["image_condition_type"] == condition and config["guidance_embeds"] is guidance
    assert (config["num_attention_heads"], config["attention_head_dim"]) == (2, 128)
    assert (config["num_layers"], config["num_single_layers"], config["num_refiner_layers"]) == (1, 1, 1)
    assert (config["patch_size"], config["patch_size_t"], config["mlp_ratio"]) == (2, 1, 4.0)
    assert config["text_embed_dim"] == TINY_TEXT_DIM


@pytest.mark.parametrize("stem", list(TINY_HUNYUAN_DIFFUSION_MODELS))
def test_files_build_the_tiny_weights(hunyuan_dir: Path, stem: str) -> None:
    model = HUNYUAN_TRANSFORMERS.build(_file(hunyuan_dir, stem), torch.float32, {})
    expected = tiny_hunyuan_transformer(TINY_HUNYUAN_DIFFUSION_MODELS[stem]).state_dict()
    built = model.state_dict()
    assert built.keys() == expected.keys()
    assert all(torch.equal(built[key], expected[key]) for key in expected)


def test_unprefixed_and_bfloat16_build(hunyuan_dir: Path) -> None:
    tensors = {key.removeprefix(ORIGINAL_PREFIX): value for key, value in _file(hunyuan_dir, T2V).items()}
    assert is_hunyuan_transformer(tensors)
    model = HUNYUAN_TRANSFORMERS.build(tensors, torch.bfloat16, {})
    assert model.x_embedder.proj.weight.dtype == torch.bfloat16


def test_conversion_agrees_with_diffusers_at_the_released_width() -> None:
    """The released width 3072 (diffusers' conversion assumes it): every tensor lands under the same name with the
    same values. Tensors are ``[rows, 1]`` stand-ins, as only rows are split and swapped."""
    with init_empty_weights():
        real = HunyuanVideoTransformer3DModel(num_layers=1, num_single_layers=1, num_refiner_layers=1)
    original = hunyuan_transformer_to_original(real.state_dict())
    generator = torch.Generator().manual_seed(0)
    small = {key: torch.randn(tensor.shape[0], 1, generator=generator) for key, tensor in original.items()}
    ours = _convert_keys(dict(small), width=3072)
    theirs = convert_hunyuan_video_transformer_to_diffusers(dict(small))
    assert ours.keys() == theirs.keys() == real.state_dict().keys()
    assert all(torch.equal(ours[key], theirs[key]) for key in ours)


def test_reverse_conversion_round_trips() -> None:
    model = tiny_hunyuan_transformer("i2v_concat")
    original = hunyuan_transformer_to_original(model.state_dict())
    back = _convert_keys(dict(original), width=256)
    state = model.state_dict()
    assert back.keys() == state.keys()
    assert all(torch.equal(back[key], state[key]) for key in state)
    assert "single_blocks.0.linear1.weight" in original and "double_blocks.0.img_attn_qkv.weight" in original


def test_vae_file(hunyuan_dir: Path) -> None:
    tensors = _file(hunyuan_dir, TINY_HUNYUAN_VAE)
    assert is_hunyuan_vae(tensors) and not is_hunyuan_transformer(tensors)
    spec = detect_hunyuan_vae(_meta(tensors))
    assert spec.config["block_out_channels"] == (32, 32, 32, 32) and spec.config["layers_per_block"] == 1
    assert HUNYUAN_VAES.latent_format(_meta(tensors)) is HUNYUAN_LATENT
    vae = HUNYUAN_VAES.build({"vae." + key: value for key, value in tensors.items()}, torch.float32)
    expected = tiny_hunyuan_vae().state_dict()
    assert all(torch.equal(vae.state_dict()[key], expected[key]) for key in expected)
    assert (vae.spatial_compression_ratio, vae.temporal_compression_ratio) == (8, 4)


def test_latent_format_scales_like_the_pipeline() -> None:
    raw = torch.randn(1, 16, 2, 4, 4)
    assert torch.allclose(HUNYUAN_LATENT.process_in(raw), raw * 0.476986, rtol=1e-6)
    assert hunyuan_latent_format_from_config({"latent_channels": 16, "scaling_factor": 0.476986}) is HUNYUAN_LATENT


def test_adapter_from_diffusers_config() -> None:
    replace = hunyuan_adapter_from_config(dict(tiny_hunyuan_transformer("i2v_replace").config))
    assert replace.spec.variant == "i2v_replace" and replace.spec.token_replace
    plain = hunyuan_adapter_from_config({"in_channels": 16, "text_embed_dim": 32, "rope_axes_dim": [16, 56, 56]})
    assert plain.spec.variant == "t2v" and not plain.spec.token_replace


def test_other_files_are_refused(hunyuan_dir: Path) -> None:
    vae = _meta(_file(hunyuan_dir, TINY_HUNYUAN_VAE))
    assert not HUNYUAN_TRANSFORMERS.matches(vae)
    with pytest.raises(StateDictError, match=r"not a HunyuanVideo diffusion model.*looks like a VAE"):
        detect_hunyuan_transformer(vae)
    transformer = _meta(_file(hunyuan_dir, T2V))
    assert not HUNYUAN_VAES.matches(transformer)
    with pytest.raises(StateDictError, match="not a HunyuanVideo VAE"):
        detect_hunyuan_vae(transformer)


def test_incomplete_and_unknown_files_name_the_problem(hunyuan_dir: Path) -> None:
    tensors = _meta(_file(hunyuan_dir, T2V))
    del tensors[ORIGINAL_PREFIX + "final_layer.linear.weight"]
    with pytest.raises(StateDictError, match=r"final_layer\.linear\.weight, which is missing"):
        detect_hunyuan_transformer(tensors)
    later = _meta(_file(hunyuan_dir, T2V)) | {ORIGINAL_PREFIX + "byt5_in.fc1.weight": torch.empty(2, 2, device="meta")}
    with pytest.raises(StateDictError, match="byt5_in"):
        detect_hunyuan_transformer(later)
    skyreels = _meta(_file(hunyuan_dir, T2V))
    skyreels[ORIGINAL_PREFIX + "img_in.proj.weight"] = torch.empty(256, 32, 1, 2, 2, device="meta")
    with pytest.raises(StateDictError, match="32 input and 16 output channels"):
        detect_hunyuan_transformer(skyreels)
    vae = _meta(_file(hunyuan_dir, TINY_HUNYUAN_VAE))
    vae["post_quant_conv.weight"] = torch.empty(32, 32, 1, 1, 1, device="meta")
    with pytest.raises(StateDictError, match="32 latent channels"):
        detect_hunyuan_vae(vae)


def test_misshapen_tensor_is_named(hunyuan_dir: Path) -> None:
    tensors = _file(hunyuan_dir, T2V)
    key = ORIGINAL_PREFIX + "double_blocks.0.img_mlp.fc2.bias"
    tensors[key] = torch.zeros(7, dtype=torch.bfloat16)
    with pytest.raises(StateDictError, match=r"double_blocks\.0\.img_mlp\.fc2\.bias is \(7,\)"):
        HUNYUAN_TRANSFORMERS.build(tensors, torch.float32, {})
