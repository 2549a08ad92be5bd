"""SD1.5 LoRAs on AnimateDiff at the node level: LoraLoader before or after AnimateDiffApply gives the UNet and text
encoder weights diffusers' ``load_lora_weights`` + ``fuse_lora`` give an ``AnimateDiffPipeline`` of the same tiny
files, and samples its frames (the chain of test_fidelity.py); a Wan LoRA is refused naming Wan."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import torch
from diffusers import AnimateDiffPipeline

from models.lora import LoraError
from nodes.animatediff import AnimateDiffApply, AnimateDiffLoader, EmptyAnimateDiffLatent
from nodes.loaders import CheckpointLoaderSimple
from nodes.lora import LoraLoader, LoraLoaderModelOnly
from tests.nodes import fidelity
from tests.nodes.animatediff.test_fidelity import CFG, CHECKPOINT, NEGATIVE, PROMPT, SEED, SIZE, STEPS, _scheduler
from tests.nodes.node_runner import NodeRunner

MOTION = "mm_sd_v15_v2.ckpt"
LORA = "add_detail.safetensors"
WAN_LORA = "wan2.2_t2v_lightx2v_4steps_lora_v1.1_high_noise.safetensors"
STRENGTH = 0.8
LENGTH = 4
PROJ_IN = "down_blocks.0.attentions.0.proj_in.weight"
WEIGHT_TOLERANCE = 1e-5
FRAME_TOLERANCE = 1e-4


def _fused_pipeline(runner: NodeRunner, lora: Path) -> AnimateDiffPipeline:
    """An ``AnimateDiffPipeline`` of copies of the checkpoint's parts and the motion module, with the LoRA loaded
    and fused by diffusers at ``STRENGTH``."""
    model, clip, vae = runner.call(CheckpointLoaderSimple, ckpt_name=CHECKPOINT)
    (motion,) = runner.call(AnimateDiffLoader, model_name=MOTION)
    with model.handle.use() as unet, clip.handles[0].use() as encoder, vae.handle.use() as autoencoder:
        pipeline = AnimateDiffPipeline(
            vae=copy.deepcopy(autoencoder),
            text_encoder=copy.deepcopy(encoder),
            tokenizer=clip.tokenizers[0],
            unet=copy.deepcopy(unet),
            motion_adapter=motion.build(unet.dtype),
            scheduler=_scheduler(),
        )
    pipeline.load_lora_weights(str(lora))
    pipeline.fuse_lora(lora_scale=STRENGTH)
    pipeline.unload_lora_weights()
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def _with_lora(runner: NodeRunner, lora_first: bool) -> tuple[Any, Any, Any]:
    """MODEL, CLIP, VAE: the checkpoint with the LoRA (``STRENGTH`` for both) and the motion module, LoraLoader
    before AnimateDiffApply or after it."""
    model, clip, vae = runner.call(CheckpointLoaderSimple, ckpt_name=CHECKPOINT)
    (motion,) = runner.call(AnimateDiffLoader, model_name=MOTION)
    lora = {"lora_name": LORA, "strength_model": STRENGTH, "strength_clip": STRENGTH}
    if lora_first:
        model, clip = runner.call(LoraLoader, model=model, clip=clip, **lora)
    (model,) = runner.call(AnimateDiffApply, model=model, motion_model=motion)
    if not lora_first:
        model, clip = runner.call(LoraLoader, model=model, clip=clip, **lora)
    return model, clip, vae


def _frames(runner: NodeRunner, model: Any, clip: Any, vae: Any) -> torch.Tensor:
    positive, negative = fidelity.encode_prompts(runner, clip, PROMPT, NEGATIVE)
    (latent,) = runner.call(EmptyAnimateDiffLatent, width=SIZE, height=SIZE, length=LENGTH, batch_size=1)
    output = fidelity.ksample(runner, model, positive, negative, latent, seed=SEED, steps=STEPS, cfg=CFG)
    return fidelity.decoded(runner, output, vae)


def _max_difference(module: torch.nn.Module, reference: torch.nn.Module) -> float:
    ours, theirs = module.state_dict(), reference.state_dict()
    assert ours.keys() == theirs.keys()
    return max((ours[key] - theirs[key]).abs().max().item() for key in ours)


def test_lora_before_or_after_animatediff_apply_matches_diffusers(runner: NodeRunner, tiny_models_dir: Path) -> None:
    pipeline = _fused_pipeline(runner, tiny_models_dir / "loras" / LORA)
    inputs = fidelity.pipeline_inputs(
        PROMPT, NEGATIVE, height=SIZE, width=SIZE, frames=LENGTH, steps=STEPS, guidance=CFG, seed=SEED
    )
    reference = fidelity.pipeline_frames(pipeline(**inputs).frames)
    (base_model, _, _) = runner.call(CheckpointLoaderSimple, ckpt_name=CHECKPOINT)
    with base_model.handle.use() as base_unet:
        base = base_unet.state_dict()[PROJ_IN].clone()
    for lora_first in (True, False):
        model, clip, vae = _with_lora(runner, lora_first)
        with model.handle.use() as unet, clip.handles[0].use() as encoder:
            unet_difference = _max_difference(unet, pipeline.unet)
            clip_difference = _max_difference(encoder, pipeline.text_encoder)
            lora_change = (unet.state_dict()[PROJ_IN] - base).abs().mean().item()
        frames = _frames(runner, model, clip, vae)
        frame_difference = fidelity.max_difference(frames, reference)
        print(
            f"LoRA {'before' if lora_first else 'after'} AnimateDiffApply: UNet max difference {unet_difference:.3g}, "
            f"text encoder {clip_difference:.3g}, frames {frame_difference:.3g}"
        )
        assert unet_difference < WEIGHT_TOLERANCE and clip_difference < WEIGHT_TOLERANCE
        assert frame_difference < FRAME_TOLERANCE
        assert lora_change > 1e-3  # the LoRA changed the weights (the comparison is no comparison of two bases)


@pytest.mark.parametrize(
    ("with_motion", "label"),
    [(False, "a Stable Diffusion 1.5 UNet"), (True, r"an AnimateDiff UNet \(SD1\.5 with motion modules\)")],
    ids=["sd15", "animatediff"],
)
def test_a_wan_lora_is_refused_naming_wan(runner: NodeRunner, with_motion: bool, label: str) -> None:
    model, clip, _ = runner.call(CheckpointLoaderSimple, ckpt_name=CHECKPOINT)
    if with_motion:
        (motion,) = runner.call(AnimateDiffLoader, model_name=MOTION)
        (model,) = runner.call(AnimateDiffApply, model=model, motion_model=motion)
    with pytest.raises(
        LoraError,
        match=rf"^lora_name: {re.escape(WAN_LORA)}: this LoRA is for a Wan diffusion model, not for {label}",
    ):
        runner.call(LoraLoaderModelOnly, model=model, lora_name=WAN_LORA, strength_model=1.0)
    with pytest.raises(LoraError, match=r"this LoRA is for a Wan diffusion model"):
        runner.call(LoraLoader, model=model, clip=clip, lora_name=WAN_LORA, strength_model=1.0, strength_clip=1.0)
