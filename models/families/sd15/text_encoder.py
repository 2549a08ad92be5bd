"""Stable Diffusion 1.5's text encoder: CLIP-L's text tower, from ``clip_l.safetensors``-style files (``text_model.``
keys) or from an SD1.5 checkpoint (under ``cond_stage_model.transformer.``), and how a prompt is encoded: padded to
77 tokens, no attention mask, the last hidden state, as ``AnimateDiffPipeline.encode_prompt`` (no clip skip)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import torch
from diffusers.utils.torch_utils import get_module_execution_device

from models.families.kinds import PartRunner, PromptEncoding
from models.text_encoders.clip_text import clip_text_from_state_dict, is_clip_l_text
from models.text_encoders.prompts import CLIP_MAX_LENGTH

__all__ = ["CHECKPOINT_CLIP_PREFIX", "encode_sd_prompt", "is_sd_clip_text", "sd_clip_text_from_state_dict"]

CHECKPOINT_CLIP_PREFIX = "cond_stage_model.transformer."


def is_sd_clip_text(state_dict: Mapping[str, torch.Tensor]) -> bool:
    """Whether the tensors are a CLIP-L text tower alone, or an SD1.5 checkpoint holding one."""
    return is_clip_l_text(state_dict) or is_clip_l_text(_checkpoint_clip(state_dict))


def sd_clip_text_from_state_dict(
    state_dict: Mapping[str, torch.Tensor], dtype: torch.dtype, metadata: Mapping[str, str] | None = None
) -> torch.nn.Module:
    """The ``CLIPTextModel`` of a CLIP-L file or of an SD1.5 checkpoint's ``cond_stage_model`` (its other models'
    tensors ignored)."""
    if is_clip_l_text(state_dict):
        return clip_text_from_state_dict(state_dict, dtype, metadata)
    return clip_text_from_state_dict(_checkpoint_clip(state_dict), dtype, metadata)


def encode_sd_prompt(run: PartRunner, tokenizers: tuple[Any, ...], text: str, dtype: torch.dtype) -> PromptEncoding:
    """CLIP-L's last hidden state ``[1, 77, width]`` of ``text``, as ``AnimateDiffPipeline`` encodes a prompt."""
    del dtype
    tokenizer = tokenizers[0]

    def encode(module: torch.nn.Module) -> torch.Tensor:
        ids = tokenizer(
            [text], padding="max_length", max_length=CLIP_MAX_LENGTH, truncation=True, return_tensors="pt"
        ).input_ids
        device = get_module_execution_device(module)
        with torch.no_grad():
            return module(ids.to(device))[0]

    return PromptEncoding(run(0, encode), MappingProxyType({}))


def _checkpoint_clip(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The tensors under ``cond_stage_model.transformer.``, with the prefix removed (diffusers' converter)."""
    from diffusers.loaders.single_file_utils import convert_ldm_clip_checkpoint

    if not any(key.startswith(CHECKPOINT_CLIP_PREFIX) for key in state_dict):
        return {}
    return convert_ldm_clip_checkpoint(state_dict)
