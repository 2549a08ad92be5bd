"""Fidelity to diffusers at the node level: UNETLoader + CLIPLoader (mochi) + CLIPTextEncode x2 +
EmptyMochiLatentVideo + SamplerCustom (euler over ``mochi_sigmas``, CFG 4.5) + VAEDecode reproduce ``MochiPipeline``'s
frames for the same tiny files, prompts and seed, in float32."""

from __future__ import annotations

import pytest
from diffusers import FlowMatchEulerDiscreteScheduler, MochiPipeline

from models.families.mochi.schedule import mochi_sigmas
from nodes.latent import EmptyMochiLatentVideo
from nodes.loaders import CLIPLoader, UNETLoader, VAELoader
from tests.nodes import fidelity
from tests.nodes.node_runner import NodeRunner

PROMPT = "a red car on the beach in snow"
NEGATIVE = "a dog"
SEED, STEPS, CFG = 42, 4, 4.5
SIZE = 64


@pytest.mark.parametrize("length", [7, 13])
def test_text_to_video_matches_mochi_pipeline(runner: NodeRunner, length: int) -> None:
    (model,) = runner.call(UNETLoader, unet_name="mochi_preview_bf16.safetensors", weight_dtype="default")
    (clip,) = runner.call(CLIPLoader, clip_name="t5xxl_fp16.safetensors", type="mochi")
    positive, negative = fidelity.encode_prompts(runner, clip, PROMPT, NEGATIVE)
    (vae,) = runner.call(VAELoader, vae_name="mochi_vae.safetensors")
    (latent,) = runner.call(EmptyMochiLatentVideo, width=SIZE, height=SIZE, length=length, batch_size=1)
    output = fidelity.sample_custom(runner, model, positive, negative, latent, mochi_sigmas(STEPS), seed=SEED, cfg=CFG)
    ours = fidelity.decoded(runner, output, vae)
    assert ours.shape == (length, SIZE, SIZE, 3)
    assert runner.progress[-1] == (STEPS, STEPS)

    inputs = fidelity.pipeline_inputs(
        PROMPT, NEGATIVE, height=SIZE, width=SIZE, frames=length, steps=STEPS, guidance=CFG, seed=SEED
    )
    with model.handle.use() as transformer, clip.handle.use() as encoder, vae.handle.use() as autoencoder:
        pipeline = MochiPipeline(
            scheduler=FlowMatchEulerDiscreteScheduler(invert_sigmas=True),  # genmo/mochi-1-preview's config
            vae=autoencoder,
            text_encoder=encoder,
            tokenizer=clip.tokenizer,
            transformer=transformer,
        )
        reference = pipeline(**inputs).frames
    difference = fidelity.max_difference(ours, fidelity.pipeline_frames(reference))
    print(f"mochi t2v {length} frames max difference {difference:.3g}")
    assert difference < 1e-4, difference
    assert ours.std() > 0.01  # not a constant picture
