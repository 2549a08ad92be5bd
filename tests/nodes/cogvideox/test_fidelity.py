"""Fidelity to diffusers at the node level: DiffusersPipelineLoader + CLIPTextEncode x2 + EmptyCogVideoXLatentVideo
or CogVideoXImageToVideo + KSampler (euler, simple) + TrimVideoLatent + VAEDecode reproduce ``CogVideoXPipeline``
(2B-style) and ``CogVideoXImageToVideoPipeline`` (1.5-style) for the same tiny folders, prompts and noise, in
float32. The pipelines get our initial noise as ``latents`` (they draw it in their [B, F, C, H, W] order)."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from diffusers import CogVideoXDDIMScheduler, CogVideoXImageToVideoPipeline, CogVideoXPipeline
from PIL import Image

from models.noise import Noise
from nodes.cogvideox import CogVideoXImageToVideo, EmptyCogVideoXLatentVideo
from nodes.latent import TrimVideoLatent
from nodes.pipeline_loaders import DiffusersPipelineLoader
from tests.nodes import fidelity
from tests.nodes.node_runner import NodeRunner

PROMPT = "a red car on the beach in snow"
NEGATIVE = "a dog"
SEED, STEPS, CFG = 42, 4, 6.0
SIZE = 64


def _load(runner: NodeRunner, folder: str) -> tuple:
    model, clip, vae, _ = runner.call(
        DiffusersPipelineLoader, model_path=folder, transformer="transformer", weight_dtype="default"
    )
    return model, clip, vae, *fidelity.encode_prompts(runner, clip, PROMPT, NEGATIVE)


def _sample_and_decode(runner: NodeRunner, model, vae, positive, negative, latent, padding: int) -> torch.Tensor:
    output = fidelity.ksample(runner, model, positive, negative, latent, seed=SEED, steps=STEPS, cfg=CFG)
    (trimmed,) = runner.call(TrimVideoLatent, samples=output, trim_amount=padding)
    return fidelity.decoded(runner, trimmed, vae)


def _pipeline_noise(latent: dict[str, torch.Tensor]) -> torch.Tensor:
    noise, _ = Noise(SEED).draw(latent["samples"])
    return noise.permute(0, 2, 1, 3, 4)  # the pipelines' [B, F, C, H, W]


def _pipeline_inputs(length: int) -> dict[str, Any]:
    """The pipelines' prompts, size, ``length`` frames, steps, guidance and seed."""
    return fidelity.pipeline_inputs(
        PROMPT, NEGATIVE, height=SIZE, width=SIZE, frames=length, steps=STEPS, guidance=CFG, seed=SEED
    )


def _compare(ours: torch.Tensor, reference: torch.Tensor, what: str) -> None:
    difference = fidelity.max_difference(ours, fidelity.pipeline_frames(reference))
    print(f"{what}: max difference {difference:.3g}")
    assert difference < 1e-4, difference
    assert ours.std() > 0.01  # not a constant picture


@pytest.mark.parametrize("length", [9])
def test_text_to_video_matches_cogvideox_pipeline(runner: NodeRunner, tiny_models_dir, length: int) -> None:
    model, clip, vae, positive, negative = _load(runner, "CogVideoX-2b")
    latent, padding = runner.call(
        EmptyCogVideoXLatentVideo, model=model, width=SIZE, height=SIZE, length=length, batch_size=1
    )
    assert padding == 0
    ours = _sample_and_decode(runner, model, vae, positive, negative, latent, padding)
    assert ours.shape == (length, SIZE, SIZE, 3)

    scheduler = CogVideoXDDIMScheduler.from_pretrained(tiny_models_dir / "diffusers/CogVideoX-2b/scheduler")
    with model.handle.use() as transformer, clip.handle.use() as encoder, vae.handle.use() as autoencoder:
        pipeline = CogVideoXPipeline(clip.tokenizer, encoder, autoencoder, transformer, scheduler)
        reference = pipeline(**_pipeline_inputs(length), latents=_pipeline_noise(latent)).frames
    _compare(ours, reference, f"cogvideox 2b t2v {length} frames")


def test_image_to_video_matches_cogvideox_15_pipeline(runner: NodeRunner, tiny_models_dir) -> None:
    length = 9  # 3 latent frames: CogVideoX 1.5 pads one in front
    model, clip, vae, positive, negative = _load(runner, "CogVideoX1.5-5B-I2V")
    pixels, start = fidelity.random_picture(0, SIZE)
    positive, negative, latent, padding = runner.call(
        CogVideoXImageToVideo,
        positive=positive,
        negative=negative,
        vae=vae,
        model=model,
        start_image=start,
        width=SIZE,
        height=SIZE,
        length=length,
        batch_size=1,
    )
    assert padding == 1 and latent["samples"].shape[2] == 4
    ours = _sample_and_decode(runner, model, vae, positive, negative, latent, padding)
    assert ours.shape == (length, SIZE, SIZE, 3)

    scheduler = CogVideoXDDIMScheduler.from_pretrained(tiny_models_dir / "diffusers/CogVideoX1.5-5B-I2V/scheduler")
    with model.handle.use() as transformer, clip.handle.use() as encoder, vae.handle.use() as autoencoder:
        pipeline = CogVideoXImageToVideoPipeline(clip.tokenizer, encoder, autoencoder, transformer, scheduler)
        reference = pipeline(
            image=Image.fromarray(pixels), **_pipeline_inputs(length), latents=_pipeline_noise(latent)
        ).frames
    _compare(ours, reference, f"cogvideox 1.5 i2v {length} frames")
