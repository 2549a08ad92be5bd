"""Conditioning nodes: text and image encodings that guide sampling (``CLIPTextEncode``, ``ConditioningZeroOut``,
``CLIPVisionEncode``) and ``FluxGuidance``, the embedded guidance of guidance-distilled models."""

from __future__ import annotations

from typing import Any

import torch

from graph.context import current_context
from models.clip_vision import ClipVisionOutput
from models.encoders import ClipVisionEncoder, TextEncoder
from models.guidance import Conditioning, conditioning_entries
from models.memory import MODELS_SERVICE

CATEGORY = "conditioning"


class CLIPTextEncode:
    """A prompt as conditioning."""

    FUNCTION = "encode"
    CATEGORY = CATEGORY
    RETURN_TYPES = ("CONDITIONING",)
    OUTPUT_TOOLTIPS = ("The prompt's embeddings, to guide the sampler.",)
    DESCRIPTION = "Encodes a text prompt with a text encoder (CLIP socket) into conditioning for a sampler."

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "text": ("STRING", {"multiline": True, "dynamicPrompts": True, "tooltip": "The prompt."}),
                "clip": ("CLIP", {"tooltip": "The text encoder."}),
            }
        }

    def encode(self, clip: TextEncoder, text: str) -> tuple[list[list[Any]]]:
        return (clip.encode(current_context().service(MODELS_SERVICE), text),)


class ConditioningZeroOut:
    """Conditioning of zeros, shaped like its input (a "no prompt" negative)."""

    FUNCTION = "zero_out"
    CATEGORY = "advanced/conditioning"
    RETURN_TYPES = ("CONDITIONING",)
    DESCRIPTION = "Replaces the conditioning's embeddings with zeros, keeping its extras."

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"conditioning": ("CONDITIONING", {})}}

    def zero_out(self, conditioning: Conditioning) -> tuple[list[list[Any]]]:
        entries = conditioning_entries(conditioning, "conditioning")
        zeroed = []
        for tensor, extras in entries:
            extras = dict(extras)
            if isinstance(extras.get("pooled_output"), torch.Tensor):
                extras["pooled_output"] = torch.zeros_like(extras["pooled_output"])
            zeroed.append([torch.zeros_like(tensor), extras])
        return (zeroed,)


class CLIPVisionEncode:
    """An image's CLIP vision features (for Wan 2.1 image-to-video)."""

    FUNCTION = "encode"
    CATEGORY = CATEGORY
    RETURN_TYPES = ("CLIP_VISION_OUTPUT",)
    DESCRIPTION = "Encodes an image with a CLIP vision model; crop center keeps the middle square."

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "clip_vision": ("CLIP_VISION", {}),
                "image": ("IMAGE", {}),
                "crop": (["center", "none"], {"tooltip": "center: crop to a square; none: squash to a square."}),
            }
        }

    def encode(self, clip_vision: ClipVisionEncoder, image: torch.Tensor, crop: str) -> tuple[ClipVisionOutput]:
        return (clip_vision.encode(current_context().service(MODELS_SERVICE), image, crop),)


class FluxGuidance:
    """Sets the embedded guidance strength of guidance-distilled models (HunyuanVideo, Flux)."""

    FUNCTION = "append"
    CATEGORY = "advanced/conditioning/flux"
    RETURN_TYPES = ("CONDITIONING",)
    DESCRIPTION = (
        "Sets the guidance value that guidance-distilled models (HunyuanVideo) take as an input, on every "
        "conditioning entry; without it HunyuanVideo uses 6.0."
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "conditioning": ("CONDITIONING", {}),
                "guidance": ("FLOAT", {"default": 3.5, "min": 0.0, "max": 100.0, "step": 0.1}),
            }
        }

    def append(self, conditioning: Conditioning, guidance: float) -> tuple[list[list[Any]]]:
        entries = conditioning_entries(conditioning, "conditioning")
        return ([[tensor, {**extras, "guidance": float(guidance)}] for tensor, extras in entries],)


NODE_CLASS_MAPPINGS = {
    "CLIPTextEncode": CLIPTextEncode,
    "ConditioningZeroOut": ConditioningZeroOut,
    "CLIPVisionEncode": CLIPVisionEncode,
    "FluxGuidance": FluxGuidance,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "CLIPTextEncode": "CLIP Text Encode (Prompt)",
    "ConditioningZeroOut": "ConditioningZeroOut",
    "CLIPVisionEncode": "CLIP Vision Encode",
    "FluxGuidance": "FluxGuidance",
}
