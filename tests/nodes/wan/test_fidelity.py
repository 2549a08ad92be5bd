"""Fidelity to diffusers: our nodes (SamplerCustom with euler over the sigmas of diffusers' flow-matching Euler
scheduler) reproduce ``WanPipeline`` and ``WanImageToVideoPipeline`` (first-last-frame, and 2.2's
``expand_timesteps``) frames for the same tiny model files, prompts,
seed and guidance, in float32."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler, WanImageToVideoPipeline, WanPipeline
from PIL import Image
from transformers import CLIPImageProcessor

from nodes.conditioning import CLIPVisionEncode
from nodes.latent import EmptyHunyuanLatentVideo
from nodes.loaders import CLIPLoader, CLIPVisionLoader, UNETLoader, VAELoader
from nodes.sampling_parts import ModelSamplingSD3
from nodes.wan import Wan22ImageToVideoLatent, WanFirstLastFrameToVideo, WanImageToVideo
from tests.nodes import fidelity
from tests.nodes.node_runner import NodeRunner

PROMPT = "a red car on the beach in snow"
NEGATIVE = "a dog"
SEED, STEPS, CFG, SHIFT = 42, 4, 5.0, 3.0
WIDTH = HEIGHT = 64
LENGTH = 9
I2V_SIZE = 224
TI2V_SIZE = 64


def _common(runner: NodeRunner, unet: str) -> tuple:
    (model,) = runner.call(UNETLoader, unet_name=unet, weight_dtype="default")
    (model,) = runner.call(ModelSamplingSD3, model=model, shift=SHIFT)
    (clip,) = runner.call(CLIPLoader, clip_name="umt5_xxl_fp16.safetensors", type="wan")
    positive, negative = fidelity.encode_prompts(runner, clip, PROMPT, NEGATIVE)
    (vae,) = runner.call(VAELoader, vae_name="wan_2.1_vae.safetensors")
    return model, clip, vae, positive, negative


def _sample(runner: NodeRunner, model, positive, negative, latent, vae) -> torch.Tensor:
    scheduler = FlowMatchEulerDiscreteScheduler(shift=SHIFT)
    scheduler.set_timesteps(STEPS)
    output = fidelity.sample_custom(runner, model, positive, negative, latent, scheduler.sigmas, seed=SEED, cfg=CFG)
    return fidelity.decoded(runner, output, vae)


def _pipeline_inputs(height: int, width: int) -> dict[str, Any]:
    """The pipelines' prompts, frame size, frames, steps, guidance and seed."""
    return fidelity.pipeline_inputs(
        PROMPT, NEGATIVE, height=height, width=width, frames=LENGTH, steps=STEPS, guidance=CFG, seed=SEED
    )


def _image_to_video_reference(model, clip, vae, clip_vision, **images: Image.Image) -> torch.Tensor:
    """``WanImageToVideoPipeline``'s frames at ``I2V_SIZE`` for the start (and ``last_image``) images."""
    handles = (model.handle, clip.handle, vae.handle, clip_vision.handle)
    with handles[0].use() as transformer, handles[1].use() as encoder, handles[2].use() as autoencoder:
        with handles[3].use() as image_encoder:
            pipeline = WanImageToVideoPipeline(
                tokenizer=clip.tokenizer,
                text_encoder=encoder,
                vae=autoencoder,
                scheduler=FlowMatchEulerDiscreteScheduler(shift=SHIFT),
                transformer=transformer,
                image_encoder=image_encoder,
                image_processor=CLIPImageProcessor(),  # OpenAI CLIP's 224 px preprocessing
            )
            return pipeline(**images, **_pipeline_inputs(I2V_SIZE, I2V_SIZE)).frames


def test_text_to_video_matches_wan_pipeline(runner: NodeRunner) -> None:
    model, clip, vae, positive, negative = _common(runner, "wan2.1_t2v_1.3B_fp16.safetensors")
    (latent,) = runner.call(EmptyHunyuanLatentVideo, width=WIDTH, height=HEIGHT, length=LENGTH, batch_size=1)
    ours = _sample(runner, model, positive, negative, latent, vae)
    assert ours.shape == (LENGTH, HEIGHT, WIDTH, 3)
    assert len(runner.progress) > 0 and runner.progress[-1] == (STEPS, STEPS)

    with model.handle.use() as transformer, clip.handle.use() as encoder, vae.handle.use() as autoencoder:
        pipeline = WanPipeline(
            tokenizer=clip.tokenizer,
            text_encoder=encoder,
            vae=autoencoder,
            scheduler=FlowMatchEulerDiscreteScheduler(shift=SHIFT),
            transformer=transformer,
        )
        reference = pipeline(**_pipeline_inputs(HEIGHT, WIDTH)).frames
    difference = fidelity.max_difference(ours, fidelity.pipeline_frames(reference))
    assert difference < 1e-4, difference
    assert ours.std() > 0.01  # not a constant picture


def test_image_to_video_matches_wan_image_to_video_pipeline(runner: NodeRunner) -> None:
    """At 224x224, CLIP's own input size, so both sides see the start image without resizing (PIL's and torch's
    bicubic resize differ by a few 1/255, measured in ``test_clip_vision``)."""
    model, clip, vae, positive, negative = _common(runner, "wan2.1_i2v_480p_14B_fp16.safetensors")
    (clip_vision,) = runner.call(CLIPVisionLoader, clip_name="clip_vision_h.safetensors")
    pixels, start = fidelity.random_picture(3, I2V_SIZE)
    (vision,) = runner.call(CLIPVisionEncode, clip_vision=clip_vision, image=start, crop="center")
    positive, negative, latent = runner.call(
        WanImageToVideo,
        positive=positive,
        negative=negative,
        vae=vae,
        width=I2V_SIZE,
        height=I2V_SIZE,
        length=LENGTH,
        batch_size=1,
        clip_vision_output=vision,
        start_image=start,
    )
    ours = _sample(runner, model, positive, negative, latent, vae)

    reference = _image_to_video_reference(model, clip, vae, clip_vision, image=Image.fromarray(pixels))
    difference = fidelity.max_difference(ours, fidelity.pipeline_frames(reference))
    assert difference < 1e-4, difference


def test_ti2v_start_image_matches_the_expand_timesteps_pipeline(runner: NodeRunner) -> None:
    """Wan 2.2 TI2V 5B: the start frame kept clean in the latent with per-token timesteps 0 (diffusers'
    ``expand_timesteps``), reproduced by ``Wan22ImageToVideoLatent``'s noise mask."""
    model, clip, _, positive, negative = _common(runner, "wan2.2_ti2v_5B_fp16.safetensors")
    (vae,) = runner.call(VAELoader, vae_name="wan2.2_vae.safetensors")
    pixels, start = fidelity.random_picture(5, TI2V_SIZE)
    (latent,) = runner.call(
        Wan22ImageToVideoLatent,
        vae=vae,
        width=TI2V_SIZE,
        height=TI2V_SIZE,
        length=LENGTH,
        batch_size=1,
        start_image=start,
    )
    assert latent["noise_mask"].shape == (1, 1, 3, TI2V_SIZE // 16, TI2V_SIZE // 16)
    ours = _sample(runner, model, positive, negative, latent, vae)

    with model.handle.use() as transformer, clip.handle.use() as encoder, vae.handle.use() as autoencoder:
        pipeline = WanImageToVideoPipeline(
            tokenizer=clip.tokenizer,
            text_encoder=encoder,
            vae=autoencoder,
            scheduler=FlowMatchEulerDiscreteScheduler(shift=SHIFT),
            transformer=transformer,
            expand_timesteps=True,
        )
        reference = pipeline(image=Image.fromarray(pixels), **_pipeline_inputs(TI2V_SIZE, TI2V_SIZE)).frames
    difference = fidelity.max_difference(ours, fidelity.pipeline_frames(reference))
    assert difference < 1e-4, difference
    # the first frame is the start image through the VAE, not generated
    first = fidelity.decoded(runner, {"samples": latent["samples"][:, :, :1]}, vae)
    assert fidelity.max_difference(ours[0], first[0]) < 1e-4


def test_first_last_frame_matches_wan_image_to_video_pipeline(runner: NodeRunner) -> None:
    model, clip, vae, positive, negative = _common(runner, "wan2.1_flf2v_720p_14B_fp16.safetensors")
    (clip_vision,) = runner.call(CLIPVisionLoader, clip_name="clip_vision_h.safetensors")
    rng = np.random.default_rng(4)
    pixels = [rng.integers(0, 256, (I2V_SIZE, I2V_SIZE, 3), dtype=np.uint8) for _ in range(2)]
    images = [torch.from_numpy(p).float().div(255.0).unsqueeze(0) for p in pixels]
    visions = [runner.call(CLIPVisionEncode, clip_vision=clip_vision, image=i, crop="center")[0] for i in images]
    common = {"vae": vae, "width": I2V_SIZE, "height": I2V_SIZE, "length": LENGTH, "batch_size": 1}
    text = {"positive": positive, "negative": negative}
    positive, negative, latent = runner.call(
        WanFirstLastFrameToVideo,
        **text,
        **common,
        clip_vision_start_image=visions[0],
        clip_vision_end_image=visions[1],
        start_image=images[0],
        end_image=images[1],
    )
    ours = _sample(runner, model, positive, negative, latent, vae)

    reference = _image_to_video_reference(
        model, clip, vae, clip_vision, image=Image.fromarray(pixels[0]), last_image=Image.fromarray(pixels[1])
    )
    difference = fidelity.max_difference(ours, fidelity.pipeline_frames(reference))
    assert difference < 1e-4, difference

    one_image, _, _ = runner.call(
        WanFirstLastFrameToVideo, **text, **common, clip_vision_start_image=visions[0], start_image=images[0]
    )
    with pytest.raises(ValueError, match=r"two images .* connect CLIPVisionEncode of both"):
        _sample(runner, model, one_image, negative, latent, vae)
