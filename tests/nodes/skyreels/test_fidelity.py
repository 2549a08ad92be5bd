"""Fidelity to diffusers: ``SkyReelsDiffusionForcingSampler`` reproduces ``SkyReelsV2DiffusionForcingPipeline``
(synchronous, asynchronous with causal blocks, and a long video in overlapping chunks with noised prefixes), and
``SamplerCustom`` reproduces ``SkyReelsV2Pipeline``, for the same tiny files, prompts, seed and guidance, in
float32."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from diffusers import (
    FlowMatchEulerDiscreteScheduler,
    SkyReelsV2DiffusionForcingPipeline,
    SkyReelsV2Pipeline,
    UniPCMultistepScheduler,
)

from models.tiny.skyreels import DF_FILE
from nodes.latent import EmptyHunyuanLatentVideo
from nodes.loaders import CLIPLoader, UNETLoader, VAELoader
from nodes.pipeline_loaders import DiffusersPipelineLoader
from nodes.sampling_parts import ModelSamplingSD3
from nodes.skyreels import SkyReelsDiffusionForcingSampler
from tests.nodes import fidelity
from tests.nodes.node_runner import NodeRunner

PROMPT = "a red car on the beach in snow"
NEGATIVE = "a dog"
SEED, STEPS, CFG, SHIFT = 42, 4, 5.0, 8.0
SIZE = 64
TOLERANCE = 1e-4


def _pipeline_inputs(length: int) -> dict[str, Any]:
    return fidelity.pipeline_inputs(
        PROMPT, NEGATIVE, height=SIZE, width=SIZE, frames=length, steps=STEPS, guidance=CFG, seed=SEED
    )


def _diffusion_forcing(runner: NodeRunner, length: int, **forcing: Any) -> torch.Tensor:
    """Our frames and the pipeline's max abs difference from them, for the DF single file."""
    (model,) = runner.call(UNETLoader, unet_name=DF_FILE, weight_dtype="default")
    (clip,) = runner.call(CLIPLoader, clip_name="umt5_xxl_fp16.safetensors", type="wan")
    positive, negative = fidelity.encode_prompts(runner, clip, PROMPT, NEGATIVE)
    (vae,) = runner.call(VAELoader, vae_name="wan_2.1_vae.safetensors")
    (latent,) = runner.call(EmptyHunyuanLatentVideo, width=SIZE, height=SIZE, length=length, batch_size=1)
    settings = {
        "base_num_frames": 97,
        "overlap_history": 0,
        "ar_step": 0,
        "causal_block_size": 1,
        "addnoise_condition": 0.0,
        "fps": 24,
        **forcing,
    }
    (sampled,) = runner.call(
        SkyReelsDiffusionForcingSampler,
        model=model,
        positive=positive,
        negative=negative,
        latent_image=latent,
        seed=SEED,
        steps=STEPS,
        cfg=CFG,
        shift=SHIFT,
        **settings,
    )
    ours = fidelity.decoded(runner, sampled, vae)
    assert ours.shape == (length, SIZE, SIZE, 3)
    assert ours.std() > 0.01

    reference_settings = {
        "overlap_history": settings["overlap_history"] or None,
        "base_num_frames": settings["base_num_frames"],
        "ar_step": settings["ar_step"],
        "causal_block_size": settings["causal_block_size"],
        "addnoise_condition": settings["addnoise_condition"],
        "fps": settings["fps"],
    }
    with model.handle.use() as transformer, clip.handle.use() as encoder, vae.handle.use() as autoencoder:
        pipeline = SkyReelsV2DiffusionForcingPipeline(
            tokenizer=clip.tokenizer,
            text_encoder=encoder,
            vae=autoencoder,
            scheduler=UniPCMultistepScheduler(
                prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=SHIFT
            ),
            transformer=transformer,
        )
        torch.manual_seed(SEED)  # the pipeline draws addnoise_condition's noise from the global generator
        try:
            reference = pipeline(**_pipeline_inputs(length), **reference_settings).frames
        finally:
            transformer.register_to_config(num_frame_per_block=1)  # the pipeline leaves its causal blocks set
    return fidelity.max_difference(ours, fidelity.pipeline_frames(reference))


@pytest.mark.parametrize("fps", [24, 16])  # the fps embedding's two rows
def test_synchronous_diffusion_forcing_matches_the_pipeline(runner: NodeRunner, fps: int) -> None:
    difference = _diffusion_forcing(runner, length=17, fps=fps)
    assert difference < TOLERANCE, difference
    assert runner.progress[-1] == (STEPS, STEPS)  # synchronous: one iteration per step


def test_asynchronous_diffusion_forcing_matches_the_pipeline(runner: NodeRunner) -> None:
    """6 latent frames in 3 causal blocks of 2, each 2 steps behind the one before."""
    difference = _diffusion_forcing(runner, length=21, ar_step=2, causal_block_size=2)
    assert difference < TOLERANCE, difference
    assert runner.progress[-1] == (STEPS + 2 * 2, STEPS + 2 * 2)


def test_long_video_in_overlapping_chunks_matches_the_pipeline(runner: NodeRunner) -> None:
    """10 latent frames in chunks of 5 repeating 3 (four chunks), the repeated frames noised to timestep 20."""
    difference = _diffusion_forcing(runner, length=37, base_num_frames=17, overlap_history=9, addnoise_condition=20.0)
    assert difference < TOLERANCE, difference
    assert runner.progress[-1] == (4 * STEPS, 4 * STEPS)


def test_text_to_video_from_the_diffusers_folder_matches_the_pipeline(runner: NodeRunner) -> None:
    """SamplerCustom with euler over the sigmas of diffusers' flow-matching Euler scheduler."""
    model, clip, vae, _ = runner.call(
        DiffusersPipelineLoader,
        model_path="SkyReels-V2-T2V-14B-540P-Diffusers",
        transformer="transformer",
        weight_dtype="default",
    )
    assert model.adapter.family == "skyreels"
    (model,) = runner.call(ModelSamplingSD3, model=model, shift=SHIFT)
    positive, negative = fidelity.encode_prompts(runner, clip, PROMPT, NEGATIVE)
    (latent,) = runner.call(EmptyHunyuanLatentVideo, width=SIZE, height=SIZE, length=9, batch_size=1)
    scheduler = FlowMatchEulerDiscreteScheduler(shift=SHIFT)
    scheduler.set_timesteps(STEPS)
    output = fidelity.sample_custom(runner, model, positive, negative, latent, scheduler.sigmas, seed=SEED, cfg=CFG)
    ours = fidelity.decoded(runner, output, vae)

    with model.handle.use() as transformer, clip.handle.use() as encoder, vae.handle.use() as autoencoder:
        pipeline = SkyReelsV2Pipeline(
            tokenizer=clip.tokenizer,
            text_encoder=encoder,
            vae=autoencoder,
            scheduler=FlowMatchEulerDiscreteScheduler(shift=SHIFT),
            transformer=transformer,
        )
        reference = pipeline(**_pipeline_inputs(9)).frames
    difference = fidelity.max_difference(ours, fidelity.pipeline_frames(reference))
    assert difference < TOLERANCE, difference
