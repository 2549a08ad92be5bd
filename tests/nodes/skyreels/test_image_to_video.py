"""Fidelity to diffusers: the SkyReels-V2 I2V pipeline folder, loaded by ``DiffusersPipelineLoader`` and conditioned
as ComfyUI's Wan 2.1 image-to-video workflow conditions (``CLIPVisionEncode`` -> ``WanImageToVideo``), sampled by
``SamplerCustom`` reproduces ``SkyReelsV2ImageToVideoPipeline`` for the same tiny folder, prompts, image, seed and
sigmas, in float32."""

from __future__ import annotations

from diffusers import FlowMatchEulerDiscreteScheduler, SkyReelsV2ImageToVideoPipeline
from PIL import Image
from transformers import CLIPImageProcessor

from nodes.conditioning import CLIPVisionEncode
from nodes.pipeline_loaders import DiffusersPipelineLoader
from nodes.sampling_parts import ModelSamplingSD3
from nodes.wan import WanImageToVideo
from tests.nodes import fidelity
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
    positive, negative = fidelity.encode_prompts(runner, clip, PROMPT, NEGATIVE)
    pixels, start = fidelity.random_picture(3, SIZE)
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
    output = fidelity.sample_custom(runner, model, positive, negative, latent, scheduler.sigmas, seed=SEED, cfg=CFG)
    ours = fidelity.decoded(runner, output, vae)
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
            inputs = fidelity.pipeline_inputs(
                PROMPT, NEGATIVE, height=SIZE, width=SIZE, frames=LENGTH, steps=STEPS, guidance=CFG, seed=SEED
            )
            reference = pipeline(image=Image.fromarray(pixels), **inputs).frames
    difference = fidelity.max_difference(ours, fidelity.pipeline_frames(reference))
    assert difference < TOLERANCE, difference
