"""Fidelity to diffusers at the node level: UNETLoader + DualCLIPLoader (hunyuan_video) + CLIPTextEncode +
FluxGuidance + EmptyHunyuanLatentVideo + SamplerCustom (euler over the pipelines' sigmas, shift 7) + VAEDecode
reproduce ``HunyuanVideoPipeline``'s frames for the same tiny files, prompts, seed, true CFG and embedded guidance;
HunyuanImageToVideo ("v1 (concat)", "v2 (replace)") + BasicGuider + SamplerCustomAdvanced (the shape of ComfyUI's
HunyuanVideo image-to-video workflows: no negative) reproduce ``HunyuanVideoImageToVideoPipeline``'s, in float32.

The text-to-video file loads with token-replace blocks (a v2 replace file holds the same tensors); the reference
pipeline gets a copy with plain blocks and the same weights. The image-to-video pipeline encodes its prompt with
the image through llava (``TextEncodeHunyuanVideo_ImageToVideo`` in ComfyUI's vocabulary); here it is given our
CLIPTextEncode conditioning as prompt embeddings, so the comparison covers the image conditioning and sampling."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from diffusers import (
    FlowMatchEulerDiscreteScheduler,
    HunyuanVideoImageToVideoPipeline,
    HunyuanVideoPipeline,
    HunyuanVideoTransformer3DModel,
)
from PIL import Image

from models.families.hunyuan.adapter import DEFAULT_SHIFT
from models.families.hunyuan.latents import SCALING_FACTOR
from models.noise import Noise
from nodes.conditioning import FluxGuidance
from nodes.hunyuan import HunyuanImageToVideo
from nodes.latent import EmptyHunyuanLatentVideo
from nodes.loaders import DualCLIPLoader, UNETLoader, VAELoader
from nodes.sampling import SamplerCustomAdvanced
from nodes.sampling_parts import BasicGuider, KSamplerSelect, RandomNoise
from tests.nodes import fidelity
from tests.nodes.node_runner import NodeRunner

PROMPT = "a red car on the beach in snow"
NEGATIVE = "a dog"
SEED, STEPS, CFG, GUIDANCE = 42, 4, 2.5, 4.5
SIZE, LENGTH, LATENT_FRAMES = 64, 9, 3
PIPELINE_MIX = 0.999  # HunyuanVideoImageToVideoPipeline.prepare_latents mixes 0.1% of the image latent into the noise
T2V, I2V_CONCAT = "hunyuan_video_t2v_720p_bf16.safetensors", "hunyuan_video_image_to_video_720p_bf16.safetensors"
I2V_REPLACE = "hunyuan_video_v2_replace_image_to_video_720p_bf16.safetensors"


def _sigmas() -> torch.Tensor:
    """The pipelines' schedule: ``linspace(1, 0)`` without its end, shifted by the scheduler, then 0."""
    scheduler = FlowMatchEulerDiscreteScheduler(shift=DEFAULT_SHIFT)
    scheduler.set_timesteps(sigmas=np.linspace(1.0, 0.0, STEPS + 1)[:-1])
    return scheduler.sigmas


def _common(runner: NodeRunner, unet: str) -> tuple[Any, ...]:
    (model,) = runner.call(UNETLoader, unet_name=unet, weight_dtype="default")
    (clip,) = runner.call(
        DualCLIPLoader,
        clip_name1="clip_l.safetensors",
        clip_name2="llava_llama3_fp16.safetensors",
        type="hunyuan_video",
    )
    positive, negative = fidelity.encode_prompts(runner, clip, PROMPT, NEGATIVE)
    (positive,) = runner.call(FluxGuidance, conditioning=positive, guidance=GUIDANCE)
    (negative,) = runner.call(FluxGuidance, conditioning=negative, guidance=GUIDANCE)
    (vae,) = runner.call(VAELoader, vae_name="hunyuan_video_vae_bf16.safetensors")
    return model, clip, vae, positive, negative


def _sample(runner: NodeRunner, model, positive, negative, latent, vae) -> torch.Tensor:
    output = fidelity.sample_custom(runner, model, positive, negative, latent, _sigmas(), seed=SEED, cfg=CFG)
    return fidelity.decoded(runner, output, vae)


def _plain_blocks(transformer: HunyuanVideoTransformer3DModel) -> HunyuanVideoTransformer3DModel:
    """The same weights in diffusers' plain (text-to-video) blocks."""
    plain = HunyuanVideoTransformer3DModel.from_config({**transformer.config, "image_condition_type": None})
    plain.load_state_dict(transformer.state_dict())
    return plain.eval()


def test_text_to_video_matches_hunyuan_video_pipeline(runner: NodeRunner) -> None:
    model, clip, vae, positive, negative = _common(runner, T2V)
    assert positive[0][1]["guidance"] == GUIDANCE and "pooled_output" in positive[0][1]
    (latent,) = runner.call(EmptyHunyuanLatentVideo, width=SIZE, height=SIZE, length=LENGTH, batch_size=1)
    ours = _sample(runner, model, positive, negative, latent, vae)
    assert ours.shape == (LENGTH, SIZE, SIZE, 3)
    assert runner.progress[-1] == (STEPS, STEPS)

    llama, clip_l = clip.handles
    with model.handle.use() as transformer, llama.use() as text_encoder, clip_l.use() as text_encoder_2:
        with vae.handle.use() as autoencoder:
            assert transformer.config.image_condition_type == "token_replace"
            pipeline = HunyuanVideoPipeline(
                text_encoder=text_encoder,
                tokenizer=clip.tokenizers[0],
                transformer=_plain_blocks(transformer),
                vae=autoencoder,
                scheduler=FlowMatchEulerDiscreteScheduler(shift=DEFAULT_SHIFT),
                text_encoder_2=text_encoder_2,
                tokenizer_2=clip.tokenizers[1],
            )
            inputs = fidelity.pipeline_inputs(
                PROMPT, NEGATIVE, height=SIZE, width=SIZE, frames=LENGTH, steps=STEPS, guidance=GUIDANCE, seed=SEED
            )
            reference = pipeline(**inputs, true_cfg_scale=CFG).frames
    difference = fidelity.max_difference(ours, fidelity.pipeline_frames(reference))
    print(f"hunyuan t2v max difference {difference:.3g}")
    assert difference < 1e-4, difference
    assert ours.std() > 0.01  # not a constant picture


def _image_to_video_reference(model, vae, positive, pixels: np.ndarray, image_latent: torch.Tensor) -> torch.Tensor:
    """``HunyuanVideoImageToVideoPipeline``'s frames, with our conditioning as its prompt embeddings and initial
    latents that its mix with the image latent turns into our initial noise."""
    noise = Noise(SEED).draw(torch.empty(1, 16, LATENT_FRAMES, SIZE // 8, SIZE // 8))[0]
    mixed_in = (image_latent * SCALING_FACTOR).repeat(1, 1, LATENT_FRAMES, 1, 1)
    start = (noise - mixed_in * (1 - PIPELINE_MIX)) / PIPELINE_MIX
    embeds, extras = positive[0]
    with model.handle.use() as transformer, vae.handle.use() as autoencoder:
        pipeline = HunyuanVideoImageToVideoPipeline(
            text_encoder=None,
            tokenizer=None,
            transformer=transformer,
            vae=autoencoder,
            scheduler=FlowMatchEulerDiscreteScheduler(shift=DEFAULT_SHIFT),
            text_encoder_2=None,
            tokenizer_2=None,
            image_processor=None,
        )
        return pipeline(
            image=Image.fromarray(pixels),
            prompt_embeds=embeds,
            prompt_attention_mask=extras["attention_mask"],
            pooled_prompt_embeds=extras["pooled_output"],
            height=SIZE,
            width=SIZE,
            num_frames=LENGTH,
            num_inference_steps=STEPS,
            guidance_scale=GUIDANCE,
            latents=start,
            generator=torch.Generator().manual_seed(SEED),
            output_type="pt",
        ).frames


def _image_to_video(runner: NodeRunner, unet: str, guidance_type: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Our frames and the pipeline's for the start image with ``guidance_type``."""
    model, _, vae, positive, _ = _common(runner, unet)
    pixels, start = fidelity.random_picture(5, SIZE)
    image_positive, latent = runner.call(
        HunyuanImageToVideo,
        positive=positive,
        vae=vae,
        width=SIZE,
        height=SIZE,
        length=LENGTH,
        batch_size=1,
        guidance_type=guidance_type,
        start_image=start,
    )
    (guider,) = runner.call(BasicGuider, model=model, conditioning=image_positive)
    (noise,) = runner.call(RandomNoise, noise_seed=SEED)
    (sampler,) = runner.call(KSamplerSelect, sampler_name="euler")
    output, _ = runner.result(
        SamplerCustomAdvanced, noise=noise, guider=guider, sampler=sampler, sigmas=_sigmas(), latent_image=latent
    )
    ours = fidelity.decoded(runner, output, vae)
    assert ours.shape == (LENGTH, SIZE, SIZE, 3)
    image_latent = image_positive[0][1].get("concat_latent_image", latent["samples"][:, :, :1])
    reference = _image_to_video_reference(model, vae, positive, pixels, image_latent)
    return ours, fidelity.pipeline_frames(reference)


def test_concat_image_to_video_matches_the_latent_concat_pipeline(runner: NodeRunner) -> None:
    ours, reference = _image_to_video(runner, I2V_CONCAT, "v1 (concat)")
    ours = ours[4:]  # the latent_concat pipeline drops the first four decoded frames
    assert ours.shape == reference.shape == (LENGTH - 4, SIZE, SIZE, 3)
    difference = fidelity.max_difference(ours, reference)
    print(f"hunyuan i2v v1 (concat) max difference {difference:.3g}")
    assert difference < 1e-4, difference


def test_replace_image_to_video_matches_the_token_replace_pipeline(runner: NodeRunner) -> None:
    ours, reference = _image_to_video(runner, I2V_REPLACE, "v2 (replace)")
    assert reference.shape == (LENGTH, SIZE, SIZE, 3)
    difference = fidelity.max_difference(ours, reference)
    print(f"hunyuan i2v v2 (replace) max difference {difference:.3g}")
    assert difference < 1e-4, difference
