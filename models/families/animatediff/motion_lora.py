"""AnimateDiff motion LoRAs (``v2_lora_ZoomIn.ckpt`` and the other camera-motion LoRAs) as ``models.lora`` weights
on a ``MotionAdapter``.

The public v2 motion LoRAs keep the original motion-module names with a LoRA processor per attention projection:
``...temporal_transformer.transformer_blocks.K.attention_blocks.A.processor.to_q_lora.down.weight`` (and ``up``; no
alpha: the update is ``up @ down``). diffusers-style files name the same layers ``unet.`` +
``...transformer_blocks.K.attn1.to_q.lora.down.weight`` or ``.lora_A.weight`` / ``.lora_B.weight``. Names go through
diffusers' motion-module renaming, then the LoRA parts are split off.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

from models.families.animatediff.motion_checkpoint import to_diffusers_names
from models.lora import LoraError, LoraWeights, LowRank

__all__ = ["motion_lora_weights"]

DIFFUSERS_PREFIX = "unet."
# (file suffix, pair part) for the layouts above; the projection's own name is what precedes the suffix.
_SUFFIXES = (
    ("_lora.down.weight", "down"),
    ("_lora.up.weight", "up"),
    (".lora.down.weight", "down"),
    (".lora.up.weight", "up"),
    (".lora_A.weight", "down"),
    (".lora_B.weight", "up"),
)
_PROJECTION_NAMES = (("processor.to_out", "to_out.0"), ("processor.", ""))


def motion_lora_weights(path: Path, state_dict: Mapping[str, torch.Tensor]) -> LoraWeights:
    """The low-rank pairs of a motion LoRA file by ``MotionAdapter`` layer name; ``LoraError`` for a file that
    holds anything else."""
    renamed = to_diffusers_names({key.removeprefix(DIFFUSERS_PREFIX): value for key, value in state_dict.items()})
    parts: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in renamed.items():
        match = next(((key[: -len(suffix)], part) for suffix, part in _SUFFIXES if key.endswith(suffix)), None)
        if match is None or ".motion_modules." not in key:
            raise LoraError(path, f"{key} is not a motion LoRA weight (an AnimateDiff motion LoRA has only those)")
        layer, part = match
        for old, new in _PROJECTION_NAMES:
            layer = layer.replace(old, new)
        parts.setdefault(layer, {})[part] = tensor
    if not parts:
        raise LoraError(path, "holds no motion LoRA weights")
    pairs = {}
    for layer, pair in parts.items():
        if set(pair) != {"down", "up"}:
            raise LoraError(path, f"{layer} has only its {', '.join(pair)} weight")
        pairs[layer] = LowRank(down=pair["down"], up=pair["up"])
    return LoraWeights(path, pairs)
