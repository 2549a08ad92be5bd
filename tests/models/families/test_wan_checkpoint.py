"""Wan diffusion models from single files: every tiny release file loads to the model it stands for, and to the
same model as its diffusers folder; the release configs are detected from shapes alone; bad files fail clearly."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import torch
from diffusers import WanTransformer3DModel

from models.errors import StateDictError
from models.families.wan.checkpoint import (
    ORIGINAL_PREFIX,
    detect_wan_transformer,
    is_wan_transformer,
    wan_transformer_from_state_dict,
    wan_transformer_to_original,
)
from models.loading import load_diffusers_folder, load_state_dict
from models.tiny.wan import TINY_WAN_DIFFUSION_MODELS, tiny_wan_transformer, write_tiny_wan_files

STEMS = list(TINY_WAN_DIFFUSION_MODELS)
FP8_STEMS = [stem for stem, tiny in TINY_WAN_DIFFUSION_MODELS.items() if tiny.storage.startswith("fp8")]
FOLDER_STEMS = [stem for stem, tiny in TINY_WAN_DIFFUSION_MODELS.items() if tiny.variant != "camera"]
"""Models diffusers has a class for (Fun camera models are single files only: their adapter is ours)."""


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("models")
    write_tiny_wan_files(root)
    return root


def file_of(models_dir: Path, stem: str) -> dict[str, torch.Tensor]:
    return load_state_dict(models_dir / "diffusion_models" / f"{stem}.safetensors")


def output(model: torch.nn.Module, config: Mapping[str, Any], dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The model's prediction on a fixed small input (2 latent frames of 8x8, 8 text tokens, CLIP features)."""
    generator = torch.Generator().manual_seed(1)
    latent = torch.randn(1, config["in_channels"], 2, 8, 8, generator=generator)
    text = torch.randn(1, 8, config["text_dim"], generator=generator)
    image = None
    if config["image_dim"] is not None:
        images = 2 if config["pos_embed_seq_len"] else 1  # first-last-frame: both frames' features, stacked
        tokens = config["pos_embed_seq_len"] // 2 if config["pos_embed_seq_len"] else 5
        image = torch.randn(images, tokens, config["image_dim"], generator=generator).to(dtype)
    control = {}
    if "vace_in_channels" in config:  # VACE: a control input the size of the latent
        hints = torch.randn(1, config["vace_in_channels"], 2, 8, 8, generator=generator)
        control = {"control_hidden_states": hints.to(dtype)}
    if "control_in_channels" in config:  # Fun camera: rays at the video's size (8x the latent's)
        rays = torch.randn(1, config["control_in_channels"], 2, 64, 64, generator=generator)
        control = {"camera_embedding": rays.to(dtype)}
    with torch.no_grad():
        result = model(latent.to(dtype), torch.tensor([700.0]), text.to(dtype), image, **control, return_dict=False)
    return result[0].float()


def assert_same_model(model: torch.nn.Module, reference: torch.nn.Module) -> None:
    """Same parameter names, dtypes and values."""
    parameters = dict(reference.named_parameters())
    assert {name for name, _ in model.named_parameters()} == parameters.keys()
    for name, parameter in model.named_parameters():
        assert parameter.dtype == parameters[name].dtype, name
        assert torch.equal(parameter, parameters[name]), name


def relative_error(result: torch.Tensor, reference: torch.Tensor) -> float:
    return ((result - reference).norm() / reference.norm()).item()


@pytest.mark.parametrize("stem", STEMS)
def test_each_tiny_file_loads_as_the_model_it_stands_for(models_dir: Path, stem: str) -> None:
    tiny = TINY_WAN_DIFFUSION_MODELS[stem]
    state_dict = file_of(models_dir, stem)
    assert is_wan_transformer(state_dict)
    spec = detect_wan_transformer(state_dict)
    assert spec.variant == tiny.variant
    assert dict(spec.config) == dict(tiny.config)
    assert spec.describe() == f"Wan {tiny.variant}, dim 256, 2 layers, in {tiny.config['in_channels']} channels"

    loaded = wan_transformer_from_state_dict(state_dict, torch.float32)
    result = output(loaded, tiny.config)
    # The file's values (fp16, or the fp8-restored ones) are what tiny_wan_transformer holds.
    assert (result - output(tiny_wan_transformer(stem), tiny.config)).abs().max() < 1e-5
    # ... which is the float32 original rounded: fp16 barely moves the output, bf16 (8 bits of mantissa) a little
    # more, fp8 within its ~2^-4 step.
    error = relative_error(result, output(tiny_wan_transformer(stem, rounded=False), tiny.config))
    assert 0 < error < (0.1 if stem in FP8_STEMS else 2e-2 if tiny.storage == "bf16" else 2e-3)


@pytest.mark.parametrize("stem", FOLDER_STEMS)
def test_single_file_and_diffusers_folder_give_identical_output(models_dir: Path, stem: str, tmp_path: Path) -> None:
    tiny = TINY_WAN_DIFFUSION_MODELS[stem]
    tiny_wan_transformer(stem).save_pretrained(tmp_path / stem)
    from_folder = load_diffusers_folder(tmp_path / stem, torch_dtype=torch.float32)
    from_file = wan_transformer_from_state_dict(file_of(models_dir, stem), torch.float32)
    assert_same_model(from_file, from_folder)
    # Equal weights; the outputs differ by float rounding at most (CPU kernels vary with the weights' memory
    # alignment, and from_pretrained's memory-mapped weights are not 64-byte aligned).
    assert (output(from_file, tiny.config) - output(from_folder, tiny.config)).abs().max() < 1e-5


def test_half_precision_loads_match_from_pretrained_parameter_for_parameter(models_dir: Path, tmp_path: Path) -> None:
    stem = "wan2.1_i2v_480p_14B_fp16"
    tiny = TINY_WAN_DIFFUSION_MODELS[stem]
    tiny_wan_transformer(stem).save_pretrained(tmp_path)
    from_folder = WanTransformer3DModel.from_pretrained(tmp_path, torch_dtype=torch.bfloat16)
    from_file = wan_transformer_from_state_dict(file_of(models_dir, stem), torch.bfloat16)
    assert_same_model(from_file, from_folder)  # norms, modulation, time embedding stay float32 in both
    assert from_file.scale_shift_table.dtype == torch.float32
    assert from_file.blocks[0].attn1.to_q.weight.dtype == torch.bfloat16
    difference = output(from_file, tiny.config, torch.bfloat16) - output(from_folder, tiny.config, torch.bfloat16)
    assert difference.abs().max() < 1e-2  # bfloat16 activations: one rounding step


def test_scaled_fp8_files_restore_straight_to_the_load_dtype(models_dir: Path) -> None:
    state_dict = file_of(models_dir, next(stem for stem in FP8_STEMS if stem.endswith("_fp8_scaled")))
    assert state_dict[f"{ORIGINAL_PREFIX}blocks.0.ffn.0.weight"].dtype == torch.float8_e4m3fn
    assert f"{ORIGINAL_PREFIX}blocks.0.ffn.0.scale_weight" in state_dict
    model = wan_transformer_from_state_dict(state_dict, torch.float16)
    assert model.blocks[0].ffn.net[0].proj.weight.dtype == torch.float16
    assert model.blocks[0].norm2.weight.dtype == torch.float32  # the cross-attention norm, kept as diffusers does


def test_plain_fp8_weights_are_cast(models_dir: Path) -> None:
    stem = "wan2.1_t2v_1.3B_fp16"
    state_dict = {
        key: tensor.to(torch.float8_e4m3fn) if tensor.dim() == 2 else tensor
        for key, tensor in file_of(models_dir, stem).items()
    }
    model = wan_transformer_from_state_dict(state_dict, torch.float32)
    reference = output(tiny_wan_transformer(stem), TINY_WAN_DIFFUSION_MODELS[stem].config)
    assert relative_error(output(model, TINY_WAN_DIFFUSION_MODELS[stem].config), reference) < 0.2


def test_to_original_inverts_the_conversion_exactly() -> None:
    model = tiny_wan_transformer("wan2.1_flf2v_720p_14B_fp16", rounded=False)  # every kind of tensor a model has
    original = wan_transformer_to_original(model.state_dict())
    assert set(original) == set(release_shapes(256, 512, 2, 36, 16, text_dim=64, image_dim=160, emb_pos=514))
    loaded = wan_transformer_from_state_dict(original, torch.float32)
    back = wan_transformer_to_original(loaded.state_dict())
    assert back.keys() == original.keys()
    assert all(torch.equal(back[key], original[key]) for key in original)


def release_shapes(
    dim: int,
    ffn: int,
    layers: int,
    in_channels: int,
    out_channels: int,
    text_dim: int = 4096,
    image_dim: int | None = None,
    emb_pos: int | None = None,
    k_img: bool | None = None,
) -> dict[str, torch.Tensor]:
    """Meta tensors named and shaped as in Wan's original ``WanModel`` (no memory is allocated)."""
    freq_dim, patch = 256, (1, 2, 2)
    shapes: dict[str, tuple[int, ...]] = {
        "patch_embedding.weight": (dim, in_channels, *patch),
        "patch_embedding.bias": (dim,),
        "text_embedding.0.weight": (dim, text_dim),
        "text_embedding.0.bias": (dim,),
        "text_embedding.2.weight": (dim, dim),
        "text_embedding.2.bias": (dim,),
        "time_embedding.0.weight": (dim, freq_dim),
        "time_embedding.0.bias": (dim,),
        "time_embedding.2.weight": (dim, dim),
        "time_embedding.2.bias": (dim,),
        "time_projection.1.weight": (6 * dim, dim),
        "time_projection.1.bias": (6 * dim,),
        "head.head.weight": (out_channels * math.prod(patch), dim),
        "head.head.bias": (out_channels * math.prod(patch),),
        "head.modulation": (1, 2, dim),
    }
    image_attention = image_dim is not None if k_img is None else k_img
    for i in range(layers):
        block = f"blocks.{i}."
        shapes[block + "modulation"] = (1, 6, dim)
        shapes[block + "norm3.weight"] = shapes[block + "norm3.bias"] = (dim,)
        for attention in ("self_attn", "cross_attn"):
            for name in ("q", "k", "v", "o"):
                shapes[f"{block}{attention}.{name}.weight"] = (dim, dim)
                shapes[f"{block}{attention}.{name}.bias"] = (dim,)
            shapes[f"{block}{attention}.norm_q.weight"] = shapes[f"{block}{attention}.norm_k.weight"] = (dim,)
        if image_attention:
            for name in ("k_img", "v_img"):
                shapes[f"{block}cross_attn.{name}.weight"] = (dim, dim)
                shapes[f"{block}cross_attn.{name}.bias"] = (dim,)
            shapes[f"{block}cross_attn.norm_k_img.weight"] = (dim,)
        shapes[block + "ffn.0.weight"], shapes[block + "ffn.0.bias"] = (ffn, dim), (ffn,)
        shapes[block + "ffn.2.weight"], shapes[block + "ffn.2.bias"] = (dim, ffn), (dim,)
    if image_dim is not None:
        shapes["img_emb.proj.0.weight"] = shapes["img_emb.proj.0.bias"] = (image_dim,)
        shapes["img_emb.proj.1.weight"], shapes["img_emb.proj.1.bias"] = (image_dim, image_dim), (image_dim,)
        shapes["img_emb.proj.3.weight"], shapes["img_emb.proj.3.bias"] = (dim, image_dim), (dim,)
        shapes["img_emb.proj.4.weight"] = shapes["img_emb.proj.4.bias"] = (dim,)
    if emb_pos is not None:
        shapes["img_emb.emb_pos"] = (1, emb_pos, image_dim or 0)
    return {name: torch.empty(shape, device="meta") for name, shape in shapes.items()}


def diffusers_config(**values: Any) -> dict[str, Any]:
    """A transformer config.json of the Wan-AI diffusers releases: the values they share, then ``values``."""
    shared = {
        "patch_size": (1, 2, 2),
        "attention_head_dim": 128,
        "text_dim": 4096,
        "freq_dim": 256,
        "cross_attn_norm": True,
        "qk_norm": "rms_norm_across_heads",
        "eps": 1e-6,
        "image_dim": None,
        "added_kv_proj_dim": None,
        "rope_max_seq_len": 1024,
        "pos_embed_seq_len": None,
    }
    return {**shared, **values}


WAN_14B = {"num_attention_heads": 40, "ffn_dim": 13824, "num_layers": 40, "out_channels": 16}
RELEASES = {
    # name: (original shapes, variant, the release's diffusers config)
    "Wan2.1-T2V-1.3B": (
        {"dim": 1536, "ffn": 8960, "layers": 30, "in_channels": 16, "out_channels": 16},
        "t2v",
        diffusers_config(num_attention_heads=12, ffn_dim=8960, num_layers=30, in_channels=16, out_channels=16),
    ),
    "Wan2.1-I2V-14B-480P": (
        {"dim": 5120, "ffn": 13824, "layers": 40, "in_channels": 36, "out_channels": 16, "image_dim": 1280},
        "i2v",
        diffusers_config(**WAN_14B, in_channels=36, image_dim=1280, added_kv_proj_dim=5120),
    ),
    "Wan2.1-FLF2V-14B-720P": (
        {"dim": 5120, "ffn": 13824, "layers": 40, "in_channels": 36, "out_channels": 16, "image_dim": 1280}
        | {"emb_pos": 514},
        "flf2v",
        diffusers_config(**WAN_14B, in_channels=36, image_dim=1280, added_kv_proj_dim=5120, pos_embed_seq_len=514),
    ),
    "Wan2.2-T2V-A14B": (
        {"dim": 5120, "ffn": 13824, "layers": 40, "in_channels": 16, "out_channels": 16},
        "t2v",
        diffusers_config(**WAN_14B, in_channels=16),
    ),
    "Wan2.2-I2V-A14B": (
        {"dim": 5120, "ffn": 13824, "layers": 40, "in_channels": 36, "out_channels": 16},
        "i2v",
        diffusers_config(**WAN_14B, in_channels=36),
    ),
    "Wan2.2-TI2V-5B": (
        {"dim": 3072, "ffn": 14336, "layers": 30, "in_channels": 48, "out_channels": 48},
        "ti2v",
        diffusers_config(num_attention_heads=24, ffn_dim=14336, num_layers=30, in_channels=48, out_channels=48),
    ),
}


@pytest.mark.parametrize("release", list(RELEASES))
def test_release_configs_are_detected_from_shapes(release: str) -> None:
    shapes, variant, config = RELEASES[release]
    state_dict = {ORIGINAL_PREFIX + name: tensor for name, tensor in release_shapes(**shapes).items()}
    spec = detect_wan_transformer(state_dict)
    assert spec.variant == variant
    assert dict(spec.config) == config
    assert spec.uses_clip_vision == (config["image_dim"] is not None)


def test_the_inverse_names_match_the_release_layout() -> None:
    _, _, config = RELEASES["Wan2.1-I2V-14B-480P"]
    with torch.device("meta"):
        model = WanTransformer3DModel(**config)
    shapes = release_shapes(5120, 13824, 40, 36, 16, image_dim=1280)
    original = wan_transformer_to_original(model.state_dict())
    assert original.keys() == shapes.keys()
    assert all(original[name].shape == shapes[name].shape for name in shapes)


def test_a_vae_or_text_encoder_is_refused_with_what_it_looks_like() -> None:
    vae = {"decoder.middle.0.residual.0.gamma": torch.empty(8, 1, 1, 1), "encoder.conv1.weight": torch.empty(1)}
    with pytest.raises(StateDictError, match=r"not a Wan diffusion model: no head.modulation .*VAE"):
        detect_wan_transformer(vae)
    text_encoder = {
        "shared.weight": torch.empty(8, 4),
        "encoder.block.0.layer.0.SelfAttention.q.weight": torch.empty(4),
    }
    with pytest.raises(StateDictError, match="text encoder"):
        wan_transformer_from_state_dict(text_encoder, torch.float32)
    assert not is_wan_transformer(vae)


def test_an_incomplete_file_is_refused_naming_what_is_missing(models_dir: Path) -> None:
    state_dict = file_of(models_dir, "wan2.1_t2v_1.3B_fp16")
    without_block_0 = {key: tensor for key, tensor in state_dict.items() if ".blocks.0." not in key}
    with pytest.raises(StateDictError, match=r"blocks\.0 missing .*up to 1"):
        detect_wan_transformer(without_block_0)
    truncated = {
        key: tensor for key, tensor in state_dict.items() if not key.startswith(ORIGINAL_PREFIX + "blocks.1.f")
    }
    with pytest.raises(StateDictError, match=r"4 missing \(blocks\.1\.ffn\.0\.weight"):
        wan_transformer_from_state_dict(truncated, torch.float32)


def test_a_misshapen_tensor_is_named_with_both_shapes(models_dir: Path) -> None:
    state_dict = file_of(models_dir, "wan2.1_t2v_1.3B_fp16")
    state_dict[ORIGINAL_PREFIX + "blocks.1.ffn.2.weight"] = torch.zeros(256, 384, dtype=torch.float16)
    with pytest.raises(
        StateDictError, match=r"misshapen \(blocks\.1\.ffn\.2\.weight is \(256, 384\), expected \(256, 512\)"
    ):
        wan_transformer_from_state_dict(state_dict, torch.float32)
    state_dict[ORIGINAL_PREFIX + "head.modulation"] = torch.zeros(1, 2, 200)
    with pytest.raises(StateDictError, match=r"head\.modulation is 200 wide"):
        detect_wan_transformer(state_dict)


def test_vace_hints_are_spread_evenly_and_camera_adapters_are_read(models_dir: Path) -> None:
    state_dict = file_of(models_dir, "wan2.1_t2v_1.3B_fp16")
    vace = dict(state_dict)
    vace[ORIGINAL_PREFIX + "vace_patch_embedding.weight"] = torch.zeros(256, 96, 1, 2, 2)
    vace[ORIGINAL_PREFIX + "vace_blocks.0.after_proj.weight"] = torch.zeros(256, 256)
    spec = detect_wan_transformer(vace)
    assert (spec.variant, spec.config["vace_in_channels"], spec.config["vace_layers"]) == ("vace", 96, [0])
    camera = {**state_dict, ORIGINAL_PREFIX + "control_adapter.conv.weight": torch.zeros(256, 24 * 64, 2, 2)}
    for index in range(2):
        camera[f"{ORIGINAL_PREFIX}control_adapter.residual_blocks.{index}.conv1.weight"] = torch.zeros(256, 256, 3, 3)
    spec = detect_wan_transformer(camera)
    assert (spec.variant, spec.config["control_in_channels"], spec.config["residual_blocks"]) == ("camera", 24, 2)
    animate = {**state_dict, ORIGINAL_PREFIX + "motion_encoder.dec.direction.weight": torch.zeros(4)}
    with pytest.raises(StateDictError, match=r"modules Reelgraph does not know \(motion_encoder\)"):
        detect_wan_transformer(animate)
