"""Stable Diffusion 1.5 UNet LoRAs (``TransformerFamily.lora`` of the SD1.5 family, and so of AnimateDiff's motion
UNet, whose spatial layers keep ``UNet2DConditionModel``'s names): kohya's ``lora_unet_`` layout (diffusers names with
dots as underscores, as kohya trains SD1.5; LyCORIS LoCon convolutions included) and diffusers' ``unet.`` layout (peft
``lora_A``/``lora_B`` or the older attention-processor ``to_q_lora.down`` names).

Conversion is diffusers' own, as ``StableDiffusionLoraLoaderMixin.load_lora_weights`` runs it: ``lora_state_dict``
(kohya names to diffusers names) and ``convert_unet_state_dict_to_peft`` (to the UNet's layer names). Alphas are
folded into the down matrices first, since ``lora_state_dict`` hands them back under names of its own.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from pathlib import Path

import torch

from models.lora_weights import MAX_LISTED, LoraError, LoraFormat, LoraWeights, alphas_folded, grouped

__all__ = ["SD15_LORA", "claims_sd15_lora", "sd15_lora_weights"]

UNET_PREFIX = "unet."
_UNET_LAYER = re.compile(r"^(?:lora_unet_|unet\.)(?:down_blocks|up_blocks|mid_block)[._]")
"""A layer of a diffusers UNet's blocks in kohya's or diffusers' LoRA layout."""


def claims_sd15_lora(names: Collection[str]) -> bool:
    """Whether a LoRA's diffusion-model keys name a UNet's blocks (``lora_unet_down_blocks_0_...``,
    ``unet.up_blocks.1...``)."""
    return any(_UNET_LAYER.match(name) for name in names)


def sd15_lora_weights(path: Path, state: dict[str, torch.Tensor]) -> LoraWeights:
    """The UNet LoRA tensors of a file as ``LoraWeights`` under ``UNet2DConditionModel``'s names."""
    from diffusers.loaders import StableDiffusionLoraLoaderMixin
    from diffusers.utils.state_dict_utils import convert_unet_state_dict_to_peft

    try:
        converted, _alphas = StableDiffusionLoraLoaderMixin.lora_state_dict(alphas_folded(path, state))
    except (KeyError, ValueError, IndexError, RuntimeError) as exc:
        sample = ", ".join(list(state)[:MAX_LISTED])
        raise LoraError(
            path,
            f"its keys are no Stable Diffusion LoRA layout Reelgraph can convert ({sample}, ...; the conversion "
            f"stopped at {exc!r})",
        ) from exc
    outside = [key for key in converted if not key.startswith(UNET_PREFIX)]
    if outside:
        raise LoraError(
            path, f"{len(outside)} of its tensors are for no UNet layer ({', '.join(outside[:MAX_LISTED])})"
        )
    unet = {key.removeprefix(UNET_PREFIX): tensor for key, tensor in converted.items()}
    return grouped(path, convert_unet_state_dict_to_peft(unet))


SD15_LORA = LoraFormat(claims=claims_sd15_lora, convert=sd15_lora_weights)
