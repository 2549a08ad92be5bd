"""The AnimateDiff node chain the control tests share: the tiny SD1.5 checkpoint (with the v2 motion module unless
told otherwise), two encoded prompts, and sampling an empty video of ``SIZE`` pixels and ``LENGTH`` frames (KSampler
euler / simple, decoded)."""

from __future__ import annotations

from typing import Any

import torch
from diffusers import EulerDiscreteScheduler

from models.guidance import Conditioning
from nodes.animatediff import AnimateDiffApply, AnimateDiffLoader, EmptyAnimateDiffLatent
from nodes.loaders import CheckpointLoaderSimple
from tests.nodes import fidelity
from tests.nodes.node_runner import NodeRunner

CHECKPOINT = "v1-5-pruned-emaonly-fp16.safetensors"
MOTION_MODULE = "mm_sd_v15_v2.ckpt"
PROMPT = "a red car on the beach in snow"
NEGATIVE = "a dog"
SEED, STEPS, CFG = 42, 4, 7.5
SIZE, LENGTH = 32, 6


def loaded_chain(runner: NodeRunner, motion: bool = True) -> tuple[Any, Any, Any, Conditioning, Conditioning]:
    """(model, clip, vae, positive, negative): the checkpoint, with the motion module applied when ``motion``."""
    model, clip, vae = runner.call(CheckpointLoaderSimple, ckpt_name=CHECKPOINT)
    if motion:
        (module,) = runner.call(AnimateDiffLoader, model_name=MOTION_MODULE)
        (model,) = runner.call(
            AnimateDiffApply,
            model=model,
            motion_model=module,
            context_length=0,
            context_stride=4,
            context_weighting="pyramid",
        )
    return model, clip, vae, *fidelity.encode_prompts(runner, clip, PROMPT, NEGATIVE)


def sampled(runner: NodeRunner, model: Any, vae: Any, positive: Conditioning, negative: Conditioning) -> torch.Tensor:
    """The decoded frames of an empty ``LENGTH``-frame video sampled under the conditioning."""
    (latent,) = runner.call(EmptyAnimateDiffLatent, width=SIZE, height=SIZE, length=LENGTH, batch_size=1)
    output = fidelity.ksample(runner, model, positive, negative, latent, seed=SEED, steps=STEPS, cfg=CFG)
    return fidelity.decoded(runner, output, vae)


def random_pictures(count: int, seed: int) -> torch.Tensor:
    """``count`` seeded random IMAGE pictures of ``SIZE`` x ``SIZE``."""
    return torch.rand(count, SIZE, SIZE, 3, generator=torch.Generator().manual_seed(seed))


def pipeline_scheduler() -> EulerDiscreteScheduler:
    """The diffusers scheduler that steps as KSampler's euler / simple does here (timesteps 999, 749, 499, 249)."""
    return EulerDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", timestep_spacing="trailing"
    )
