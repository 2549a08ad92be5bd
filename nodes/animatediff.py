"""AnimateDiff nodes of our own (ComfyUI core has none): load a motion module (``animatediff_models`` folder), merge
motion LoRAs into it (``animatediff_motion_lora`` folder), put it on an SD1.5 ``MODEL`` (with optional FreeNoise
context windows), an empty SD1.5 video latent, and FreeNoise's shuffled initial noise. The result is an ordinary
``MODEL`` that ``KSampler`` / ``SamplerCustom`` sample, whose network is diffusers' ``UNetMotionModel``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from graph.context import current_context
from models.diffusion_model import DiffusionModel
from models.families.animatediff.adapter import WEIGHTING_SCHEMES, AnimateDiffAdapter, ContextWindows
from models.families.animatediff.free_noise import ShuffledContextNoise
from models.families.animatediff.motion_model import MotionModule, read_motion_module, with_motion_module
from models.families.sd15.adapter import Sd15Adapter
from models.families.sd15.latents import SD15_LATENT
from models.memory import MODELS_SERVICE, ModelManager
from nodes.errors import named_model_errors
from nodes.model_files import ModelFolderBound, resolve_model_file
from nodes.sampling import seed_input

CATEGORY = "animatediff"
MOTION_FOLDER = "animatediff_models"
MOTION_LORA_FOLDER = "animatediff_motion_lora"
MOTION_MODEL = "MOTION_MODEL"
MAX_FRAMES = 4096
MAX_SIZE = 16384
STRENGTH = {"default": 1.0, "min": -10.0, "max": 10.0, "step": 0.01}


class AnimateDiffLoader(ModelFolderBound):
    """An AnimateDiff motion module file (original ``mm_sd_v15_v2.ckpt`` layout or diffusers ``MotionAdapter``)."""

    FUNCTION = "load"
    CATEGORY = CATEGORY
    RETURN_TYPES = (MOTION_MODEL,)
    OUTPUT_TOOLTIPS = ("The motion module, for Apply AnimateDiff Motion Module.",)
    DESCRIPTION = "Loads an AnimateDiff motion module (v1, v2, v3) from the animatediff_models folder."

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"model_name": cls.model_input(MOTION_FOLDER, "The motion module file.")}}

    def load(self, model_name: str) -> tuple[MotionModule]:
        path = resolve_model_file(MOTION_FOLDER, model_name, "model_name")
        with named_model_errors("model_name"):
            return (read_motion_module(path),)


class AnimateDiffMotionLoRA(ModelFolderBound):
    """A motion LoRA (camera motions such as ``v2_lora_ZoomIn.ckpt``) merged into a motion module."""

    FUNCTION = "apply"
    CATEGORY = CATEGORY
    RETURN_TYPES = (MOTION_MODEL,)
    OUTPUT_TOOLTIPS = ("The motion module with the LoRA merged in when it is applied.",)
    DESCRIPTION = "Adds a motion LoRA from the animatediff_motion_lora folder to a motion module; chain to stack."

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "motion_model": (MOTION_MODEL, {"tooltip": "The motion module to patch."}),
                "lora_name": cls.model_input(MOTION_LORA_FOLDER, "The motion LoRA file."),
                "strength": ("FLOAT", {**STRENGTH, "tooltip": "How much of the LoRA to add; may be negative."}),
            }
        }

    def apply(self, motion_model: MotionModule, lora_name: str, strength: float) -> tuple[MotionModule]:
        if not isinstance(motion_model, MotionModule):
            raise ValueError(
                "AnimateDiffMotionLoRA: motion_model is not a motion module (Load AnimateDiff Motion Module)"
            )
        if strength == 0:
            return (motion_model,)
        path = resolve_model_file(MOTION_LORA_FOLDER, lora_name, "lora_name")
        return (motion_model.with_lora(path, strength),)


class AnimateDiffApply:
    """An SD1.5 ``MODEL`` with a motion module: a ``MODEL`` whose network is ``UNetMotionModel``."""

    FUNCTION = "apply"
    CATEGORY = CATEGORY
    RETURN_TYPES = ("MODEL",)
    OUTPUT_TOOLTIPS = ("The SD1.5 model with motion modules, for any sampler.",)
    DESCRIPTION = (
        "Puts an AnimateDiff motion module on an SD1.5 model. context_length > 0 runs the motion modules in "
        "overlapping windows (FreeNoise) so videos can be longer than the module's frames."
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "model": ("MODEL", {"tooltip": "An SD1.5 model (Load Checkpoint)."}),
                "motion_model": (MOTION_MODEL, {"tooltip": "The motion module."}),
                "context_length": (
                    "INT",
                    {"default": 0, "min": 0, "max": MAX_FRAMES, "tooltip": "Frames per window; 0: one window."},
                ),
                "context_stride": (
                    "INT",
                    {"default": 4, "min": 1, "max": MAX_FRAMES, "tooltip": "Frames between window starts."},
                ),
                "context_weighting": (list(WEIGHTING_SCHEMES), {"tooltip": "How overlapping windows are averaged."}),
            }
        }

    def apply(
        self,
        model: DiffusionModel,
        motion_model: MotionModule,
        context_length: int = 0,
        context_stride: int = 4,
        context_weighting: str = "pyramid",
    ) -> tuple[DiffusionModel]:
        adapter = model.adapter
        if not isinstance(adapter, Sd15Adapter) or isinstance(adapter, AnimateDiffAdapter):
            raise ValueError(
                f"AnimateDiffApply: model is {adapter.describe()}; motion modules go on an SD1.5 model without "
                "motion modules"
            )
        if not isinstance(motion_model, MotionModule):
            raise ValueError("AnimateDiffApply: motion_model is not a motion module (Load AnimateDiff Motion Module)")
        widths = tuple(adapter.spec.config["block_out_channels"])
        if tuple(motion_model.spec.config["block_out_channels"]) != widths:
            raise ValueError(
                f"AnimateDiffApply: {motion_model.name} is for a UNet of widths "
                f"{tuple(motion_model.spec.config['block_out_channels'])}; {model.name}'s are {widths} (an SD1.5 "
                "motion module needs an SD1.5 model)"
            )
        try:
            context = ContextWindows(context_length, context_stride, context_weighting) if context_length else None
        except ValueError as exc:
            raise ValueError(f"AnimateDiffApply: {exc}") from exc
        suffix = motion_model.key_suffix()
        if context is not None:
            suffix += f"+context({context.length},{context.stride},{context.weighting})"
        manager: ModelManager = current_context().service(MODELS_SERVICE)
        handle = manager.derive(model.handle, suffix, lambda unet: with_motion_module(unet, motion_model, context))
        motion_adapter = AnimateDiffAdapter(adapter.spec, motion_model.spec.max_frames, context)
        name = f"{model.name} + {motion_model.name}"
        return (dataclasses.replace(model, name=name, handle=handle, adapter=motion_adapter),)


class EmptyAnimateDiffLatent:
    """Zeros in SD1.5's latent, one latent frame per video frame."""

    FUNCTION = "generate"
    CATEGORY = CATEGORY
    RETURN_TYPES = ("LATENT",)
    DESCRIPTION = "An empty SD1.5 video latent: width/8 x height/8, one latent frame per frame, 4 channels."

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "width": ("INT", {"default": 512, "min": 16, "max": MAX_SIZE, "step": 8}),
                "height": ("INT", {"default": 512, "min": 16, "max": MAX_SIZE, "step": 8}),
                "length": ("INT", {"default": 16, "min": 1, "max": MAX_FRAMES, "tooltip": "Video frames."}),
                "batch_size": ("INT", {"default": 1, "min": 1, "max": 4096}),
            }
        }

    def generate(self, width: int, height: int, length: int, batch_size: int) -> tuple[dict[str, torch.Tensor]]:
        ratio = SD15_LATENT.spatial_ratio
        for name, value in (("width", width), ("height", height)):
            if value % ratio or value < ratio:
                raise ValueError(f"EmptyAnimateDiffLatent: {name} {value} is not a positive multiple of {ratio}")
        if length < 1 or batch_size < 1:
            raise ValueError(f"EmptyAnimateDiffLatent: length {length} and batch_size {batch_size} must be positive")
        shape = (batch_size, SD15_LATENT.channels, length, height // ratio, width // ratio)
        return ({"samples": torch.zeros(shape)},)


class FreeNoiseShuffledNoise:
    """FreeNoise's initial noise: frames past the first context window repeat earlier windows' noise, shuffled."""

    FUNCTION = "noise"
    CATEGORY = "sampling/custom_sampling/noise"
    RETURN_TYPES = ("NOISE",)
    DESCRIPTION = (
        "Noise from a seed whose frames past the first context window are shuffled copies of earlier windows' noise "
        "(FreeNoise); use the context length and stride of Apply AnimateDiff Motion Module."
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "noise_seed": seed_input(),
                "context_length": (
                    "INT",
                    {"default": 16, "min": 1, "max": MAX_FRAMES, "tooltip": "Frames per context window."},
                ),
                "context_stride": (
                    "INT",
                    {"default": 4, "min": 1, "max": MAX_FRAMES, "tooltip": "Frames between window starts."},
                ),
            }
        }

    def noise(self, noise_seed: int, context_length: int, context_stride: int) -> tuple[ShuffledContextNoise]:
        try:
            return (ShuffledContextNoise(noise_seed, context_length=context_length, context_stride=context_stride),)
        except ValueError as exc:
            raise ValueError(f"FreeNoiseShuffledNoise: {exc}") from exc


NODE_CLASS_MAPPINGS = {
    "AnimateDiffLoader": AnimateDiffLoader,
    "AnimateDiffMotionLoRA": AnimateDiffMotionLoRA,
    "AnimateDiffApply": AnimateDiffApply,
    "EmptyAnimateDiffLatent": EmptyAnimateDiffLatent,
    "FreeNoiseShuffledNoise": FreeNoiseShuffledNoise,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "AnimateDiffLoader": "Load AnimateDiff Motion Module",
    "AnimateDiffMotionLoRA": "AnimateDiff Motion LoRA",
    "AnimateDiffApply": "Apply AnimateDiff Motion Module",
    "EmptyAnimateDiffLatent": "Empty AnimateDiff Latent",
    "FreeNoiseShuffledNoise": "FreeNoise Shuffled Noise",
}
