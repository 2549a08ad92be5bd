"""Fidelity to diffusers at the node level: CheckpointLoaderSimple (an SD1.5 checkpoint) + AnimateDiffLoader +
AnimateDiffApply + CLIPTextEncode x2 + EmptyAnimateDiffLatent + KSampler (euler, simple) + VAEDecode reproduce
``AnimateDiffPipeline``'s frames for the same tiny files, prompts and seed, in float32.

ComfyUI's ``simple`` schedule over the 1000 training sigmas takes timesteps 999, 749, 499, 249 for 4 steps, exactly
diffusers' ``EulerDiscreteScheduler`` with ``timestep_spacing="trailing"`` (whose first noise scale is then the top
sigma, as our sampler's)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import torch
from diffusers import AnimateDiffPipeline, EulerDiscreteScheduler, MotionAdapter
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from nodes.animatediff import AnimateDiffApply, AnimateDiffLoader, AnimateDiffMotionLoRA, EmptyAnimateDiffLatent
from nodes.loaders import CheckpointLoaderSimple
from tests.nodes import fidelity
from tests.nodes.node_runner import NodeRunner

CHECKPOINT = "v1-5-pruned-emaonly-fp16.safetensors"
PROMPT = "a red car on the beach in snow"
NEGATIVE = "a dog"
SEED, STEPS, CFG = 42, 4, 7.5
SIZE = 32


def _scheduler() -> EulerDiscreteScheduler:
    return EulerDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", timestep_spacing="trailing"
    )


@contextmanager
def _pipeline(
    model: Any,
    clip: Any,
    vae: Any,
    motion_adapter: MotionAdapter | None = None,
    scheduler: SchedulerMixin | None = None,
) -> Iterator[AnimateDiffPipeline]:
    """An ``AnimateDiffPipeline`` of the loaded parts, in use while open; the UNet as AnimateDiffApply left it unless
    a ``motion_adapter`` is given, and ``_scheduler()`` unless a ``scheduler`` is."""
    with model.handle.use() as unet, clip.handles[0].use() as encoder, vae.handle.use() as autoencoder:
        pipeline = AnimateDiffPipeline(
            vae=autoencoder,
            text_encoder=encoder,
            tokenizer=clip.tokenizers[0],
            unet=unet,
            motion_adapter=motion_adapter,
            scheduler=_scheduler() if scheduler is None else scheduler,
        )
        pipeline.set_progress_bar_config(disable=True)
        yield pipeline


def _ours(runner: NodeRunner, motion_module: str, length: int, **apply: Any) -> tuple[torch.Tensor, Any, Any, Any]:
    model, clip, vae = runner.call(CheckpointLoaderSimple, ckpt_name=CHECKPOINT)
    (motion,) = runner.call(AnimateDiffLoader, model_name=motion_module)
    if "lora" in apply:
        (motion,) = runner.call(AnimateDiffMotionLoRA, motion_model=motion, lora_name=apply.pop("lora"), strength=0.8)
    (model,) = runner.call(AnimateDiffApply, model=model, motion_model=motion, **apply)
    positive, negative = fidelity.encode_prompts(runner, clip, PROMPT, NEGATIVE)
    (latent,) = runner.call(EmptyAnimateDiffLatent, width=SIZE, height=SIZE, length=length, batch_size=1)
    output = fidelity.ksample(runner, model, positive, negative, latent, seed=SEED, steps=STEPS, cfg=CFG)
    return fidelity.decoded(runner, output, vae), model, clip, vae


def _reference(model: Any, clip: Any, vae: Any, length: int) -> torch.Tensor:
    with _pipeline(model, clip, vae) as pipeline:
        inputs = fidelity.pipeline_inputs(
            PROMPT, NEGATIVE, height=SIZE, width=SIZE, frames=length, steps=STEPS, guidance=CFG, seed=SEED
        )
        return fidelity.pipeline_frames(pipeline(**inputs).frames)


@pytest.mark.parametrize(
    ("motion_module", "length", "apply"),
    [
        ("mm_sd_v15_v2.ckpt", 8, {}),
        ("mm_sd_v15.ckpt", 5, {}),
        ("mm_sd_v15_v2.ckpt", 6, {"lora": "v2_lora_ZoomIn.ckpt"}),
    ],
    ids=["v2", "v1", "v2+motion-lora"],
)
def test_text_to_video_matches_animatediff_pipeline(
    runner: NodeRunner, motion_module: str, length: int, apply: dict[str, Any]
) -> None:
    options = {"context_length": 0, "context_stride": 4, "context_weighting": "pyramid", **apply}
    ours, model, clip, vae = _ours(runner, motion_module, length, **options)
    assert ours.shape == (length, SIZE, SIZE, 3)
    assert runner.progress[-1] == (STEPS, STEPS)
    reference = _reference(model, clip, vae, length)
    difference = fidelity.max_difference(ours, reference)
    print(f"animatediff {motion_module} {apply} {length} frames max difference {difference:.3g}")
    assert difference < 1e-4, difference
    assert ours.std() > 0.01
    assert (ours[1:] - ours[:-1]).abs().max() > 1e-3  # frames differ: the motion modules take part
