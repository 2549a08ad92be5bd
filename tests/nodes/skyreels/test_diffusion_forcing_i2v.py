"""Fidelity to diffusers: ``SkyReelsDiffusionForcingSampler`` with the ``VAEEncode`` latents of a start (and an end)
image reproduces ``SkyReelsV2DiffusionForcingImageToVideoPipeline`` (one pass with both images; a long video in
overlapping chunks with noised prefixes from a start image) for the same tiny files, prompts, images, seed and
guidance, in float32; start and end latents that do not fit are refused naming the input."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from diffusers import SkyReelsV2DiffusionForcingImageToVideoPipeline, UniPCMultistepScheduler
from PIL import Image

from models.tiny.skyreels import DF_FILE
from nodes.latent import EmptyHunyuanLatentVideo
from nodes.loaders import CLIPLoader, UNETLoader, VAELoader
from nodes.skyreels import SkyReelsDiffusionForcingSampler
from nodes.vae import VAEEncode
from tests.nodes import fidelity
from tests.nodes.node_runner import NodeRunner

PROMPT = "a red car on the beach in snow"
NEGATIVE = "a dog"
SEED, STEPS, CFG, SHIFT = 42, 3, 5.0, 5.0
SIZE = 64
TOLERANCE = 1e-4
SETTINGS: dict[str, Any] = {
    "base_num_frames": 97,
    "overlap_history": 0,
    "ar_step": 0,
    "causal_block_size": 1,
    "addnoise_condition": 0.0,
    "fps": 24,
}


class _Chain:
    """The DF single file, UMT5, the Wan 2.1 VAE and the prompts, loaded once per test."""

    def __init__(self, runner: NodeRunner) -> None:
        self.runner = runner
        (self.model,) = runner.call(UNETLoader, unet_name=DF_FILE, weight_dtype="default")
        (self.clip,) = runner.call(CLIPLoader, clip_name="umt5_xxl_fp16.safetensors", type="wan")
        self.positive, self.negative = fidelity.encode_prompts(runner, self.clip, PROMPT, NEGATIVE)
        (self.vae,) = runner.call(VAELoader, vae_name="wan_2.1_vae.safetensors")

    def encode(self, pixels: np.ndarray) -> dict[str, torch.Tensor]:
        (latent,) = self.runner.call(VAEEncode, pixels=torch.from_numpy(pixels).float().div(255.0)[None], vae=self.vae)
        return latent

    def sample(self, length: int, size: int = SIZE, **inputs: Any) -> dict[str, torch.Tensor]:
        (latent,) = self.runner.call(EmptyHunyuanLatentVideo, width=size, height=size, length=length, batch_size=1)
        (sampled,) = self.runner.call(
            SkyReelsDiffusionForcingSampler,
            model=self.model,
            positive=self.positive,
            negative=self.negative,
            latent_image=latent,
            seed=SEED,
            steps=STEPS,
            cfg=CFG,
            shift=SHIFT,
            **{**SETTINGS, **inputs},
        )
        return sampled

    def decode(self, sampled: dict[str, torch.Tensor]) -> torch.Tensor:
        return fidelity.decoded(self.runner, sampled, self.vae)

    def reference(self, length: int, images: dict[str, Image.Image], **forcing: Any) -> torch.Tensor:
        """The pipeline's frames as ``IMAGE`` ``[F, H, W, C]``."""
        settings = {**SETTINGS, **forcing}
        settings["overlap_history"] = settings["overlap_history"] or None
        model, clip, vae = self.model, self.clip, self.vae
        with model.handle.use() as transformer, clip.handle.use() as encoder, vae.handle.use() as autoencoder:
            pipeline = SkyReelsV2DiffusionForcingImageToVideoPipeline(
                tokenizer=clip.tokenizer,
                text_encoder=encoder,
                vae=autoencoder,
                scheduler=UniPCMultistepScheduler(
                    prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=SHIFT
                ),
                transformer=transformer,
            )
            torch.manual_seed(SEED)  # the pipeline draws addnoise_condition's noise from the global generator
            inputs = fidelity.pipeline_inputs(
                PROMPT, NEGATIVE, height=SIZE, width=SIZE, frames=length, steps=STEPS, guidance=CFG, seed=SEED
            )
            frames = pipeline(**images, **inputs, **settings).frames
        return fidelity.pipeline_frames(frames)


def test_start_and_end_images_in_one_pass_match_the_pipeline(runner: NodeRunner) -> None:
    """The start latent is the video's first latent frame; the end latent follows the last, clean, and is left out."""
    chain = _Chain(runner)
    start, end = fidelity.random_picture(3, SIZE)[0], fidelity.random_picture(4, SIZE)[0]
    start_latent, end_latent = chain.encode(start), chain.encode(end)
    sampled = chain.sample(length=13, start_latent=start_latent, end_latent=end_latent)
    assert sampled["samples"].shape == (1, 16, 4, SIZE // 8, SIZE // 8)
    assert torch.allclose(sampled["samples"][:, :, :1], start_latent["samples"], atol=1e-5)
    ours = chain.decode(sampled)
    assert ours.shape == (13, SIZE, SIZE, 3) and ours.std() > 0.01
    reference = chain.reference(13, {"image": Image.fromarray(start), "last_image": Image.fromarray(end)})
    difference = fidelity.max_difference(ours, reference)
    assert difference < TOLERANCE, difference
    assert runner.progress[-1] == (STEPS, STEPS)


def test_a_long_video_from_a_start_image_matches_the_pipeline(runner: NodeRunner) -> None:
    """7 latent frames in chunks of 5 repeating 3 (two chunks); the start frame and the repeated ones noised to
    timestep 20. (The pipeline fails on a last chunk shorter than the others: it plans it as a full one.)"""
    chain = _Chain(runner)
    start = fidelity.random_picture(5, SIZE)[0]
    long_video = {"base_num_frames": 17, "overlap_history": 9, "addnoise_condition": 20.0}
    sampled = chain.sample(length=25, start_latent=chain.encode(start), **long_video)
    ours = chain.decode(sampled)
    assert ours.shape == (25, SIZE, SIZE, 3)
    reference = chain.reference(25, {"image": Image.fromarray(start)}, **long_video)
    difference = fidelity.max_difference(ours, reference)
    assert difference < TOLERANCE, difference
    assert runner.progress[-1] == (2 * STEPS, 2 * STEPS)


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"start_latent": {"samples": torch.zeros(1, 16, 1, 4, 4)}}, r"start_latent is 4x4 latent pixels"),
        ({"start_latent": {"samples": torch.zeros(1, 48, 1, 8, 8)}}, r"start_latent has 48 channels"),
        ({"start_latent": {"samples": torch.zeros(1, 16, 5, 8, 8)}}, r"start_latent has 5 latent frames"),
        (
            {"start_latent": {"samples": torch.zeros(1, 16, 1, 8, 8)}, "causal_block_size": 5},
            r"start_latent .* causal blocks of 5",
        ),
        (
            {"end_latent": {"samples": torch.zeros(1, 16, 1, 8, 8)}, "base_num_frames": 9, "overlap_history": 5},
            r"end_latent: the video is made in 3 chunks",
        ),
        ({"end_latent": torch.zeros(1, 16, 1, 8, 8)}, r"end_latent: not a LATENT"),
    ],
)
def test_start_and_end_latents_that_do_not_fit_are_named(
    runner: NodeRunner, inputs: dict[str, Any], message: str
) -> None:
    chain = _Chain(runner)
    with pytest.raises(ValueError, match=message):
        chain.sample(length=17, **inputs)
    assert runner.progress == []
