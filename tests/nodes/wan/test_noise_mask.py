"""Latents that keep a region (``noise_mask``): ``Wan22ImageToVideoLatent`` for the 2.2 TI2V 5B model, and the same
mask on any model as inpainting. The kept region comes out exactly as it went in, across chained samplers."""

from __future__ import annotations

import pytest
import torch

from models.families.base import LatentShapeError
from models.families.wan.latents import WAN22_LATENT
from models.noise_mask import latent_noise_mask
from nodes.conditioning import CLIPTextEncode, ConditioningZeroOut
from nodes.latent import EmptyHunyuanLatentVideo
from nodes.loaders import CLIPLoader, UNETLoader, VAELoader
from nodes.sampling import KSampler, KSamplerAdvanced
from nodes.wan import Wan22ImageToVideoLatent
from tests.nodes import fidelity
from tests.nodes.node_runner import NodeRunner

TI2V = "wan2.2_ti2v_5B_fp16.safetensors"


def _conditioning(runner: NodeRunner) -> tuple:
    (clip,) = runner.call(CLIPLoader, clip_name="umt5_xxl_fp16.safetensors", type="wan")
    (positive,) = runner.call(CLIPTextEncode, clip=clip, text="a boat on a lake at dawn")
    (negative,) = runner.call(ConditioningZeroOut, conditioning=positive)
    return positive, negative


def _start_image() -> torch.Tensor:
    generator = torch.Generator().manual_seed(11)
    return torch.rand(1, 64, 96, 3, generator=generator)


def test_wan22_latent_without_image_is_empty_and_unmasked(runner: NodeRunner) -> None:
    (vae,) = runner.call(VAELoader, vae_name="wan2.2_vae.safetensors")
    (latent,) = runner.call(Wan22ImageToVideoLatent, vae=vae, width=96, height=64, length=9, batch_size=2)
    assert set(latent) == {"samples"}
    assert latent["samples"].shape == (2, 48, 3, 4, 6)


def test_wan22_latent_keeps_the_encoded_start_frame(runner: NodeRunner) -> None:
    (vae,) = runner.call(VAELoader, vae_name="wan2.2_vae.safetensors")
    (latent,) = runner.call(
        Wan22ImageToVideoLatent, vae=vae, width=96, height=64, length=9, batch_size=2, start_image=_start_image()
    )
    mask = latent["noise_mask"]
    assert mask.shape == (2, 1, 3, 4, 6)
    assert torch.equal(mask[:, :, 0], torch.zeros_like(mask[:, :, 0])) and bool((mask[:, :, 1:] == 1).all())
    samples = latent["samples"]
    assert torch.equal(samples[0], samples[1])
    # frames to generate hold the latent space's zero: the channel means in raw values
    means = torch.tensor(WAN22_LATENT.mean).view(48, 1, 1, 1)
    assert torch.allclose(samples[0, :, 1:], means.expand(-1, 2, 4, 6))
    assert not torch.allclose(samples[0, :, :1], means.expand(-1, 1, 4, 6))


def test_wan22_latent_size_rules_name_the_input(runner: NodeRunner) -> None:
    (vae,) = runner.call(VAELoader, vae_name="wan2.2_vae.safetensors")
    with pytest.raises(ValueError, match=r"width: 48 is not a multiple of 32"):
        runner.call(Wan22ImageToVideoLatent, vae=vae, width=48, height=64, length=9, batch_size=1)
    with pytest.raises(ValueError, match=r"length: 8 frames"):
        runner.call(Wan22ImageToVideoLatent, vae=vae, width=64, height=64, length=8, batch_size=1)


def test_ti2v_sampling_keeps_the_start_frame_through_a_two_stage_handover(runner: NodeRunner) -> None:
    (model,) = runner.call(UNETLoader, unet_name=TI2V, weight_dtype="default")
    (vae,) = runner.call(VAELoader, vae_name="wan2.2_vae.safetensors")
    positive, negative = _conditioning(runner)
    (latent,) = runner.call(
        Wan22ImageToVideoLatent, vae=vae, width=96, height=64, length=9, batch_size=1, start_image=_start_image()
    )
    common = {"model": model, "cfg": 3.0, "sampler_name": "euler", "scheduler": "simple", "steps": 4}
    common |= {"positive": positive, "negative": negative}
    (high,) = runner.result(
        KSamplerAdvanced,
        add_noise="enable",
        noise_seed=3,
        latent_image=latent,
        start_at_step=0,
        end_at_step=2,
        return_with_leftover_noise="enable",
        **common,
    )
    assert torch.equal(high["noise_mask"], latent["noise_mask"])  # the mask travels with the latent
    (low,) = runner.result(
        KSamplerAdvanced,
        add_noise="disable",
        noise_seed=3,
        latent_image=high,
        start_at_step=2,
        end_at_step=10000,
        return_with_leftover_noise="disable",
        **common,
    )
    (whole,) = runner.result(KSampler, seed=3, denoise=1.0, latent_image=latent, **common)
    assert torch.equal(low["samples"][:, :, 0], latent["samples"][:, :, 0])
    assert torch.allclose(low["samples"], whole["samples"], atol=1e-4)
    assert not torch.allclose(low["samples"][:, :, 1:], latent["samples"][:, :, 1:], atol=0.1)


def test_a_noise_mask_inpaints_with_a_wan21_model(runner: NodeRunner) -> None:
    """The same mask on a model without per-token timesteps: the kept region is re-noised to each step's level
    for the network and comes out unchanged."""
    (model,) = runner.call(UNETLoader, unet_name="wan2.1_t2v_1.3B_fp16.safetensors", weight_dtype="default")
    positive, negative = _conditioning(runner)
    (empty,) = runner.call(EmptyHunyuanLatentVideo, width=32, height=32, length=5, batch_size=1)
    source = torch.randn(empty["samples"].shape, generator=torch.Generator().manual_seed(2))
    mask = torch.ones(32, 32)
    mask[:, :16] = 0.0  # keep the left half of every frame
    common = {"model": model, "seed": 5, "steps": 3, "cfg": 2.0, "sampler_name": "dpmpp_2m", "scheduler": "simple"}
    common |= {"positive": positive, "negative": negative, "denoise": 1.0}
    (out,) = runner.result(KSampler, latent_image={"samples": source, "noise_mask": mask}, **common)
    assert torch.equal(out["samples"][..., :2], source[..., :2])
    assert not torch.allclose(out["samples"][..., 2:], source[..., 2:], atol=0.1)
    (plain,) = runner.result(KSampler, latent_image={"samples": source}, **common)
    assert not torch.allclose(plain["samples"][..., :2], source[..., :2], atol=0.1)


def test_a_noise_mask_of_the_wrong_shape_names_the_input(runner: NodeRunner) -> None:
    (model,) = runner.call(UNETLoader, unet_name="wan2.1_t2v_1.3B_fp16.safetensors", weight_dtype="default")
    positive, negative = _conditioning(runner)
    (empty,) = runner.call(EmptyHunyuanLatentVideo, width=32, height=32, length=5, batch_size=1)
    latent = {"samples": empty["samples"], "noise_mask": torch.ones(7, 32, 32)}
    with pytest.raises(LatentShapeError, match=r"latent_image: noise_mask has 7 frames; the latent codes 5"):
        fidelity.ksample(runner, model, positive, negative, latent, seed=1, steps=2, cfg=1.0)


def test_latent_noise_mask_forms() -> None:
    shape = torch.Size((2, 48, 3, 4, 6))
    per_frame = torch.ones(9, 64, 96)
    per_frame[:5] = 0.0  # frames 0-4: latent frames 0 and 1 are kept (1 codes frames 1-4)
    mask = latent_noise_mask(per_frame, shape, WAN22_LATENT)
    assert mask.shape == (2, 1, 3, 4, 6)
    assert mask[:, :, :2].max() == 0 and mask[:, :, 2].min() == 1
    per_frame[4] = 1.0  # one generated frame makes its latent frame generated
    assert latent_noise_mask(per_frame, shape, WAN22_LATENT)[:, :, 1].min() == 1
    image = torch.zeros(64, 96)
    image[:, 48:] = 1.0
    mask = latent_noise_mask(image, shape, WAN22_LATENT)
    assert torch.equal(mask[0, 0, 2], torch.tensor([[0.0, 0, 0, 1, 1, 1]] * 4))
    assert latent_noise_mask(torch.zeros(1, 1, 3, 2, 3), shape, WAN22_LATENT).shape == (2, 1, 3, 4, 6)
    with pytest.raises(LatentShapeError, match="batch of 3"):
        latent_noise_mask(torch.zeros(3, 1, 3, 4, 6), shape, WAN22_LATENT)
    with pytest.raises(LatentShapeError, match="expected"):
        latent_noise_mask(torch.zeros(1, 1, 1, 1, 3, 4), shape, WAN22_LATENT)
