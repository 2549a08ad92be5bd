"""The ``CLIP`` and ``CLIP_VISION`` sockets: text and image encoders held by the memory manager.

``CLIP`` is any text encoder (ComfyUI's name); for Wan it is UMT5-XXL with its tokenizer, and ``encode`` gives the
zero-padded 512-token embeddings diffusers' Wan pipelines compute.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from models.clip_vision import ClipVisionOutput, encode_images
from models.memory import ModelManager
from models.memory_types import WorkEstimate
from models.model_handle import ModelHandle
from models.oom import run_with_oom_recovery
from models.text_encoders.wan_prompt import WAN_MAX_LENGTH, encode_wan_prompts

__all__ = ["ClipVisionEncoder", "TextEncoder"]

UMT5_XXL_FFN = 10240
VIT_H_TOKENS, VIT_H_WIDTH = 257, 1280


@dataclass(frozen=True)
class TextEncoder:
    """A text encoder and its tokenizer; ``kind`` is the ``CLIPLoader`` type (``wan``: UMT5-XXL embeddings as the Wan
    pipelines compute them)."""

    name: str
    kind: str
    handle: ModelHandle
    tokenizer: Any
    compute_dtype: torch.dtype
    max_length: int = WAN_MAX_LENGTH

    def encode(self, manager: ModelManager, text: str) -> list[list[Any]]:
        """``CONDITIONING`` for ``text``: ``[[embeddings [1, tokens, dim] float32 on the CPU, {}]]``."""

        def run(module: torch.nn.Module) -> torch.Tensor:
            return encode_wan_prompts(
                self.tokenizer, module, [text], self.max_length, device=manager.compute_device, dtype=self.compute_dtype
            )

        work = WorkEstimate(self.max_length * UMT5_XXL_FFN * 16)  # a layer's feed-forward activations, with slack
        embeds = run_with_oom_recovery(manager, self.handle, run, work)
        return [[embeds.to("cpu", torch.float32), {}]]


@dataclass(frozen=True)
class ClipVisionEncoder:
    """A CLIP image encoder (``CLIPVisionLoader``)."""

    name: str
    handle: ModelHandle
    compute_dtype: torch.dtype

    def encode(self, manager: ModelManager, images: torch.Tensor, crop: str) -> ClipVisionOutput:
        """``CLIP_VISION_OUTPUT`` for ``images`` (``IMAGE`` ``[B, H, W, 3]``); tensors on the CPU in float32."""

        def run(module: torch.nn.Module) -> ClipVisionOutput:
            pixels = images.to(manager.compute_device, self.compute_dtype)
            return encode_images(module, pixels, crop)

        work = WorkEstimate(images.shape[0] * VIT_H_TOKENS * VIT_H_WIDTH * 64)
        output = run_with_oom_recovery(manager, self.handle, run, work)
        return output.to("cpu", torch.float32)
