"""LoRA nodes in ComfyUI's vocabulary: ``LoraLoader`` (diffusion model and text encoder) and
``LoraLoaderModelOnly``.

A patched model is a new entry in the memory manager, derived from the input's (``ModelManager.derive``): its key
adds the LoRA file's identity and the strength, so stacked LoRAs chain and patched and unpatched models are never
confused; a model loaded only to be patched hands over its weights instead of being read twice.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from functools import partial
from pathlib import Path
from types import MappingProxyType
from typing import Any

import torch

from graph.context import current_context
from models.diffusion_model import DiffusionModel
from models.encoders import TextEncoder
from models.lora import (
    LoraError,
    apply_lora_to_diffusion_model,
    apply_lora_to_text_encoder,
    inspect_lora,
    lora_suffix,
)
from models.memory import MODELS_SERVICE, ModelManager
from models.model_handle import ModelHandle
from nodes.errors import named_model_errors
from nodes.model_files import ModelFolderBound, resolve_model_file

logger = logging.getLogger(__name__)

CATEGORY = "loaders"
LORA_NAME = "lora_name"
STRENGTH = MappingProxyType({"default": 1.0, "min": -100.0, "max": 100.0, "step": 0.01})


class LoraLoaderModelOnly(ModelFolderBound):
    """A LoRA merged into a diffusion model."""

    FUNCTION = "load_lora_model_only"
    CATEGORY = CATEGORY
    RETURN_TYPES = ("MODEL",)
    OUTPUT_TOOLTIPS = ("The diffusion model with the LoRA merged in.",)
    DESCRIPTION = "Merges a LoRA from the loras folder into a diffusion model; chain nodes to stack LoRAs."

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "model": ("MODEL", {"tooltip": "The diffusion model to patch."}),
                LORA_NAME: _lora_choice(cls),
                "strength_model": ("FLOAT", {**STRENGTH, "tooltip": "How much of the LoRA to add; may be negative."}),
            }
        }

    def load_lora_model_only(
        self, model: DiffusionModel, lora_name: str, strength_model: float
    ) -> tuple[DiffusionModel]:
        if strength_model == 0:
            return (model,)
        path = resolve_model_file("loras", lora_name, LORA_NAME)
        with named_model_errors(LORA_NAME):
            contents = inspect_lora(path)
            if not contents.diffusion_model:
                raise LoraError(
                    path, "has no weights for the diffusion model, only for the text encoder: use LoraLoader"
                )
            if contents.text_encoder:
                logger.info("%s: its text-encoder weights are ignored by LoraLoaderModelOnly", path.name)
            return (_patched_model(model, path, strength_model),)


class LoraLoader(ModelFolderBound):
    """A LoRA merged into a diffusion model and, where it has weights for one, the text encoder."""

    FUNCTION = "load_lora"
    CATEGORY = CATEGORY
    RETURN_TYPES = ("MODEL", "CLIP")
    OUTPUT_TOOLTIPS = (
        "The diffusion model with the LoRA merged in.",
        "The text encoder with the LoRA merged in (unchanged if the LoRA has no text-encoder weights).",
    )
    DESCRIPTION = (
        "Merges a LoRA from the loras folder into a diffusion model and its text encoder; chain nodes to stack LoRAs."
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "model": ("MODEL", {"tooltip": "The diffusion model to patch."}),
                "clip": ("CLIP", {"tooltip": "The text encoder to patch."}),
                LORA_NAME: _lora_choice(cls),
                "strength_model": (
                    "FLOAT",
                    {**STRENGTH, "tooltip": "How much of the LoRA to add to the diffusion model; may be negative."},
                ),
                "strength_clip": (
                    "FLOAT",
                    {**STRENGTH, "tooltip": "How much of the LoRA to add to the text encoder; may be negative."},
                ),
            }
        }

    def load_lora(
        self, model: DiffusionModel, clip: TextEncoder, lora_name: str, strength_model: float, strength_clip: float
    ) -> tuple[DiffusionModel, TextEncoder]:
        if strength_model == 0 and strength_clip == 0:
            return (model, clip)
        path = resolve_model_file("loras", lora_name, LORA_NAME)
        with named_model_errors(LORA_NAME):
            contents = inspect_lora(path)
            if contents.diffusion_model and strength_model != 0:
                model = _patched_model(model, path, strength_model)
            if contents.text_encoder and strength_clip != 0:
                patched = _derived(clip.handle, path, strength_clip, apply_lora_to_text_encoder)
                clip = dataclasses.replace(clip, handles=(patched, *clip.handles[1:]))
        return (model, clip)


def _lora_choice(node_class: type[ModelFolderBound]) -> tuple[list[str], dict[str, Any]]:
    return node_class.model_input("loras", "The LoRA file (loras folder).")


def _patched_model(model: DiffusionModel, path: Path, strength: float) -> DiffusionModel:
    return dataclasses.replace(model, handle=_derived(model.handle, path, strength, apply_lora_to_diffusion_model))


def _derived(
    handle: ModelHandle,
    path: Path,
    strength: float,
    apply: Callable[[torch.nn.Module, Path, float], torch.nn.Module],
) -> ModelHandle:
    """The manager's handle of ``handle``'s network with the LoRA merged at ``strength`` (merged now)."""
    manager: ModelManager = current_context().service(MODELS_SERVICE)
    return manager.derive(handle, lora_suffix(path, strength), partial(apply, path=path, strength=strength))


NODE_CLASS_MAPPINGS = {
    "LoraLoader": LoraLoader,
    "LoraLoaderModelOnly": LoraLoaderModelOnly,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "LoraLoader": "Load LoRA",
    "LoraLoaderModelOnly": "LoraLoaderModelOnly",
}
