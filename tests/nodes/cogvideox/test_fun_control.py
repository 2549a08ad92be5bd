"""CogVideoX-Fun control at the node level: DiffusersPipelineLoader + CLIPTextEncode x2 + CogVideoXFunControl +
KSampler (euler, simple) + VAEDecode reproduce ``CogVideoXFunControlPipeline`` on the tiny 2B control folder for
the same prompts, noise and control video, in float32; the control video steers the result; control videos of
another length or size are resampled; conditioning that does not fit is refused naming the node to use."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import CogVideoXDDIMScheduler, CogVideoXFunControlPipeline
from PIL import Image

from models.families.cogvideox.adapter import CONTROL_LATENTS, IMAGE_LATENTS
from models.noise import Noise
from nodes.cogvideox import (
    CogVideoXFunControl,
    CogVideoXImageToVideo,
    EmptyCogVideoXLatentVideo,
    resample_control_video,
)
from nodes.pipeline_loaders import DiffusersPipelineLoader
from nodes.vae import VAEEncode
from tests.nodes import fidelity
from tests.nodes.node_runner import NodeRunner

FOLDER = "CogVideoX-Fun-V1.1-2b-Control"
PROMPT = "a red car on the beach in snow"
NEGATIVE = "a dog"
SEED, STEPS, CFG = 42, 4, 6.0
SIZE, LENGTH = 64, 9
SCALING_2B = 1.15258426
TEXT = [[torch.zeros(1, 226, 32), {}]]


def _load(runner: NodeRunner, folder: str = FOLDER) -> tuple:
    return runner.call(DiffusersPipelineLoader, model_path=folder, transformer="transformer", weight_dtype="default")


def _control_video(seed: int, frames: int = LENGTH, size: int = SIZE) -> tuple[np.ndarray, torch.Tensor]:
    """A random control video: its uint8 frames ``[F, H, W, 3]`` (for the pipeline's PIL frames) and the same as
    IMAGE frames in 0..1 (for the node)."""
    pixels = np.random.default_rng(seed).integers(0, 256, (frames, size, size, 3), dtype=np.uint8)
    return pixels, torch.from_numpy(pixels).float().div(255.0)


def _control(runner: NodeRunner, model, vae, positive, negative, video: torch.Tensor, **size: int) -> tuple:
    inputs = {"width": SIZE, "height": SIZE, "length": LENGTH, "batch_size": 1, **size}
    return runner.call(
        CogVideoXFunControl,
        positive=positive,
        negative=negative,
        vae=vae,
        model=model,
        control_video=video,
        **inputs,
    )


def _generate(runner: NodeRunner, model, vae, positive, negative, video: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """The decoded frames of the control graph, and its empty latent."""
    positive, negative, latent, padding = _control(runner, model, vae, positive, negative, video)
    assert padding == 0
    output = fidelity.ksample(runner, model, positive, negative, latent, seed=SEED, steps=STEPS, cfg=CFG)
    return fidelity.decoded(runner, output, vae), latent


def test_fun_control_matches_the_pipeline_and_follows_the_control(runner: NodeRunner, tiny_models_dir) -> None:
    model, clip, vae, _ = _load(runner)
    positive, negative = fidelity.encode_prompts(runner, clip, PROMPT, NEGATIVE)
    pixels, video = _control_video(0)
    ours, latent = _generate(runner, model, vae, positive, negative, video)
    assert ours.shape == (LENGTH, SIZE, SIZE, 3)

    scheduler = CogVideoXDDIMScheduler.from_pretrained(tiny_models_dir / f"diffusers/{FOLDER}/scheduler")
    inputs = fidelity.pipeline_inputs(
        PROMPT, NEGATIVE, height=SIZE, width=SIZE, frames=LENGTH, steps=STEPS, guidance=CFG, seed=SEED
    )
    del inputs["num_frames"]  # the control video's length sets it
    noise, _ = Noise(SEED).draw(latent["samples"])
    with model.handle.use() as transformer, clip.handle.use() as encoder, vae.handle.use() as autoencoder:
        pipeline = CogVideoXFunControlPipeline(clip.tokenizer, encoder, autoencoder, transformer, scheduler)
        reference = pipeline(
            control_video=[Image.fromarray(frame) for frame in pixels],
            latents=noise.permute(0, 2, 1, 3, 4),  # the pipeline's [B, F, C, H, W]
            **inputs,
        ).frames
    difference = fidelity.max_difference(ours, fidelity.pipeline_frames(reference))
    print(f"cogvideox fun control 2b {LENGTH} frames: max difference {difference:.3g}")
    assert difference < 1e-4, difference
    assert ours.std() > 0.01  # not a constant picture

    other, _ = _generate(runner, model, vae, positive, negative, _control_video(1)[1])
    assert (other - ours).abs().max() > 0.05


def test_control_latents_are_the_scaled_encoding(runner: NodeRunner) -> None:
    model, _, vae, _ = _load(runner)
    _, video = _control_video(2)
    positive, negative, latent, padding = _control(runner, model, vae, TEXT, TEXT, video, batch_size=2)
    control = positive[0][1][CONTROL_LATENTS]
    assert control is negative[0][1][CONTROL_LATENTS]
    assert control.shape == (1, 16, 3, 8, 8) and latent["samples"].shape == (2, 16, 3, 8, 8) and padding == 0
    (encoded,) = runner.call(VAEEncode, pixels=video, vae=vae)
    torch.testing.assert_close(control, encoded["samples"] * SCALING_2B)


def test_resample_picks_frames_evenly_and_stretches_the_size() -> None:
    shades = torch.arange(3.0).div(2).view(3, 1, 1, 1).expand(3, 32, 48, 3)
    resampled = resample_control_video(shades, 64, 16, 9)
    assert resampled.shape == (9, 16, 64, 3)
    torch.testing.assert_close(resampled[:, 0, 0, 0], torch.tensor([0.0, 0.0, 0.0, 0.5, 0.5, 0.5, 1.0, 1.0, 1.0]))
    long = torch.arange(17.0).div(16).view(17, 1, 1, 1).expand(17, 16, 64, 3)
    picked = resample_control_video(long, 64, 16, 9)
    torch.testing.assert_close(picked, long[::2])


def test_another_length_and_size_are_resampled(runner: NodeRunner) -> None:
    model, _, vae, _ = _load(runner)
    _, video = _control_video(3, frames=5, size=32)
    positive, _, latent, _ = _control(runner, model, vae, TEXT, TEXT, video)
    assert positive[0][1][CONTROL_LATENTS].shape == latent["samples"].shape == (1, 16, 3, 8, 8)


def test_node_errors_name_the_node_and_input(runner: NodeRunner) -> None:
    model, _, vae, _ = _load(runner)
    model_2b = _load(runner, "CogVideoX-2b")[0]
    video = _control_video(4)[1]
    with pytest.raises(ValueError, match=r"CogVideoXFunControl: model: CogVideoX 1.0 t2v.* not a CogVideoX-Fun"):
        _control(runner, model_2b, vae, TEXT, TEXT, video)
    with pytest.raises(ValueError, match=r"CogVideoXFunControl: control_video: expected IMAGE frames"):
        _control(runner, model, vae, TEXT, TEXT, video[..., :1])
    start = video[:1]
    with pytest.raises(ValueError, match="is a CogVideoX-Fun control model; use CogVideoXFunControl"):
        runner.call(
            CogVideoXImageToVideo,
            positive=TEXT,
            negative=TEXT,
            vae=vae,
            model=model,
            start_image=start,
            width=SIZE,
            height=SIZE,
            length=LENGTH,
            batch_size=1,
        )


def test_sampling_without_control_is_refused(runner: NodeRunner) -> None:
    model, _, _, _ = _load(runner)
    (latent, _) = runner.call(
        EmptyCogVideoXLatentVideo, model=model, width=SIZE, height=SIZE, length=LENGTH, batch_size=1
    )
    with pytest.raises(ValueError, match="control model: condition it on a control video with CogVideoXFunControl"):
        fidelity.ksample(runner, model, TEXT, TEXT, latent, seed=SEED, steps=1, cfg=CFG)


def test_control_conditioning_that_does_not_fit_is_refused(runner: NodeRunner) -> None:
    control = _load(runner)[0].adapter
    t2v = _load(runner, "CogVideoX-2b")[0].adapter
    assert control.describe() == "CogVideoX 1.0 control, dim 32, 2 layers"
    latent = torch.zeros(1, 16, 3, 8, 8)
    text = TEXT[0][0]
    control.check_conditioning((text, {CONTROL_LATENTS: torch.zeros(1, 16, 3, 8, 8)}), latent)
    with pytest.raises(ValueError, match=r"control latents have shape \(1, 16, 2, 8, 8\).*\[batch, 16, 3, 8, 8\]"):
        control.check_conditioning((text, {CONTROL_LATENTS: torch.zeros(1, 16, 2, 8, 8)}), latent)
    with pytest.raises(ValueError, match=r"control latents have shape \(1, 16, 3, 4, 4\)"):
        control.check_conditioning((text, {CONTROL_LATENTS: torch.zeros(1, 16, 3, 4, 4)}), latent)
    with pytest.raises(ValueError, match="not a control model; it takes no control video"):
        t2v.check_conditioning((text, {CONTROL_LATENTS: torch.zeros(1, 16, 3, 8, 8)}), latent)
    with pytest.raises(ValueError, match="is a control model; it takes no start image"):
        image = torch.zeros(1, 16, 3, 8, 8)
        control.check_conditioning((text, {CONTROL_LATENTS: image, IMAGE_LATENTS: image}), latent)
