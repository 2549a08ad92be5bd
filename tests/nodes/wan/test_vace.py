"""Wan VACE: ``WanVaceToVideo`` with a control video, masks and a reference image, sampled by our nodes from the
tiny VACE single file, reproduces diffusers' ``WanVACEPipeline`` (float32, same seed and sigmas); and its inputs'
errors name the node's inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler, WanVACEPipeline
from PIL import Image

from nodes.latent import EmptyHunyuanLatentVideo, TrimVideoLatent
from nodes.loaders import CLIPLoader, UNETLoader, VAELoader
from nodes.sampling_parts import ModelSamplingSD3
from nodes.wan import WanVaceToVideo
from tests.nodes import fidelity
from tests.nodes.node_runner import NodeRunner

PROMPT = "a dancer in a red dress"
NEGATIVE = "blurry"
SEED, STEPS, CFG, SHIFT, STRENGTH = 7, 3, 4.0, 3.0, 0.8
SIZE, LENGTH = 64, 9
VACE_FILE = "wan2.1_vace_1.3B_fp16.safetensors"


def _parts(runner: NodeRunner) -> tuple:
    (model,) = runner.call(UNETLoader, unet_name=VACE_FILE, weight_dtype="default")
    (model,) = runner.call(ModelSamplingSD3, model=model, shift=SHIFT)
    (clip,) = runner.call(CLIPLoader, clip_name="umt5_xxl_fp16.safetensors", type="wan")
    (vae,) = runner.call(VAELoader, vae_name="wan_2.1_vae.safetensors")
    positive, negative = fidelity.encode_prompts(runner, clip, PROMPT, NEGATIVE)
    return model, clip, vae, positive, negative


def _controls() -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """Control frames, masks (the left half of the first four frames kept, the rest generated) and a reference."""
    rng = np.random.default_rng(11)
    video = [rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8) for _ in range(LENGTH)]
    masks = []
    for index in range(LENGTH):
        mask = np.full((SIZE, SIZE), 255, dtype=np.uint8)
        if index < 4:
            mask[:, : SIZE // 2] = 0
        masks.append(mask)
    reference = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    return video, masks, reference


def _as_image(frames: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(frames)).float().div(255.0)


def _sampled(runner: NodeRunner, model, positive, negative, latent, vae, trim: int) -> torch.Tensor:
    scheduler = FlowMatchEulerDiscreteScheduler(shift=SHIFT)
    scheduler.set_timesteps(STEPS)
    output = fidelity.sample_custom(runner, model, positive, negative, latent, scheduler.sigmas, seed=SEED, cfg=CFG)
    if trim:
        (output,) = runner.call(TrimVideoLatent, samples=output, trim_amount=trim)
    return fidelity.decoded(runner, output, vae)


def _reference_frames(model, clip, vae, **conditions) -> torch.Tensor:
    with model.handle.use() as transformer, clip.handle.use() as encoder, vae.handle.use() as autoencoder:
        pipeline = WanVACEPipeline(
            tokenizer=clip.tokenizer,
            text_encoder=encoder,
            vae=autoencoder,
            scheduler=FlowMatchEulerDiscreteScheduler(shift=SHIFT),
            transformer=transformer,
        )
        inputs = fidelity.pipeline_inputs(
            PROMPT, NEGATIVE, height=SIZE, width=SIZE, frames=LENGTH, steps=STEPS, guidance=CFG, seed=SEED
        )
        return fidelity.pipeline_frames(pipeline(**conditions, conditioning_scale=STRENGTH, **inputs).frames)


def test_control_video_masks_and_reference_match_wan_vace_pipeline(runner: NodeRunner) -> None:
    model, clip, vae, positive, negative = _parts(runner)
    video, masks, reference = _controls()
    positive, negative, latent, trim = runner.call(
        WanVaceToVideo,
        positive=positive,
        negative=negative,
        vae=vae,
        width=SIZE,
        height=SIZE,
        length=LENGTH,
        batch_size=1,
        strength=STRENGTH,
        control_video=_as_image(video),
        control_masks=torch.from_numpy(np.stack(masks)).float().div(255.0),
        reference_image=_as_image([reference]),
    )
    assert trim == 1 and latent["samples"].shape == (1, 16, 4, SIZE // 8, SIZE // 8)  # the reference in front
    ours = _sampled(runner, model, positive, negative, latent, vae, trim)
    assert ours.shape == (LENGTH, SIZE, SIZE, 3)

    expected = _reference_frames(
        model,
        clip,
        vae,
        video=[Image.fromarray(frame) for frame in video],
        mask=[Image.fromarray(mask) for mask in masks],
        reference_images=Image.fromarray(reference),
    )
    difference = fidelity.max_difference(ours, expected)
    assert difference < 1e-4, difference
    assert ours.std() > 0.01


def test_without_controls_matches_the_pipeline_without_video(runner: NodeRunner) -> None:
    """No control video, masks or reference: a gray video to generate everywhere, as the pipeline does."""
    model, clip, vae, positive, negative = _parts(runner)
    positive, negative, latent, trim = runner.call(
        WanVaceToVideo,
        positive=positive,
        negative=negative,
        vae=vae,
        width=SIZE,
        height=SIZE,
        length=LENGTH,
        batch_size=1,
        strength=STRENGTH,
    )
    assert trim == 0
    ours = _sampled(runner, model, positive, negative, latent, vae, trim)
    difference = fidelity.max_difference(ours, _reference_frames(model, clip, vae))
    assert difference < 1e-4, difference


def test_strength_reaches_the_model(runner: NodeRunner) -> None:
    model, _, vae, positive, negative = _parts(runner)
    video, _, _ = _controls()
    common = {"positive": positive, "negative": negative, "vae": vae, "width": SIZE, "height": SIZE}
    frames = {"length": LENGTH, "batch_size": 1, "control_video": _as_image(video)}
    outputs = []
    for strength in (0.0, 1.0):
        positive_s, negative_s, latent, _ = runner.call(WanVaceToVideo, **common, **frames, strength=strength)
        outputs.append(_sampled(runner, model, positive_s, negative_s, latent, vae, 0))
    assert fidelity.max_difference(outputs[0], outputs[1]) > 1e-3


def test_a_vace_model_without_vace_conditioning_is_refused(runner: NodeRunner) -> None:
    model, _, vae, positive, negative = _parts(runner)
    (latent,) = runner.call(EmptyHunyuanLatentVideo, width=SIZE, height=SIZE, length=LENGTH, batch_size=1)
    with pytest.raises(ValueError, match="is a VACE model: condition it with WanVaceToVideo"):
        _sampled(runner, model, positive, negative, latent, vae, 0)


def test_control_inputs_of_another_size_or_length_are_fitted(runner: NodeRunner) -> None:
    """A longer control video is cut, a smaller one resized; masks likewise; a wide reference is letterboxed."""
    _, _, vae, positive, negative = _parts(runner)
    common = {"positive": positive, "negative": negative, "vae": vae, "width": SIZE, "height": SIZE}
    _, _, latent, trim = runner.call(
        WanVaceToVideo,
        **common,
        length=LENGTH,
        batch_size=2,
        strength=1.0,
        control_video=torch.rand(LENGTH + 4, 32, 48, 3),
        control_masks=torch.rand(3, 16, 16),
        reference_image=torch.rand(1, 20, 60, 3),
    )
    assert latent["samples"].shape == (2, 16, 4, SIZE // 8, SIZE // 8) and trim == 1
    with pytest.raises(ValueError, match=r"control_masks: expected a MASK"):
        runner.call(WanVaceToVideo, **common, length=LENGTH, batch_size=1, strength=1.0, control_masks="mask")
    with pytest.raises(ValueError, match=r"control_video: expected IMAGE frames"):
        runner.call(
            WanVaceToVideo, **common, length=LENGTH, batch_size=1, strength=1.0, control_video=torch.rand(4, 8, 8)
        )


def test_a_second_vace_control_is_refused_rather_than_replacing_the_first(runner: NodeRunner) -> None:
    _, _, vae, positive, negative = _parts(runner)
    common = {"vae": vae, "width": SIZE, "height": SIZE, "length": LENGTH, "batch_size": 1, "strength": 1.0}
    once_positive, once_negative, _, _ = runner.call(WanVaceToVideo, positive=positive, negative=negative, **common)
    with pytest.raises(ValueError, match=r"WanVaceToVideo: positive: already carries a VACE control"):
        runner.call(WanVaceToVideo, positive=once_positive, negative=negative, **common)
    with pytest.raises(ValueError, match=r"WanVaceToVideo: negative: already carries a VACE control"):
        runner.call(WanVaceToVideo, positive=positive, negative=once_negative, **common)
