"""EmptyCogVideoXLatentVideo and CogVideoXImageToVideo: latent sizes with CogVideoX 1.5's padding in front, the
start image's latents as the pipeline scales them, and errors naming the input."""

from __future__ import annotations

import pytest
import torch

from models.families.cogvideox.adapter import IMAGE_LATENTS
from nodes.cogvideox import CogVideoXImageToVideo, EmptyCogVideoXLatentVideo
from nodes.pipeline_loaders import DiffusersPipelineLoader
from nodes.vae import VAEEncode
from tests.nodes.node_runner import NodeRunner

TEXT = [[torch.zeros(1, 226, 32), {}]]


def _load(runner: NodeRunner, folder: str) -> tuple:
    return runner.call(DiffusersPipelineLoader, model_path=folder, transformer="transformer", weight_dtype="default")


def test_empty_latent_pads_only_for_15(runner: NodeRunner) -> None:
    model_2b = _load(runner, "CogVideoX-2b")[0]
    model_15 = _load(runner, "CogVideoX1.5-5B-I2V")[0]
    latent, padding = runner.call(
        EmptyCogVideoXLatentVideo, model=model_2b, width=96, height=64, length=9, batch_size=2
    )
    assert latent["samples"].shape == (2, 16, 3, 8, 12) and padding == 0
    latent, padding = runner.call(
        EmptyCogVideoXLatentVideo, model=model_15, width=96, height=64, length=9, batch_size=1
    )
    assert latent["samples"].shape == (1, 16, 4, 8, 12) and padding == 1
    latent, padding = runner.call(
        EmptyCogVideoXLatentVideo, model=model_15, width=96, height=64, length=13, batch_size=1
    )
    assert latent["samples"].shape == (1, 16, 4, 8, 12) and padding == 0


def test_image_to_video_puts_the_scaled_start_latent_first(runner: NodeRunner) -> None:
    model, _, vae, _ = _load(runner, "CogVideoX1.5-5B-I2V")
    start = torch.rand(1, 64, 64, 3, generator=torch.Generator().manual_seed(1))
    positive, negative, latent, padding = runner.call(
        CogVideoXImageToVideo,
        positive=TEXT,
        negative=TEXT,
        vae=vae,
        model=model,
        start_image=start,
        width=64,
        height=64,
        length=9,
        batch_size=1,
    )
    image = positive[0][1][IMAGE_LATENTS]
    assert image is negative[0][1][IMAGE_LATENTS]
    assert image.shape == latent["samples"].shape == (1, 16, 4, 8, 8) and padding == 1
    (encoded,) = runner.call(VAEEncode, pixels=start, vae=vae)
    torch.testing.assert_close(image[:, :, :1], encoded["samples"] / 0.7)  # invert_scale_latents
    assert not image[:, :, 1:].any()


def test_errors_name_the_input(runner: NodeRunner) -> None:
    model_2b, _, vae_2b, _ = _load(runner, "CogVideoX-2b")
    start = torch.rand(1, 64, 64, 3)
    inputs = {"positive": TEXT, "negative": TEXT, "start_image": start, "width": 64, "height": 64, "batch_size": 1}
    with pytest.raises(ValueError, match=r"model: CogVideoX 1.0 t2v.* is a text-to-video model"):
        runner.call(CogVideoXImageToVideo, vae=vae_2b, model=model_2b, length=9, **inputs)
    with pytest.raises(ValueError, match="length: 8 frames cannot be coded"):
        runner.call(EmptyCogVideoXLatentVideo, model=model_2b, width=64, height=64, length=8, batch_size=1)
    with pytest.raises(ValueError, match="width: 72 is not a multiple of 16"):
        runner.call(EmptyCogVideoXLatentVideo, model=model_2b, width=72, height=64, length=9, batch_size=1)
    with pytest.raises(ValueError, match=r"model: .* is not a CogVideoX model"):
        runner.call(EmptyCogVideoXLatentVideo, model=object(), width=64, height=64, length=9, batch_size=1)
