"""Fidelity to diffusers at the node level: the LTX-Video nodes of a ComfyUI workflow (CheckpointLoaderSimple,
CLIPLoader type ltxv, CLIPTextEncode, LTXVConditioning, EmptyLTXVLatentVideo / LTXVImgToVideo, SamplerCustom with
euler over the sigmas of the release's scheduler, VAEDecode) reproduce ``LTXPipeline`` and
``LTXImageToVideoPipeline`` frames for the same tiny model files, prompts, seed and guidance, in float32; and the
two-pass nodes (LTXVAddGuide, LTXVCropGuides, LTXVLatentUpsampler) run to frames of the expected size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from diffusers import FlowMatchEulerDiscreteScheduler, LTXImageToVideoPipeline, LTXPipeline
from diffusers.pipelines.ltx.pipeline_ltx import calculate_shift

from models.families.ltx.adapter import pack_latent
from nodes.loaders import CheckpointLoaderSimple, CLIPLoader
from nodes.ltxv import EmptyLTXVLatentVideo, LTXVAddGuide, LTXVConditioning, LTXVCropGuides, LTXVImgToVideo
from nodes.ltxv_sampling import LatentUpscaleModelLoader, LTXVLatentUpsampler, LTXVScheduler
from tests.nodes import fidelity
from tests.nodes.node_runner import NodeRunner

PROMPT = "a red car on the beach in snow"
NEGATIVE = "a dog"
SEED, STEPS, CFG, FRAME_RATE = 42, 4, 3.0, 25.0
SIZE, FRAMES = 96, 9
CHECKPOINT = "ltx-video-2b-v0.9.5.safetensors"
TEXT_ENCODER = "t5xxl_fp16.safetensors"
SCHEDULER_FOLDER = Path("diffusers") / "LTX-Video" / "scheduler"


def _scheduler(models: Path) -> FlowMatchEulerDiscreteScheduler:
    return FlowMatchEulerDiscreteScheduler.from_pretrained(models / SCHEDULER_FOLDER)


def _pipeline_sigmas(models: Path, tokens: int) -> torch.Tensor:
    """The sigmas ``LTXPipeline`` sets for ``STEPS`` steps and ``tokens`` latent tokens."""
    scheduler = _scheduler(models)
    config = scheduler.config
    mu = calculate_shift(
        tokens, config.base_image_seq_len, config.max_image_seq_len, config.base_shift, config.max_shift
    )
    scheduler.set_timesteps(sigmas=np.linspace(1.0, 1 / STEPS, STEPS), mu=mu)
    return scheduler.sigmas.float()


def _common(runner: NodeRunner) -> tuple:
    model, _, vae = runner.call(CheckpointLoaderSimple, ckpt_name=CHECKPOINT)
    (clip,) = runner.call(CLIPLoader, clip_name=TEXT_ENCODER, type="ltxv")
    positive, negative = fidelity.encode_prompts(runner, clip, PROMPT, NEGATIVE)
    positive, negative = runner.call(LTXVConditioning, positive=positive, negative=negative, frame_rate=FRAME_RATE)
    return model, clip, vae, positive, negative


def _sample(runner: NodeRunner, model, positive, negative, latent, sigmas: torch.Tensor) -> dict:
    return fidelity.sample_custom(runner, model, positive, negative, latent, sigmas, seed=SEED, cfg=CFG)


def _checked_sigmas(runner: NodeRunner, models: Path, latent: dict) -> torch.Tensor:
    """The release scheduler's sigmas for the latent, checked against ``LTXVScheduler``'s."""
    tokens = int(np.prod(latent["samples"].shape[2:]))
    reference = _pipeline_sigmas(models, tokens)
    (ours,) = runner.call(
        LTXVScheduler, steps=STEPS, max_shift=2.05, base_shift=0.95, stretch=True, terminal=0.1, latent=latent
    )
    assert (ours - reference).abs().max().item() < 1e-6
    return reference


def _pipeline_kwargs() -> dict:
    inputs = fidelity.pipeline_inputs(
        PROMPT, NEGATIVE, height=SIZE, width=SIZE, frames=FRAMES, steps=STEPS, guidance=CFG, seed=SEED
    )
    return {**inputs, "frame_rate": int(FRAME_RATE)}


def test_text_to_video_matches_ltx_pipeline(runner: NodeRunner, tiny_models_dir: Path) -> None:
    model, clip, vae, positive, negative = _common(runner)
    (latent,) = runner.call(EmptyLTXVLatentVideo, width=SIZE, height=SIZE, length=FRAMES, batch_size=1)
    output = _sample(runner, model, positive, negative, latent, _checked_sigmas(runner, tiny_models_dir, latent))
    ours = fidelity.decoded(runner, output, vae)
    assert ours.shape == (FRAMES, SIZE, SIZE, 3)

    with model.handle.use() as transformer, clip.handle.use() as encoder, vae.handle.use() as autoencoder:
        pipeline = LTXPipeline(_scheduler(tiny_models_dir), autoencoder, encoder, clip.tokenizer, transformer)
        reference = pipeline(**_pipeline_kwargs()).frames
    difference = fidelity.max_difference(ours, fidelity.pipeline_frames(reference))
    print(f"LTX text-to-video max difference: {difference:.3g}")
    assert difference < 1e-4, difference
    assert ours.std() > 0.01  # not a constant picture


def test_image_to_video_matches_ltx_image_to_video_pipeline(runner: NodeRunner, tiny_models_dir: Path) -> None:
    """``LTXVImgToVideo`` keeps the encoded image in the first latent frame (noise mask 0, per-token timestep 0)
    as ``LTXImageToVideoPipeline`` does. The pipeline samples the image posterior with its generator (our VAE
    encode takes the mode), so it is given the same starting latents: the seed's noise with the image latent."""
    model, clip, vae, positive, negative = _common(runner)
    _, image = fidelity.random_picture(3, SIZE)
    positive, negative, latent = runner.call(
        LTXVImgToVideo, positive=positive, negative=negative, vae=vae, image=image,
        width=SIZE, height=SIZE, length=FRAMES, batch_size=1, strength=1.0,
    )  # fmt: skip
    output = _sample(runner, model, positive, negative, latent, _checked_sigmas(runner, tiny_models_dir, latent))
    assert torch.equal(output["samples"][:, :, :1], latent["samples"][:, :, :1])  # the image's frame is kept
    ours = fidelity.decoded(runner, output, vae)

    noise = torch.randn(latent["samples"].shape, generator=torch.Generator().manual_seed(SEED))
    start = torch.where(latent["noise_mask"] == 0, latent["samples"], noise)
    with model.handle.use() as transformer, clip.handle.use() as encoder, vae.handle.use() as autoencoder:
        pipeline = LTXImageToVideoPipeline(
            _scheduler(tiny_models_dir), autoencoder, encoder, clip.tokenizer, transformer
        )
        reference = pipeline(image=image.permute(0, 3, 1, 2), latents=pack_latent(start), **_pipeline_kwargs()).frames
    difference = fidelity.max_difference(ours, fidelity.pipeline_frames(reference))
    print(f"LTX image-to-video max difference: {difference:.3g}")
    assert difference < 1e-4, difference


def test_guided_two_pass_workflow_runs(runner: NodeRunner) -> None:
    """A last-frame guide, cropped after sampling, the latent upscaled 2x and refined, decoded at twice the size."""
    model, _, vae, positive, negative = _common(runner)
    size = 64
    (latent,) = runner.call(EmptyLTXVLatentVideo, width=size, height=size, length=FRAMES, batch_size=1)
    last = torch.rand(1, 80, 80, 3, generator=torch.Generator().manual_seed(7))
    guided_positive, guided_negative, guided = runner.call(
        LTXVAddGuide, positive=positive, negative=negative, vae=vae, latent=latent, image=last, frame_idx=-1,
        strength=1.0,
    )  # fmt: skip
    assert guided["samples"].shape == (1, 128, 3, 2, 2)
    (sigmas,) = runner.call(
        LTXVScheduler, steps=2, max_shift=2.05, base_shift=0.95, stretch=True, terminal=0.1, latent=guided
    )
    output = _sample(runner, model, guided_positive, guided_negative, guided, sigmas)
    assert torch.equal(output["samples"][:, :, 2:], guided["samples"][:, :, 2:])  # the guide stays as encoded
    positive, negative, cropped = runner.call(
        LTXVCropGuides, positive=guided_positive, negative=guided_negative, latent=output
    )
    assert cropped["samples"].shape == (1, 128, 2, 2, 2) and "keyframe_idxs" not in positive[0][1]

    (upscaler,) = runner.call(LatentUpscaleModelLoader, model_name="ltxv-spatial-upscaler-0.9.7.safetensors")
    (upscaled,) = runner.call(LTXVLatentUpsampler, samples=cropped, upscale_model=upscaler, vae=vae)
    assert upscaled["samples"].shape == (1, 128, 2, 4, 4) and "noise_mask" not in upscaled
    refined = _sample(runner, model, positive, negative, upscaled, sigmas[1:])
    frames = fidelity.decoded(runner, refined, vae)
    assert frames.shape == (FRAMES, 2 * size, 2 * size, 3)
    assert torch.isfinite(frames).all() and frames.std() > 0.01
