"""LoRA weights under a network's own parameter names, and their merge.

A family turns a LoRA file's tensors into ``LoraWeights`` (its ``LoraFormat``): low-rank pairs by layer name (linear
layers ``down`` [rank, in] / ``up`` [out, rank]; convolutions ``down`` [rank, in, kh, kw] / ``up`` [out, rank, 1, 1]
as LyCORIS' LoCon trains them) and whole deltas by parameter name. ``merge_lora`` adds ``strength * up @ down`` to
each weight in float32 and casts back to the weight's dtype, after checking every target against the network, so a
LoRA that does not fit changes no weight. Nothing needs peft.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

from models.errors import ModelLoadError

__all__ = [
    "LoraError",
    "LoraFormat",
    "LoraWeights",
    "LowRank",
    "accumulate",
    "alphas_folded",
    "grouped",
    "merge_lora",
    "part_of",
]

logger = logging.getLogger(__name__)

# Key suffix -> the pair part it holds ("down", "up", "alpha") or, for a whole delta, the parameter it changes.
_PARTS = (
    (".lora_down.weight", "down"),
    (".lora_A.weight", "down"),
    (".lora_up.weight", "up"),
    (".lora_B.weight", "up"),
    (".alpha", "alpha"),
    (".lora_B.bias", ".bias"),
    (".diff_b", ".bias"),
    (".diff_m", ".modulation"),
    (".diff", ".weight"),
)
_DOWN_SUFFIXES = (".lora_down.weight", ".lora_A.weight")
MAX_LISTED = 3


class LoraError(ModelLoadError):
    """A LoRA file that cannot be merged: no LoRA weights, a layout Reelgraph cannot convert, or targets that do
    not fit the network (a LoRA for another architecture)."""


@dataclass(frozen=True)
class LowRank:
    """One layer's low-rank update: ``scale * up @ down`` (``down`` [rank, in, *kernel], ``up`` [out, rank, *ones]),
    of the weight's shape ``[out, in, *kernel]``."""

    down: torch.Tensor
    up: torch.Tensor
    scale: float = 1.0

    @property
    def shape(self) -> list[int]:
        """The shape of the weight this pair changes."""
        return [self.up.shape[0], *self.down.shape[1:]]


@dataclass(frozen=True)
class LoraWeights:
    """A LoRA's changes to one network: low-rank pairs by layer name, whole deltas by parameter name."""

    path: Path
    pairs: Mapping[str, LowRank] = field(default_factory=dict)
    deltas: Mapping[str, torch.Tensor] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.pairs or self.deltas)


@dataclass(frozen=True)
class LoraFormat:
    """How a family's LoRA files name its diffusion network's layers (``TransformerFamily.lora``).

    Args:
        claims: whether a LoRA file's diffusion-model key names (as in the file) are in one of the family's layouts;
            from names alone, so that a LoRA for another architecture is named before anything loads. The
            families' claims are disjoint.
        convert: the file's diffusion-model tensors as ``LoraWeights`` under the network's parameter names;
            ``LoraError`` for tensors it cannot convert.
    """

    claims: Callable[[Collection[str]], bool]
    convert: Callable[[Path, dict[str, torch.Tensor]], LoraWeights]


def part_of(key: str) -> tuple[str, str] | None:
    """``(stem, part)`` of a LoRA key (see ``_PARTS``), or None for a key that is no LoRA weight."""
    for suffix, part in _PARTS:
        if key.endswith(suffix):
            return key[: -len(suffix)], part
    return None


def alphas_folded(path: Path, state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` without its ``.alpha`` tensors, each folded into its layer's down matrix (``down * alpha / rank``,
    in float32), for converters that take pairs at scale 1; an alpha without its down matrix raises ``LoraError``."""
    folded = {key: tensor for key, tensor in state.items() if not key.endswith(".alpha")}
    for key, alpha in state.items():
        if not key.endswith(".alpha"):
            continue
        stem = key.removesuffix(".alpha")
        down_key = next((stem + suffix for suffix in _DOWN_SUFFIXES if stem + suffix in state), None)
        if down_key is None:
            raise LoraError(path, f"{key} has no down matrix (lora_down/lora_A) next to it")
        down = state[down_key].float()
        folded[down_key] = down * (float(alpha) / down.shape[0])
    return folded


def grouped(path: Path, state: Mapping[str, torch.Tensor]) -> LoraWeights:
    """LoRA tensors by layer: pairs (alpha/rank as their scale) and whole deltas; half a pair, or a tensor that is
    no LoRA weight, raises ``LoraError``."""
    parts: dict[str, dict[str, torch.Tensor]] = {}
    deltas: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        found = part_of(key)
        if found is None:
            raise LoraError(path, f"{key} is no LoRA weight Reelgraph can merge")
        stem, part = found
        if part.startswith("."):
            accumulate(deltas, stem + part, tensor)
        else:
            parts.setdefault(stem, {})[part] = tensor
    return LoraWeights(path, {layer: _pair(path, layer, found) for layer, found in parts.items()}, deltas)


def accumulate(deltas: dict[str, torch.Tensor], name: str, delta: torch.Tensor) -> None:
    """Add ``delta`` for parameter ``name`` to ``deltas`` (summed with one already there)."""
    deltas[name] = deltas[name] + delta if name in deltas else delta


def merge_lora(module: torch.nn.Module, weights: LoraWeights, strength: float) -> torch.nn.Module:
    """Add ``strength`` times ``weights`` to ``module``'s parameters (in place) and return it.

    Every target is checked first: a layer or parameter the module lacks, or one of another shape, raises
    ``LoraError`` naming a few of them, and no weight changes.
    """
    parameters = dict(module.named_parameters())
    misfits = _misfits(weights, parameters)
    if misfits:
        total = len(weights.pairs) + len(weights.deltas)
        listed = "; ".join(misfits[:MAX_LISTED])
        raise LoraError(
            weights.path,
            f"this LoRA is for another architecture: {len(misfits)} of its {total} targets do not fit the model "
            f"({listed}{'; ...' if len(misfits) > MAX_LISTED else ''})",
        )
    with torch.no_grad():
        for layer, pair in weights.pairs.items():
            _merge_pair(parameters[f"{layer}.weight"], pair, strength * pair.scale)
        for name, delta in weights.deltas.items():
            parameter = parameters[name]
            parameter.copy_(parameter.float().add_(delta.to(parameter.device, torch.float32), alpha=strength))
    logger.info(
        "merged %s at strength %g: %d low-rank layers, %d whole deltas",
        weights.path.name,
        strength,
        len(weights.pairs),
        len(weights.deltas),
    )
    return module


def _pair(path: Path, layer: str, parts: Mapping[str, torch.Tensor]) -> LowRank:
    if "down" not in parts or "up" not in parts:
        missing = "down (lora_down/lora_A)" if "down" not in parts else "up (lora_up/lora_B)"
        raise LoraError(path, f"{layer} has no {missing} matrix")
    down, up = parts["down"], parts["up"]
    linear = down.dim() == up.dim() == 2
    convolution = down.dim() == up.dim() == 4 and all(size == 1 for size in up.shape[2:])
    if not (linear or convolution) or up.shape[1] != down.shape[0]:
        raise LoraError(
            path,
            f"{layer}: down {list(down.shape)} and up {list(up.shape)} are no low-rank pair (same rank; 2-D, or "
            "4-D with a 1x1 up convolution)",
        )
    alpha = parts.get("alpha")
    return LowRank(down, up, 1.0 if alpha is None else float(alpha) / down.shape[0])


def _misfits(weights: LoraWeights, parameters: Mapping[str, torch.Tensor]) -> list[str]:
    """What of ``weights`` does not fit ``parameters``, one line per target."""
    misfits = []
    for layer, pair in weights.pairs.items():
        weight = parameters.get(f"{layer}.weight")
        kind = "linear layer" if pair.down.dim() == 2 else "convolution"
        if weight is None or weight.dim() != pair.down.dim():
            misfits.append(f"{layer}: no such {kind} in the model")
        elif list(weight.shape) != pair.shape:
            misfits.append(f"{layer}: the LoRA makes {pair.shape}, the model's weight is {list(weight.shape)}")
    for name, delta in weights.deltas.items():
        parameter = parameters.get(name)
        if parameter is None:
            misfits.append(f"{name}: no such parameter in the model")
        elif parameter.shape != delta.shape:
            misfits.append(f"{name}: the LoRA has {list(delta.shape)}, the model {list(parameter.shape)}")
    return misfits


def _merge_pair(weight: torch.Tensor, pair: LowRank, factor: float) -> None:
    """``weight += factor * up @ down`` (kernels flattened) computed in float32 (one fused product-add), stored in
    the weight's dtype."""
    merged = weight.float().reshape(weight.shape[0], -1)
    up = pair.up.to(weight.device, torch.float32).flatten(1)
    down = pair.down.to(weight.device, torch.float32).flatten(1)
    merged.addmm_(up, down, alpha=factor)
    weight.copy_(merged.view_as(weight))
