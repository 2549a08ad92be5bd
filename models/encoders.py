"""The ``CLIP`` and ``CLIP_VISION`` sockets: text and image encoders held by the memory manager.

``CLIP`` is any text encoder (ComfyUI's name): one or more networks with their tokenizers, of a ``CLIPLoader`` type
(``models.families.kinds.TextEncoderKind``) that encodes a prompt as its family's diffusers pipeline does (for Wan,
UMT5-XXL's zero-padded 512-token embeddings).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

import torch

from models.clip_vision import ClipVisionOutput, encode_images
from models.families.kinds import TextEncoderKind
from models.memory import ModelManager
from models.memory_types import WorkEstimate
from models.model_handle import ModelHandle
from models.oom import run_with_oom_recovery

__all__ = ["ClipVisionEncoder", "TextEncoder"]

T = TypeVar("T")
VIT_H_TOKENS, VIT_H_WIDTH = 257, 1280


@dataclass(frozen=True)
class TextEncoder:
    """A text encoder of ``kind``: one handle and tokenizer per network of ``kind.parts``, in that order."""

    name: str
    kind: TextEncoderKind
    handles: tuple[ModelHandle, ...]
    tokenizers: tuple[Any, ...]
    compute_dtype: torch.dtype

    @property
    def handle(self) -> ModelHandle:
        """The first (for most types, the only) network."""
        return self.handles[0]

    @property
    def tokenizer(self) -> Any:
        """The first network's tokenizer."""
        return self.tokenizers[0]

    def encode(self, manager: ModelManager, text: str) -> list[list[Any]]:
        """``CONDITIONING`` for ``text``: ``[[embeddings [1, tokens, dim], extras]]``, tensors float32 on the CPU."""

        def run(index: int, function: Any) -> Any:
            work = WorkEstimate(self.kind.parts[index].work_bytes)
            return run_with_oom_recovery(manager, self.handles[index], function, work)

        with torch.no_grad():
            encoding = self.kind.encode(run, self.tokenizers, text, self.compute_dtype)
        extras = {name: _on_cpu(value) for name, value in encoding.extras.items()}
        return [[_on_cpu(encoding.embeds), extras]]


def _on_cpu(value: Any) -> Any:
    """Tensors to the CPU (floating ones in float32); anything else as it is."""
    if not isinstance(value, torch.Tensor):
        return value
    return value.to("cpu", torch.float32) if value.is_floating_point() else value.to("cpu")


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
