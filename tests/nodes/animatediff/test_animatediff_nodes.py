"""The AnimateDiff nodes' checks and outputs: the motion module socket, the model they give (a ``UNetMotionModel``
with the SD1.5 sampling), context windows, and clear errors for inputs that do not fit."""

from __future__ import annotations

import pytest
import torch
from diffusers import UNetMotionModel
from diffusers.models.attention import FreeNoiseTransformerBlock

from models.families.animatediff.adapter import AnimateDiffAdapter
from models.families.base import LatentShapeError
from models.sampling.model_sampling import EpsSampling
from nodes.animatediff import AnimateDiffApply, AnimateDiffLoader, AnimateDiffMotionLoRA, EmptyAnimateDiffLatent
from nodes.loaders import CheckpointLoaderSimple
from tests.nodes.node_runner import NodeRunner

CHECKPOINT = "v1-5-pruned-emaonly-fp16.safetensors"
APPLY = {"context_length": 0, "context_stride": 4, "context_weighting": "pyramid"}


def test_apply_gives_a_motion_unet_with_sd15_sampling(runner: NodeRunner) -> None:
    model, clip, vae = runner.call(CheckpointLoaderSimple, ckpt_name=CHECKPOINT)
    assert clip is not None and vae is not None
    (motion,) = runner.call(AnimateDiffLoader, model_name="mm_sd_v15_v2.ckpt")
    assert motion.spec.max_frames == 32
    (animated,) = runner.call(AnimateDiffApply, model=model, motion_model=motion, **APPLY)
    assert isinstance(animated.adapter, AnimateDiffAdapter) and animated.sampling == EpsSampling()
    with animated.handle.use() as network:
        assert isinstance(network, UNetMotionModel)
    with pytest.raises(ValueError, match="without motion modules"):
        runner.call(AnimateDiffApply, model=animated, motion_model=motion, **APPLY)
    entry = (torch.zeros(1, 77, 32), {})
    with pytest.raises(LatentShapeError, match="at most 32"):
        animated.adapter.check_conditioning(entry, torch.zeros(1, 4, 33, 4, 4))


def test_context_windows_swap_in_free_noise_blocks(runner: NodeRunner) -> None:
    model, _, _ = runner.call(CheckpointLoaderSimple, ckpt_name=CHECKPOINT)
    (motion,) = runner.call(AnimateDiffLoader, model_name="mm_sd_v15.ckpt")
    options = {**APPLY, "context_length": 16, "context_stride": 4}
    (animated,) = runner.call(AnimateDiffApply, model=model, motion_model=motion, **options)
    animated.adapter.check_conditioning((torch.zeros(1, 77, 32), {}), torch.zeros(1, 4, 40, 4, 4))  # > 24 frames
    with animated.handle.use() as network:
        blocks = [block for module in network.down_blocks[0].motion_modules for block in module.transformer_blocks]
    assert blocks and all(isinstance(block, FreeNoiseTransformerBlock) for block in blocks)
    with pytest.raises(ValueError, match="stride 8 above context length 4"):
        runner.call(
            AnimateDiffApply, model=model, motion_model=motion, **{**APPLY, "context_length": 4, "context_stride": 8}
        )


def test_motion_lora_is_recorded_and_strength_zero_is_a_no_op(runner: NodeRunner) -> None:
    (motion,) = runner.call(AnimateDiffLoader, model_name="mm_sd_v15_v2.ckpt")
    (same,) = runner.call(AnimateDiffMotionLoRA, motion_model=motion, lora_name="v2_lora_ZoomIn.ckpt", strength=0.0)
    assert same is motion
    (patched,) = runner.call(AnimateDiffMotionLoRA, motion_model=motion, lora_name="v2_lora_ZoomIn.ckpt", strength=0.7)
    assert [lora.strength for lora in patched.loras] == [0.7] and patched.key_suffix() != motion.key_suffix()


def test_loader_names_its_input_and_empty_latent_checks_sizes(runner: NodeRunner) -> None:
    with pytest.raises(ValueError, match="model_name"):
        runner.call(AnimateDiffLoader, model_name="missing.ckpt")
    (latent,) = runner.call(EmptyAnimateDiffLatent, width=64, height=32, length=5, batch_size=2)
    assert latent["samples"].shape == (2, 4, 5, 4, 8)
    with pytest.raises(ValueError, match="width 60"):
        runner.call(EmptyAnimateDiffLatent, width=60, height=32, length=5, batch_size=1)
