"""Fidelity to diffusers: the SkyReels-V2 I2V pipeline folder, loaded by ``DiffusersPipelineLoader`` and conditioned
as ComfyUI's Wan 2.1 image-to-video workflow conditions (``CLIPVisionEncode`` -> ``WanImageToVideo``), sampled by
``SamplerCustom`` reproduces ``SkyReelsV2ImageToVideoPipeline`` for the same tiny folder, prompts, image, seed and
sigmas, in float32."""

from __future__ import annotations

import numpy as np
import torch
from diffusers import FlowMatchEulerDiscreteScheduler, SkyReelsV2ImageToVideoPipeline
from PIL import Image
from transformers import CLIPImageProcessor

from nodes.conditioning import CLIPTextEncode, CLIPVisionEncode
from nodes.pipeline_loaders import DiffusersPipelineLoader
from nodes.sampling import SamplerCustom
from nodes.sampling_parts import KSamplerSelect, ModelSamplingSD3
from nodes.vae import VAEDecode
from nodes.wan import WanImageToVideo
from tests.nodes.node_runner import NodeRunner

PROMPT = "a red car on the beach in snow"
NEGATIVE = "a dog"
SEED, STEPS, CFG, SHIFT = 42, 3, 5.0, 5.0
SIZE = 224  # CLIP's own input size: both sides see the image without resizing
LENGTH = 5
TOLERANCE = 1e-4
FOLDER = "SkyReels-V2-I2V-14B-540P-Diffusers"


def test_image_to_video_from_the_diffusers_folder_matches_the_pipeline(runner: NodeRunner) -> None:
    model, clip, vae, clip_vision = runner.call(
        DiffusersPipelineLoader, model_path=FOLDER, transformer="transformer", weight_dtype="default"
    )
    assert model.adapter.family == "skyreels" and model.adapter.needs_image
    (model,) = runner.call(ModelSamplingSD3, model=model, shift=SHIFT)
    (positive,) = runner.call(CLIPTextEncode, clip=clip, text=PROMPT)
    (negative,) = runner.call(CLIPTextEncode, clip=clip, text=NEGATIVE)
    pixels = np.random.default_rng(3).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    start = torch.from_numpy(pixels).float().div(255.0).unsqueeze(0)
    (vision,) = runner.call(CLIPVisionEncode, clip_vision=clip_vision, image=start, crop="center")
    positive, negative, latent = runner.call(
        WanImageToVideo,
        positive=positive,
        negative=negative,
        vae=vae,
        width=SIZE,
        height=SIZE,
        length=LENGTH,
        batch_size=1,
        clip_vision_output=vision,
        start_image=start,
    )
    scheduler = FlowMatchEulerDiscreteScheduler(shift=SHIFT)
    scheduler.set_timesteps(STEPS)
    (sampler,) = runner.call(KSamplerSelect, sampler_name="euler")
    output, _ = runner.result(
        SamplerCustom,
        model=model,
        add_noise=True,
        noise_seed=SEED,
        cfg=CFG,
        positive=positive,
        negative=negative,
        sampler=sampler,
        sigmas=scheduler.sigmas,
        latent_image=latent,
    )
    (ours,) = runner.call(VAEDecode, samples=output, vae=vae)
    assert ours.shape == (LENGTH, SIZE, SIZE, 3)
    assert ours.std() > 0.01

    handles = (model.handle, clip.handle, vae.handle, clip_vision.handle)
    with handles[0].use() as transformer, handles[1].use() as encoder, handles[2].use() as autoencoder:
        with handles[3].use() as image_encoder:
            pipeline = SkyReelsV2ImageToVideoPipeline(
                tokenizer=clip.tokenizer,
                text_encoder=encoder,
                image_encoder=image_encoder,
                image_processor=CLIPImageProcessor(),  # OpenAI CLIP's 224 px preprocessing, as the folder's
                transformer=transformer,
                vae=autoencoder,
                scheduler=FlowMatchEulerDiscreteScheduler(shift=SHIFT),
            )
            reference = pipeline(
                image=Image.fromarray(pixels),
                prompt=PROMPT,
                negative_prompt=NEGATIVE,
                height=SIZE,
                width=SIZE,
                num_frames=LENGTH,
                num_inference_steps=STEPS,
                guidance_scale=CFG,
                generator=torch.Generator().manual_seed(SEED),
                output_type="pt",
            ).frames
    difference = (ours - reference[0].permute(0, 2, 3, 1).float()).abs().max().item()
    assert difference < TOLERANCE, difference
