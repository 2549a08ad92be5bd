"""Mochi diffusion models from single files in Genmo's layout: the tiny release file loads to the model it stands
for; the renaming agrees with diffusers' own single-file conversion; the released config is read from shapes alone;
bad files fail clearly."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from diffusers import MochiTransformer3DModel
from diffusers.loaders.single_file_utils import convert_mochi_transformer_checkpoint_to_diffusers

from models.errors import StateDictError
from models.families.mochi.checkpoint import (
    ORIGINAL_PREFIX,
    detect_mochi_transformer,
    is_mochi_transformer,
    mochi_spec_from_config,
    mochi_transformer_from_state_dict,
    mochi_transformer_to_diffusers,
    mochi_transformer_to_original,
)
from models.loading import load_state_dict
from models.scaled_fp8 import dequantize_scaled, quantize_scaled
from models.tiny.mochi import (
    TINY_MOCHI_TRANSFORMER,
    TRANSFORMER_FILE,
    VAE_FILE,
    tiny_mochi_transformer,
    write_tiny_mochi_files,
)

RELEASED = {  # genmo/mochi-1-preview transformer/config.json
    "patch_size": 2,
    "num_attention_heads": 24,
    "attention_head_dim": 128,
    "num_layers": 48,
    "pooled_projection_dim": 1536,
    "in_channels": 12,
    "out_channels": 12,
    "qk_norm": "rms_norm",
    "text_embed_dim": 4096,
    "time_embed_dim": 256,
    "activation_fn": "swiglu",
    "max_sequence_length": 256,
}


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("models")
    write_tiny_mochi_files(root)
    return root


def _meta(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {key: torch.empty(tensor.shape, dtype=tensor.dtype, device="meta") for key, tensor in state_dict.items()}


def test_release_file_builds_the_stand_in(models_dir: Path) -> None:
    state_dict = load_state_dict(models_dir / TRANSFORMER_FILE)
    assert is_mochi_transformer(state_dict)
    model = mochi_transformer_from_state_dict(state_dict, torch.float32)
    expected = tiny_mochi_transformer().state_dict()
    built = model.state_dict()
    assert built.keys() == expected.keys()
    assert all(torch.equal(built[key], tensor) for key, tensor in expected.items())
    assert not model.training


def test_config_is_read_from_shapes_alone(models_dir: Path) -> None:
    state_dict = _meta(load_state_dict(models_dir / TRANSFORMER_FILE))
    assert dict(detect_mochi_transformer(state_dict).config) == dict(TINY_MOCHI_TRANSFORMER)


def test_released_config_is_detected() -> None:
    with torch.device("meta"):
        released = MochiTransformer3DModel()
    original = mochi_transformer_to_original(released.state_dict())
    spec = detect_mochi_transformer({ORIGINAL_PREFIX + key: tensor for key, tensor in original.items()})
    assert dict(spec.config) == RELEASED
    assert spec.describe() == "Mochi, dim 3072, 48 layers, text width 4096"


def test_renaming_agrees_with_diffusers_single_file_conversion() -> None:
    """diffusers' conversion knows only 48 layers: a narrow 48-layer model, through both."""
    config = {**TINY_MOCHI_TRANSFORMER, "num_layers": 48, "num_attention_heads": 1}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = MochiTransformer3DModel(**config)
    original = {key: tensor.detach() for key, tensor in mochi_transformer_to_original(model.state_dict()).items()}
    theirs = convert_mochi_transformer_checkpoint_to_diffusers({ORIGINAL_PREFIX + k: v for k, v in original.items()})
    ours = mochi_transformer_to_diffusers(dict(original), detect_mochi_transformer(original))
    assert ours.keys() == theirs.keys() == model.state_dict().keys()
    assert all(torch.equal(ours[key], theirs[key]) for key in ours)


def test_to_original_inverts_the_conversion() -> None:
    state = tiny_mochi_transformer().state_dict()
    original = mochi_transformer_to_original(state)
    assert "blocks.1.mod_y.weight" in original and "blocks.0.attn.qkv_y.weight" in original
    back = mochi_transformer_to_diffusers(dict(original), detect_mochi_transformer(original))
    assert back.keys() == state.keys()
    assert all(torch.equal(back[key], tensor) for key, tensor in state.items())


def test_diffusers_config_gives_the_detected_spec() -> None:
    assert dict(mochi_spec_from_config(tiny_mochi_transformer().config).config) == dict(TINY_MOCHI_TRANSFORMER)
    assert dict(mochi_spec_from_config({"_class_name": "MochiTransformer3DModel"}).config) == RELEASED


def test_scaled_fp8_file_builds_its_dequantized_weights(models_dir: Path) -> None:
    state_dict = load_state_dict(models_dir / TRANSFORMER_FILE)
    layers = [key.removesuffix(".weight") for key in state_dict if ".attn.qkv_" in key or ".mlp_" in key]
    quantized, metadata = quantize_scaled(state_dict, layers, "scale_weight", marker_prefix=ORIGINAL_PREFIX)
    model = mochi_transformer_from_state_dict(quantized, torch.float32, metadata)
    restored = dequantize_scaled(quantized, torch.float32, metadata)
    qkv = restored[ORIGINAL_PREFIX + "blocks.0.attn.qkv_x.weight"]
    assert torch.equal(model.transformer_blocks[0].attn1.to_k.weight, qkv.chunk(3)[1])
    assert (
        model.transformer_blocks[0].attn1.to_k.weight - tiny_mochi_transformer().transformer_blocks[0].attn1.to_k.weight
    ).abs().max() < 0.05


def test_a_vae_file_is_not_a_diffusion_model(models_dir: Path) -> None:
    state_dict = load_state_dict(models_dir / VAE_FILE)
    assert not is_mochi_transformer(state_dict)
    with pytest.raises(StateDictError, match=r"not a Mochi diffusion model.*looks like a VAE"):
        detect_mochi_transformer(state_dict)


def test_missing_block_is_named(models_dir: Path) -> None:
    state_dict = load_state_dict(models_dir / TRANSFORMER_FILE)
    state_dict = {key: tensor for key, tensor in state_dict.items() if ".blocks.0." not in key}
    with pytest.raises(StateDictError, match=r"blocks\.0 missing"):
        detect_mochi_transformer(state_dict)


def test_misshapen_tensor_is_named_by_its_file_name(models_dir: Path) -> None:
    state_dict = dict(load_state_dict(models_dir / TRANSFORMER_FILE))
    key = ORIGINAL_PREFIX + "blocks.1.mlp_x.w2.weight"
    state_dict[key] = state_dict[key][:, :-2]
    with pytest.raises(StateDictError, match=r"blocks\.1\.mlp_x\.w2\.weight is \(64, \d+\), expected"):
        mochi_transformer_from_state_dict(state_dict, torch.float32)


def test_unknown_modules_are_refused(models_dir: Path) -> None:
    state_dict = dict(load_state_dict(models_dir / TRANSFORMER_FILE))
    state_dict[ORIGINAL_PREFIX + "motion_adapter.weight"] = torch.zeros(2)
    with pytest.raises(StateDictError, match="modules Reelgraph does not know \\(motion_adapter\\)"):
        detect_mochi_transformer(state_dict)
