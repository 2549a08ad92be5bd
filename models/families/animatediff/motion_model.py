"""A motion module as the ``MOTION_MODEL`` socket carries it (a file, its config and the motion LoRAs to merge), and
the SD1.5 UNet it turns into diffusers' ``UNetMotionModel`` (``UNetMotionModel.from_unet2d``), with FreeNoise
context windows (diffusers' ``FreeNoiseTransformerBlock``) when asked for."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from models.checkpoint_files import read_shapes
from models.controlnet.sparsectrl import is_sparsectrl
from models.errors import CorruptModelFileError, read_naming_file
from models.families.animatediff.adapter import ContextWindows
from models.families.animatediff.motion_checkpoint import (
    MotionSpec,
    detect_motion_module,
    is_motion_module,
    motion_adapter_from_state_dict,
)
from models.families.animatediff.motion_lora import motion_lora_weights
from models.loading import load_state_dict
from models.lora import lora_suffix, merge_lora
from models.model_loaders import WrongModelKindError

if TYPE_CHECKING:
    from diffusers import MotionAdapter, UNet2DConditionModel, UNetMotionModel


__all__ = ["MotionLora", "MotionModule", "enable_context_windows", "read_motion_module", "with_motion_module"]


@dataclass(frozen=True)
class MotionLora:
    """A motion LoRA file and its strength."""

    path: Path
    strength: float


@dataclass(frozen=True)
class MotionModule:
    """What ``MOTION_MODEL`` carries: a motion module file, its config, and motion LoRAs to merge (in order)."""

    name: str
    path: Path
    spec: MotionSpec
    loras: tuple[MotionLora, ...] = ()

    def with_lora(self, path: Path, strength: float) -> MotionModule:
        return dataclasses.replace(self, loras=(*self.loras, MotionLora(path, strength)))

    def key_suffix(self) -> str:
        """What tells this module (file, size, modification time, LoRAs) apart in the memory manager's keys."""
        real = self.path.resolve()
        stat = real.stat()
        loras = "".join(lora_suffix(lora.path, lora.strength) for lora in self.loras)
        return f"+motion({real}:{stat.st_size}:{stat.st_mtime_ns}){loras}"

    def build(self, dtype: torch.dtype) -> MotionAdapter:
        """The ``MotionAdapter`` with its LoRAs merged, in ``dtype``."""
        adapter = read_naming_file(self.path, lambda: motion_adapter_from_state_dict(load_state_dict(self.path), dtype))
        for lora in self.loras:
            merge_lora(adapter, motion_lora_weights(lora.path, load_state_dict(lora.path)), lora.strength)
        return adapter


def read_motion_module(path: Path) -> MotionModule:
    """The motion module file ``path`` (shapes only, no weights yet); ``CorruptModelFileError`` for another kind."""
    shapes = read_shapes(path)
    if is_sparsectrl(shapes.tensors):
        raise WrongModelKindError(path, "this is an AnimateDiff SparseCtrl: load it with ControlNetLoader")
    if not is_motion_module(shapes.tensors):
        sample = ", ".join(list(shapes.tensors)[:3]) or "no tensors"
        raise CorruptModelFileError(path, f"not an AnimateDiff motion module (its first tensors: {sample})")
    return MotionModule(path.name, path, read_naming_file(path, lambda: detect_motion_module(shapes.tensors)))


def with_motion_module(
    unet: UNet2DConditionModel, motion: MotionModule, context: ContextWindows | None
) -> UNetMotionModel:
    """``unet`` and ``motion``'s modules as one ``UNetMotionModel`` in ``unet``'s dtype (eval, frozen); ``ValueError``
    when the module was made for another UNet."""
    from diffusers import UNetMotionModel

    adapter = motion.build(unet.dtype)
    widths = tuple(unet.config["block_out_channels"])
    if tuple(adapter.config["block_out_channels"]) != widths:
        raise ValueError(
            f"{motion.name} is for a UNet of widths {adapter.config['block_out_channels']}; this one's are {widths}"
        )
    network = UNetMotionModel.from_unet2d(unet, adapter).eval().requires_grad_(False)
    if context is not None:
        enable_context_windows(network, context)
    return network


def enable_context_windows(network: UNetMotionModel, context: ContextWindows) -> None:
    """Swap every motion transformer block for diffusers' ``FreeNoiseTransformerBlock`` with the same weights (what
    ``AnimateDiffPipeline.enable_free_noise`` does to its UNet)."""
    from diffusers.models.attention import FreeNoiseTransformerBlock

    blocks = [*network.down_blocks, network.mid_block, *network.up_blocks]
    for motion_module in (module for block in blocks for module in getattr(block, "motion_modules", ())):
        for index, block in enumerate(motion_module.transformer_blocks):
            windowed = FreeNoiseTransformerBlock(
                dim=block.dim,
                num_attention_heads=block.num_attention_heads,
                attention_head_dim=block.attention_head_dim,
                dropout=block.dropout,
                cross_attention_dim=block.cross_attention_dim,
                activation_fn=block.activation_fn,
                attention_bias=block.attention_bias,
                only_cross_attention=block.only_cross_attention,
                double_self_attention=block.double_self_attention,
                positional_embeddings=block.positional_embeddings,
                num_positional_embeddings=block.num_positional_embeddings,
                context_length=context.length,
                context_stride=context.stride,
                weighting_scheme=context.weighting,
            ).to(device=network.device, dtype=network.dtype)
            windowed.load_state_dict(block.state_dict(), strict=True)
            motion_module.transformer_blocks[index] = windowed.eval().requires_grad_(False)
