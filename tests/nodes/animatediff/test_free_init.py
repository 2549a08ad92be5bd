"""FreeInitKSampler against ``AnimateDiffPipeline.enable_free_init``: CheckpointLoaderSimple + AnimateDiffLoader +
AnimateDiffApply + CLIPTextEncode x2 + EmptyAnimateDiffLatent + FreeInitKSampler (euler, simple) + VAEDecode.

diffusers' DDIM starts from unit noise as the VP state of its first timestep but diffuses FreeInit's result back
with ``add_noise`` (noise std ``sqrt(1 - abar)``) and mixes in unit fresh noise; our restart is the first sigma's own
noising (``models.sampling.free_init``). The two agree where ``abar`` of the first timestep is 0: a zero-terminal-SNR
``DDIMScheduler`` (``rescale_betas_zero_snr``, ``v_prediction``), our ``ZeroSnrSampling`` on the same model, whose
Euler steps are DDIM's on the trailing timesteps 999, 749, 499, 249. With SD1.5's own schedule (``abar`` 0.0047)
they differ by that factor on the noise only (checked against diffusers' own functions in
tests/models/sampling/test_free_init.py; 1.5e-3 in this test's frames, against 0.88 between FreeInit and none)."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from diffusers import DDIMScheduler

from models.sampling.model_sampling import ZeroSnrSampling
from nodes.animatediff import AnimateDiffApply, AnimateDiffLoader, EmptyAnimateDiffLatent
from nodes.free_init import FreeInitKSampler
from nodes.loaders import CheckpointLoaderSimple
from nodes.sampling import KSampler
from tests.nodes import fidelity
from tests.nodes.animatediff.test_fidelity import CFG, CHECKPOINT, NEGATIVE, PROMPT, SEED, SIZE, STEPS, _pipeline
from tests.nodes.node_runner import NodeRunner

FRAMES = 6
ZERO_SNR = ZeroSnrSampling(prediction="v_prediction")
FREE_INIT = {
    "iterations": 3,
    "filter_method": "butterworth",
    "order": 4,
    "spatial_stop_frequency": 0.25,
    "temporal_stop_frequency": 0.25,
    "fast_sampling": False,
}


def _parts(runner: NodeRunner) -> dict[str, Any]:
    model, clip, vae = runner.call(CheckpointLoaderSimple, ckpt_name=CHECKPOINT)
    (motion,) = runner.call(AnimateDiffLoader, model_name="mm_sd_v15_v2.ckpt")
    (model,) = runner.call(
        AnimateDiffApply, model=model, motion_model=motion, context_length=0, context_stride=4, context_weighting="flat"
    )
    positive, negative = fidelity.encode_prompts(runner, clip, PROMPT, NEGATIVE)
    (latent,) = runner.call(EmptyAnimateDiffLatent, width=SIZE, height=SIZE, length=FRAMES, batch_size=1)
    sampler = {"seed": SEED, "steps": STEPS, "cfg": CFG, "sampler_name": "euler", "scheduler": "simple"}
    inputs = {"model": model.with_sampling(ZERO_SNR), "positive": positive, "negative": negative, **sampler}
    return {"inputs": {**inputs, "latent_image": latent, "denoise": 1.0}, "clip": clip, "vae": vae}


def _frames(runner: NodeRunner, parts: dict[str, Any], node: type, **options: Any) -> torch.Tensor:
    (output,) = runner.result(node, **parts["inputs"], **options)
    return fidelity.decoded(runner, output, parts["vae"])


def _reference(parts: dict[str, Any], free_init: dict[str, Any]) -> torch.Tensor:
    model, clip, vae = parts["inputs"]["model"], parts["clip"], parts["vae"]
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        timestep_spacing="trailing",
        rescale_betas_zero_snr=True,
        prediction_type="v_prediction",
    )
    with _pipeline(model, clip, vae, scheduler=scheduler) as pipeline:
        pipeline.enable_free_init(
            num_iters=free_init["iterations"],
            use_fast_sampling=free_init["fast_sampling"],
            method=free_init["filter_method"],
            order=free_init["order"],
            spatial_stop_frequency=free_init["spatial_stop_frequency"],
            temporal_stop_frequency=free_init["temporal_stop_frequency"],
        )
        inputs = fidelity.pipeline_inputs(
            PROMPT, NEGATIVE, height=SIZE, width=SIZE, frames=FRAMES, steps=STEPS, guidance=CFG, seed=SEED
        )
        return fidelity.pipeline_frames(pipeline(**inputs).frames)


@pytest.mark.parametrize(
    "options",
    [{}, {"filter_method": "gaussian", "spatial_stop_frequency": 0.4, "iterations": 2, "fast_sampling": True}],
    ids=["butterworth", "gaussian-fast"],
)
def test_free_init_matches_animatediff_pipeline(runner: NodeRunner, options: dict[str, Any]) -> None:
    free_init = {**FREE_INIT, **options}
    parts = _parts(runner)
    ours = _frames(runner, parts, FreeInitKSampler, **free_init)
    iterations = free_init["iterations"]
    total = sum(max(1, int(STEPS / iterations * (i + 1))) for i in range(iterations)) if options else 3 * STEPS
    assert runner.progress[-1] == (total, total)
    assert [done for done, _ in runner.progress] == list(range(1, total + 1))
    reference = _reference(parts, free_init)
    difference = fidelity.max_difference(ours, reference)
    print(f"FreeInit {free_init} max difference {difference:.3g}")
    assert difference < 1e-4, difference
    runner.progress.clear()
    plain = _frames(runner, parts, KSampler)
    assert (ours - plain).abs().max() > 1e-3  # the later runs change the video


def test_bad_inputs_are_named_and_denoise_zero_keeps_the_latent(runner: NodeRunner) -> None:
    inputs = _parts(runner)["inputs"]
    latent = inputs["latent_image"]
    masked = {**latent, "noise_mask": torch.ones(1, 1, SIZE, SIZE)}
    with pytest.raises(ValueError, match="FreeInitKSampler: latent_image has a noise mask"):
        runner.call(FreeInitKSampler, **{**inputs, "latent_image": masked}, **FREE_INIT)
    with pytest.raises(ValueError, match=r"FreeInitKSampler: spatial_stop_frequency 1.5 must lie in \[0, 1\]"):
        runner.call(FreeInitKSampler, **inputs, **{**FREE_INIT, "spatial_stop_frequency": 1.5})
    (output,) = runner.result(FreeInitKSampler, **{**inputs, "denoise": 0.0}, **FREE_INIT)
    assert output is latent
    assert runner.progress == []
