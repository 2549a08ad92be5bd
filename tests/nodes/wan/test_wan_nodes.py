"""The Wan node vocabulary on tiny model files: deterministic sampling, the two-expert hand-over of
KSamplerAdvanced, and clear errors for files, sizes and latents that do not fit."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from models.errors import CorruptModelFileError
from models.families.base import LatentShapeError
from models.model_loaders import WrongModelKindError
from nodes.conditioning import CLIPTextEncode, ConditioningZeroOut
from nodes.latent import EmptyHunyuanLatentVideo, TrimVideoLatent
from nodes.loaders import CLIPLoader, UNETLoader, VAELoader
from nodes.sampling import KSampler, KSamplerAdvanced
from nodes.vae import VAEDecode, VAEEncode
from nodes.wan import WanImageToVideo
from tests.nodes.node_runner import NodeRunner

T2V = "wan2.1_t2v_1.3B_fp16.safetensors"


@pytest.fixture
def parts(runner: NodeRunner) -> dict:
    (model,) = runner.call(UNETLoader, unet_name=T2V, weight_dtype="default")
    (clip,) = runner.call(CLIPLoader, clip_name="umt5_xxl_fp8_e4m3fn_scaled.safetensors", type="wan")
    (positive,) = runner.call(CLIPTextEncode, clip=clip, text="a cat walks in the snow")
    (negative,) = runner.call(ConditioningZeroOut, conditioning=positive)
    (latent,) = runner.call(EmptyHunyuanLatentVideo, width=32, height=32, length=5, batch_size=1)
    return {"model": model, "positive": positive, "negative": negative, "latent_image": latent}


def _ksampler(runner: NodeRunner, parts: dict, seed: int, sampler: str = "euler") -> torch.Tensor:
    (out,) = runner.result(
        KSampler, seed=seed, steps=3, cfg=4.0, sampler_name=sampler, scheduler="simple", denoise=1.0, **parts
    )
    return out["samples"]


def test_ksampler_reports_the_memory_decision(runner: NodeRunner, parts: dict) -> None:
    returned = runner.call(
        KSampler, seed=1, steps=1, cfg=1.0, sampler_name="euler", scheduler="simple", denoise=1.0, **parts
    )
    assert returned["result"][0]["samples"].shape == (1, 16, 2, 4, 4)
    assert re.fullmatch(r"memory: resident: .*\d+ MB.*", returned["ui"]["text"][0]), returned["ui"]


def test_ksampler_is_deterministic_per_seed(runner: NodeRunner, parts: dict) -> None:
    first = _ksampler(runner, parts, 7, "dpmpp_2m_sde")
    assert first.shape == (1, 16, 2, 4, 4)
    assert torch.equal(first, _ksampler(runner, parts, 7, "dpmpp_2m_sde"))
    assert not torch.allclose(first, _ksampler(runner, parts, 8, "dpmpp_2m_sde"))
    assert runner.progress[-1] == (3, 3)


def test_ksampler_advanced_hands_over_with_leftover_noise(runner: NodeRunner, parts: dict) -> None:
    """Wan 2.2 A14B workflows split the steps between two models; with one model on both sides the split run equals
    one run over all steps."""
    common = {"noise_seed": 5, "steps": 4, "cfg": 3.0, "sampler_name": "euler", "scheduler": "simple", **parts}
    (whole,) = runner.result(
        KSamplerAdvanced,
        add_noise="enable",
        start_at_step=0,
        end_at_step=10000,
        return_with_leftover_noise="disable",
        **common,
    )
    (high,) = runner.result(
        KSamplerAdvanced,
        add_noise="enable",
        start_at_step=0,
        end_at_step=2,
        return_with_leftover_noise="enable",
        **common,
    )
    common["latent_image"] = high
    (low,) = runner.result(
        KSamplerAdvanced,
        add_noise="disable",
        start_at_step=2,
        end_at_step=10000,
        return_with_leftover_noise="disable",
        **common,
    )
    assert (low["samples"] - whole["samples"]).abs().max().item() < 1e-5
    assert (high["samples"] - whole["samples"]).abs().max().item() > 1e-2  # the hand-over latent is still noisy


def test_vae_round_trip_and_trim(runner: NodeRunner) -> None:
    (vae,) = runner.call(VAELoader, vae_name="wan_2.1_vae.safetensors")
    frames = torch.rand(9, 32, 48, 3)
    (latent,) = runner.call(VAEEncode, pixels=frames, vae=vae)
    assert latent["samples"].shape == (1, 16, 3, 4, 6)
    (decoded,) = runner.call(VAEDecode, samples=latent, vae=vae)
    assert decoded.shape == (9, 32, 48, 3) and 0.0 <= decoded.min() and decoded.max() <= 1.0
    (trimmed,) = runner.call(TrimVideoLatent, samples=latent, trim_amount=1)
    assert trimmed["samples"].shape[2] == 2


def test_a_file_of_another_kind_names_the_right_loader(runner: NodeRunner, tiny_models_dir: Path) -> None:
    misplaced = tiny_models_dir / "diffusion_models" / "misplaced_vae.safetensors"
    misplaced.write_bytes((tiny_models_dir / "vae" / "wan_2.1_vae.safetensors").read_bytes())
    try:
        with pytest.raises(
            WrongModelKindError, match="this is a Wan VAE, not a diffusion model: load it with VAELoader"
        ):
            runner.call(UNETLoader, unet_name=misplaced.name, weight_dtype="default")
    finally:
        misplaced.unlink()


def test_a_missing_or_truncated_file_is_a_clear_error(runner: NodeRunner, tiny_models_dir: Path) -> None:
    with pytest.raises(ValueError, match=r"unet_name: 'nope.safetensors' is not in the diffusion_models folder"):
        runner.call(UNETLoader, unet_name="nope.safetensors", weight_dtype="default")
    whole = (tiny_models_dir / "diffusion_models" / T2V).read_bytes()
    broken = tiny_models_dir / "diffusion_models" / "truncated.safetensors"
    broken.write_bytes(whole[: len(whole) // 2])
    try:
        with pytest.raises(CorruptModelFileError, match=r"truncated\.safetensors: .*truncated: expected \d+ bytes"):
            runner.call(UNETLoader, unet_name="truncated.safetensors", weight_dtype="default")
    finally:
        broken.unlink()


def test_a_vae_of_another_family_is_refused(runner: NodeRunner, parts: dict) -> None:
    (vae22,) = runner.call(VAELoader, vae_name="wan2.2_vae.safetensors")
    with pytest.raises(LatentShapeError, match=r"16 channels; the Wan 2\.2 latent has 48"):
        runner.call(VAEDecode, samples=parts["latent_image"], vae=vae22)


def test_lengths_and_sizes_the_family_cannot_take(runner: NodeRunner) -> None:
    with pytest.raises(ValueError, match=r"length: 10 frames cannot be coded.*e\.g\. 9"):
        runner.call(EmptyHunyuanLatentVideo, width=32, height=32, length=10, batch_size=1)
    with pytest.raises(ValueError, match="width: 40 is not a multiple of 16"):
        runner.call(EmptyHunyuanLatentVideo, width=40, height=32, length=9, batch_size=1)


def test_a_start_image_latent_of_another_size_is_refused(runner: NodeRunner, parts: dict) -> None:
    (vae,) = runner.call(VAELoader, vae_name="wan_2.1_vae.safetensors")
    (model,) = runner.call(
        UNETLoader, unet_name="wan2.2_i2v_low_noise_14B_fp8_scaled.safetensors", weight_dtype="default"
    )
    positive, negative, _ = runner.call(
        WanImageToVideo,
        positive=parts["positive"],
        negative=parts["negative"],
        vae=vae,
        width=64,
        height=64,
        length=5,
        batch_size=1,
        start_image=torch.rand(1, 64, 64, 3),
    )
    parts = {**parts, "model": model, "positive": positive, "negative": negative}
    with pytest.raises(LatentShapeError, match=r"positive: the start image latent is 2x8x8.*sampled is 2x4x4"):
        _ksampler(runner, parts, 1)
