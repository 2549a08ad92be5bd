"""The tiny Wan stand-ins: one file per release, named and laid out as released, holding exactly the weights
``tiny_wan_transformer`` / ``tiny_wan_vae`` give; seeded, and leaving the global RNG alone."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from models.families.wan.checkpoint import ORIGINAL_PREFIX, wan_transformer_to_original
from models.families.wan.vae_checkpoint import wan_vae_to_original
from models.loading import load_state_dict
from models.scaled_fp8 import MARKER, dequantize_scaled
from models.tiny.wan import (
    TINY_WAN_DIFFUSION_MODELS,
    TINY_WAN_VAES,
    tiny_wan_transformer,
    tiny_wan_vae,
    write_tiny_wan_files,
)

RELEASE_STEMS = [
    "wan2.1_t2v_1.3B_fp16",
    "wan2.1_i2v_480p_14B_fp16",
    "wan2.1_flf2v_720p_14B_fp16",
    "wan2.2_ti2v_5B_fp16",
    "wan2.1_vace_1.3B_fp16",
    "wan2.1_fun_control_1.3B_bf16",
    "wan2.1_fun_camera_v1.1_1.3B_bf16",
    "Wan2_1-I2V-ATI-14B_fp8_e4m3fn",
    "wan2.2_t2v_high_noise_14B_fp8_scaled",
    "wan2.2_t2v_low_noise_14B_fp8_scaled",
    "wan2.2_i2v_high_noise_14B_fp8_scaled",
    "wan2.2_i2v_low_noise_14B_fp8_scaled",
]


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    root = tmp_path_factory.mktemp("models")
    return root, write_tiny_wan_files(root)


def test_every_release_has_a_stand_in_file(written: tuple[Path, list[Path]]) -> None:
    root, paths = written
    assert list(TINY_WAN_DIFFUSION_MODELS) == RELEASE_STEMS
    assert list(TINY_WAN_VAES) == ["wan_2.1_vae", "wan2.2_vae"]
    expected = [root / "diffusion_models" / f"{stem}.safetensors" for stem in RELEASE_STEMS]
    expected += [root / "vae" / f"{stem}.safetensors" for stem in TINY_WAN_VAES]
    assert paths == expected
    assert all(path.is_file() for path in paths)


@pytest.mark.parametrize("stem", RELEASE_STEMS)
def test_diffusion_model_files_hold_the_stand_in_weights(written: tuple[Path, list[Path]], stem: str) -> None:
    state_dict = load_state_dict(written[0] / "diffusion_models" / f"{stem}.safetensors")
    assert all(key.startswith(ORIGINAL_PREFIX) for key in state_dict)
    if stem.endswith("_fp16"):
        assert {tensor.dtype for tensor in state_dict.values()} == {torch.float16}
    elif stem.endswith("_bf16"):
        assert {tensor.dtype for tensor in state_dict.values()} == {torch.bfloat16}
    elif stem.endswith("_fp8_e4m3fn"):  # plain fp8 block linears, no scales
        assert state_dict[ORIGINAL_PREFIX + "blocks.1.cross_attn.o.weight"].dtype == torch.float8_e4m3fn
        assert not any(key.endswith("scale_weight") for key in state_dict)
    else:
        assert ORIGINAL_PREFIX + MARKER in state_dict
        assert state_dict[ORIGINAL_PREFIX + "blocks.1.cross_attn.o.weight"].dtype == torch.float8_e4m3fn
        assert state_dict[ORIGINAL_PREFIX + "blocks.1.cross_attn.o.scale_weight"].dtype == torch.float32
        assert state_dict[ORIGINAL_PREFIX + "blocks.1.cross_attn.norm_q.weight"].dtype == torch.float16
        assert state_dict[ORIGINAL_PREFIX + "head.head.weight"].dtype == torch.float16
    restored = dequantize_scaled(state_dict, torch.float32)
    expected = wan_transformer_to_original(tiny_wan_transformer(stem).state_dict())
    assert {key.removeprefix(ORIGINAL_PREFIX) for key in restored} == expected.keys()
    assert all(torch.equal(restored[ORIGINAL_PREFIX + key].float(), tensor) for key, tensor in expected.items())


@pytest.mark.parametrize("stem", list(TINY_WAN_VAES))
def test_vae_files_hold_the_stand_in_weights(written: tuple[Path, list[Path]], stem: str) -> None:
    state_dict = load_state_dict(written[0] / "vae" / f"{stem}.safetensors")
    assert {tensor.dtype for tensor in state_dict.values()} == {torch.bfloat16}
    expected = wan_vae_to_original(tiny_wan_vae(stem).state_dict())
    assert state_dict.keys() == expected.keys()
    assert all(torch.equal(state_dict[key].float(), tensor) for key, tensor in expected.items())


def test_the_variants_have_the_released_architectures() -> None:
    configs = {stem: tiny.config for stem, tiny in TINY_WAN_DIFFUSION_MODELS.items()}
    assert all(config["attention_head_dim"] == 128 for config in configs.values())
    assert configs["wan2.1_t2v_1.3B_fp16"]["in_channels"] == 16
    assert configs["wan2.1_i2v_480p_14B_fp16"]["image_dim"] == 160  # the tiny CLIP vision's hidden size
    assert configs["wan2.1_flf2v_720p_14B_fp16"]["pos_embed_seq_len"] is not None
    assert (configs["wan2.2_ti2v_5B_fp16"]["in_channels"], configs["wan2.2_ti2v_5B_fp16"]["out_channels"]) == (48, 48)
    assert TINY_WAN_DIFFUSION_MODELS["wan2.2_ti2v_5B_fp16"].vae == "wan2.2_vae"
    i2v_a14b = configs["wan2.2_i2v_high_noise_14B_fp8_scaled"]
    assert (i2v_a14b["in_channels"], i2v_a14b["image_dim"]) == (36, None)  # no CLIP vision in Wan 2.2


def test_weights_are_seeded_per_stem_and_seed_and_leave_the_global_rng_alone() -> None:
    torch.manual_seed(123)
    state = torch.get_rng_state()
    high = tiny_wan_transformer("wan2.2_t2v_high_noise_14B_fp8_scaled").state_dict()
    assert torch.equal(torch.get_rng_state(), state)
    again = tiny_wan_transformer("wan2.2_t2v_high_noise_14B_fp8_scaled").state_dict()
    low = tiny_wan_transformer("wan2.2_t2v_low_noise_14B_fp8_scaled").state_dict()
    reseeded = tiny_wan_transformer("wan2.2_t2v_high_noise_14B_fp8_scaled", seed=1).state_dict()
    key = "blocks.0.attn1.to_q.weight"
    assert torch.equal(high[key], again[key])
    assert not torch.equal(high[key], low[key])
    assert not torch.equal(high[key], reseeded[key])
    assert torch.equal(
        tiny_wan_vae("wan2.2_vae").decoder.conv_in.weight, tiny_wan_vae("wan2.2_vae").decoder.conv_in.weight
    )
    assert torch.equal(torch.get_rng_state(), state)


@pytest.mark.parametrize(("stem", "spatial"), [("wan_2.1_vae", 8), ("wan2.2_vae", 16)])
def test_vaes_compress_as_released(stem: str, spatial: int) -> None:
    vae = tiny_wan_vae(stem)
    latent = torch.randn(
        1, vae.config.z_dim, 5, 64 // spatial, 64 // spatial, generator=torch.Generator().manual_seed(0)
    )
    with torch.no_grad():
        video = vae.decode(latent).sample
    assert video.shape == (1, 3, 17, 64, 64)
    assert torch.isfinite(video).all()
