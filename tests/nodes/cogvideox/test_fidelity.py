"""Fidelity to diffusers at the node level: DiffusersPipelineLoader + CLIPTextEncode x2 + EmptyCogVideoXLatentVideo
or CogVideoXImageToVideo + KSampler (euler, simple) + TrimVideoLatent + VAEDecode reproduce ``CogVideoXPipeline``
(2B-style) and ``CogVideoXImageToVideoPipeline`` (1.5-style) for the same tiny folders, prompts and noise, in
float32. The pipelines get our initial noise as ``latents`` (they draw it in their [B, F, C, H, W] order)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import CogVideoXDDIMScheduler, CogVideoXImageToVideoPipeline, CogVideoXPipeline
from PIL import Image

from models.noise import Noise
from nodes.cogvideox import CogVideoXImageToVideo, EmptyCogVideoXLatentVideo
from nodes.conditioning import CLIPTextEncode
from nodes.latent import TrimVideoLatent
from nodes.pipeline_loaders import DiffusersPipelineLoader
from nodes.sampling import KSampler
from nodes.vae import VAEDecode
from tests.nodes.node_runner import NodeRunner

PROMPT = "a red car on the beach in snow"
NEGATIVE = "a dog"
SEED, STEPS, CFG = 42, 4, 6.0
SIZE = 64


def _load(runner: NodeRunner, folder: str) -> tuple:
    model, clip, vae, _ = runner.call(
        DiffusersPipelineLoader, model_path=folder, transformer="transformer", weight_dtype="default"
    )
    (positive,) = runner.call(CLIPTextEncode, clip=clip, text=PROMPT)
    (negative,) = runner.call(CLIPTextEncode, clip=clip, text=NEGATIVE)
    return model, clip, vae, positive, negative


def _sample_and_decode(runner: NodeRunner, model, vae, positive, negative, latent, padding: int) -> torch.Tensor:
    output = runner.result(
        KSampler,
        model=model,
        seed=SEED,
        steps=STEPS,
        cfg=CFG,
        sampler_name="euler",
        scheduler="simple",
        positive=positive,
        negative=negative,
        latent_image=latent,
        denoise=1.0,
    )[0]
    (trimmed,) = runner.call(TrimVideoLatent, samples=output, trim_amount=padding)
    (frames,) = runner.call(VAEDecode, samples=trimmed, vae=vae)
    return frames


def _pipeline_noise(latent: dict[str, torch.Tensor]) -> torch.Tensor:
    noise, _ = Noise(SEED).draw(latent["samples"])
    return noise.permute(0, 2, 1, 3, 4)  # the pipelines' [B, F, C, H, W]


def _compare(ours: torch.Tensor, reference: torch.Tensor, what: str) -> None:
    difference = (ours - reference.permute(0, 2, 3, 1).float()).abs().max().item()
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
        reference = pipeline(
            prompt=PROMPT,
            negative_prompt=NEGATIVE,
            height=SIZE,
            width=SIZE,
            num_frames=length,
            num_inference_steps=STEPS,
            guidance_scale=CFG,
            latents=_pipeline_noise(latent),
            output_type="pt",
        ).frames[0]
    _compare(ours, reference, f"cogvideox 2b t2v {length} frames")


def test_image_to_video_matches_cogvideox_15_pipeline(runner: NodeRunner, tiny_models_dir) -> None:
    length = 9  # 3 latent frames: CogVideoX 1.5 pads one in front
    model, clip, vae, positive, negative = _load(runner, "CogVideoX1.5-5B-I2V")
    pixels = np.random.default_rng(0).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    start = torch.from_numpy(pixels).float().div(255.0).unsqueeze(0)
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
            image=Image.fromarray(pixels),
            prompt=PROMPT,
            negative_prompt=NEGATIVE,
            height=SIZE,
            width=SIZE,
            num_frames=length,
            num_inference_steps=STEPS,
            guidance_scale=CFG,
            generator=torch.Generator().manual_seed(SEED),
            latents=_pipeline_noise(latent),
            output_type="pt",
        ).frames[0]
    _compare(ours, reference, f"cogvideox 1.5 i2v {length} frames")
