"""Wan's LoRA layouts (``TransformerFamily.lora`` of the Wan family): Wan's original names with ``diffusion_model.``
and ``lora_down``/``lora_up``/``alpha`` as lightx2v and most Civitai releases ship them, or ``lora_A``/``lora_B``;
kohya and musubi ``lora_unet_``; diffusers' ``transformer.`` names.

Low-rank pairs go through diffusers' ``WanLoraLoaderMixin.lora_state_dict``, which converts them to diffusers names
with alpha/rank folded in. Whole-tensor deltas (``.diff``, ``.diff_b``, ``.diff_m`` for modulations), which it drops
or turns into peft biases, are renamed with diffusers' checkpoint key conversion and added whole.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from pathlib import Path

import torch

from models.lora_weights import MAX_LISTED, LoraError, LoraFormat, LoraWeights, accumulate, grouped

__all__ = ["WAN_LORA", "claims_wan_lora", "wan_lora_weights"]

ORIGINAL_PREFIX = "diffusion_model."
DIFFUSERS_PREFIX = "transformer."
FULL_DELTA_SUFFIXES = (".diff", ".diff_b", ".diff_m")
_BLOCK = re.compile(r"^(?:diffusion_model\.|transformer\.|lora_unet_)?blocks[._]\d")
"""A layer of Wan's transformer blocks, under any of its layouts' prefixes."""


def claims_wan_lora(names: Collection[str]) -> bool:
    """Whether a LoRA's diffusion-model keys name Wan's transformer blocks (``blocks.N.`` / ``blocks_N_``)."""
    return any(_BLOCK.match(name) for name in names)


def wan_lora_weights(path: Path, state: dict[str, torch.Tensor]) -> LoraWeights:
    """Low-rank pairs through diffusers' Wan LoRA conversion; whole deltas renamed with its checkpoint conversion."""
    state = dict(state)
    whole = {key: state.pop(key) for key in list(state) if _is_original_delta(key)}
    converted = _diffusers_lora(path, state) if state else {}
    low_rank = grouped(path, {key.removeprefix(DIFFUSERS_PREFIX): tensor for key, tensor in converted.items()})
    original = grouped(path, {key.removeprefix(ORIGINAL_PREFIX): tensor for key, tensor in whole.items()})
    deltas = dict(low_rank.deltas)
    for name, delta in _diffusers_names(original.deltas).items():
        accumulate(deltas, name, delta)
    return LoraWeights(path, low_rank.pairs, deltas)


def _is_original_delta(key: str) -> bool:
    return key.startswith(ORIGINAL_PREFIX) and key.endswith(FULL_DELTA_SUFFIXES)


def _diffusers_lora(path: Path, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """diffusers' conversion of a Wan LoRA's low-rank pairs to diffusers names; a layout it cannot convert raises
    ``LoraError``."""
    from diffusers.loaders import WanLoraLoaderMixin

    try:
        return WanLoraLoaderMixin.lora_state_dict(state)
    except (KeyError, ValueError, IndexError, RuntimeError) as exc:
        sample = ", ".join(list(state)[:MAX_LISTED])
        raise LoraError(
            path,
            f"its keys are no Wan LoRA layout Reelgraph can convert ({sample}, ...; the conversion stopped at {exc!r})",
        ) from exc


def _diffusers_names(deltas: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Whole deltas under Wan's original parameter names, renamed to diffusers' names."""
    from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers

    return convert_wan_transformer_to_diffusers(dict(deltas))


WAN_LORA = LoraFormat(claims=claims_wan_lora, convert=wan_lora_weights)
