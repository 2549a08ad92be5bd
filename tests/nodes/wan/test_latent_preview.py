"""Latent previews: the least-squares latent-to-RGB fit recovers a VAE whose decoder is linear, previews reach the
sampler's progress reports in the VAE's colours once a VAE of the format is loaded, and principal components before."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from models.devices import DeviceProbe
from models.families.wan.latents import WAN21_LATENT
from models.latent_preview import LATENT_PREVIEWS_SERVICE, LatentPreviews, fit_rgb_projection, pca_projection
from models.memory import MemoryConfig, ModelManager
from models.video_vae import VideoVAE
from nodes.conditioning import CLIPTextEncode, ConditioningZeroOut
from nodes.latent import EmptyHunyuanLatentVideo
from nodes.loaders import CLIPLoader, UNETLoader, VAELoader
from nodes.sampling import KSampler
from tests.nodes.node_runner import NodeRunner

CHANNELS = WAN21_LATENT.channels


class LinearDecoder(torch.nn.Module):
    """A stand-in VAE whose decode is linear per latent pixel (each latent pixel becomes an 8x8 block of 4 frames)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(weight)
        self.bias = torch.nn.Parameter(bias)

    def decode(self, latent: torch.Tensor, return_dict: bool = False) -> tuple[torch.Tensor]:
        rgb = torch.einsum("bcthw,cr->brthw", latent, self.weight) + self.bias.view(1, 3, 1, 1, 1)
        video = F.interpolate(rgb, scale_factor=(4, 8, 8), mode="nearest")[:, :, 3:]  # the first frame alone
        return (video * 2.0 - 1.0,)


def test_the_fit_recovers_a_linear_decoder() -> None:
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(CHANNELS, 3, generator=generator) * 0.01  # colours stay inside 0..1
    bias = torch.tensor([0.5, 0.4, 0.6])
    manager = ModelManager(MemoryConfig(mode="cpu"), DeviceProbe())
    handle = manager.load("linear-vae", lambda: LinearDecoder(weight, bias))
    vae = VideoVAE("linear", handle, WAN21_LATENT, torch.float32)
    projection = fit_rgb_projection(vae, manager)
    assert torch.allclose(projection.weight, weight, atol=2e-3)
    assert torch.allclose(projection.bias, bias, atol=2e-2)
    latent = torch.randn(1, CHANNELS, 3, 5, 7, generator=generator)
    expected = (torch.einsum("chw,cr->hwr", latent[0, :, 1], weight) + bias).clamp(0, 1)
    assert torch.allclose(projection.image(latent), expected, atol=2e-2)


def test_principal_components_span_the_latent_range() -> None:
    latent = torch.randn(1, CHANNELS, 3, 6, 8, generator=torch.Generator().manual_seed(1))
    image = pca_projection(latent).image(latent)
    assert image.shape == (6, 8, 3)
    assert 0.0 <= image.min() < 0.3 and 0.7 < image.max() <= 1.0  # scaled to 0..1, not a flat picture


def test_samplers_report_previews(runner: NodeRunner, tiny_models_dir: Path) -> None:
    (model,) = runner.call(UNETLoader, unet_name="wan2.1_t2v_1.3B_fp16.safetensors", weight_dtype="default")
    (clip,) = runner.call(CLIPLoader, clip_name="umt5_xxl_fp16.safetensors", type="wan")
    (positive,) = runner.call(CLIPTextEncode, clip=clip, text="a lighthouse")
    (negative,) = runner.call(ConditioningZeroOut, conditioning=positive)
    (latent,) = runner.call(EmptyHunyuanLatentVideo, width=48, height=32, length=5, batch_size=1)
    inputs = {"model": model, "seed": 1, "steps": 2, "cfg": 1.0, "sampler_name": "euler", "scheduler": "simple"}
    inputs |= {"positive": positive, "negative": negative, "latent_image": latent, "denoise": 1.0}

    runner.call(KSampler, **inputs)  # no previews service: principal components
    assert [p.shape for p in runner.previews] == [(4, 6, 3)] * 2

    previews = LatentPreviews()
    runner.services[LATENT_PREVIEWS_SERVICE] = previews
    runner.previews.clear()
    runner.call(KSampler, **inputs)  # no VAE seen yet: still principal components
    pca_images = list(runner.previews)
    (vae,) = runner.call(VAELoader, vae_name="wan_2.1_vae.safetensors")
    projection = previews.projection(vae.latent_format)
    assert projection is not None and projection.weight.shape == (CHANNELS, 3)
    runner.previews.clear()
    (out,) = runner.result(KSampler, **inputs)
    assert len(runner.previews) == 2
    assert not torch.allclose(runner.previews[-1], pca_images[-1])
    assert torch.allclose(runner.previews[-1], projection.image(out["samples"]), atol=1e-5)
