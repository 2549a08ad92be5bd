"""The parts custom sampling is built from: ``KSamplerSelect``, ``RandomNoise``, ``DisableNoise``, ``CFGGuider``,
``BasicGuider``, ``BasicScheduler``, ``SplitSigmas``, ``ManualSigmas``, and ``ModelSamplingSD3`` (the flow shift)."""

from __future__ import annotations

import math
import re
from typing import Any

import torch

from models.diffusion_model import DiffusionModel
from models.guidance import Conditioning, Guider
from models.noise import Noise
from models.sampling.model_sampling import FlowSampling
from models.sampling.samplers import SAMPLER_NAMES, Sampler, get_sampler
from models.sampling.schedulers import SCHEDULER_NAMES, make_sigmas
from nodes.sampling import MAX_STEPS, cfg_input, seed_input

CATEGORY = "sampling/custom_sampling"


class KSamplerSelect:
    FUNCTION = "select"
    CATEGORY = CATEGORY + "/samplers"
    RETURN_TYPES = ("SAMPLER",)
    DESCRIPTION = "A sampling method by name."

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"sampler_name": (list(SAMPLER_NAMES), {})}}

    def select(self, sampler_name: str) -> tuple[Sampler]:
        return (get_sampler(sampler_name),)


class RandomNoise:
    FUNCTION = "noise"
    CATEGORY = CATEGORY + "/noise"
    RETURN_TYPES = ("NOISE",)
    DESCRIPTION = "Gaussian noise from a seed (the same seed gives the same video on any device)."

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"noise_seed": seed_input()}}

    def noise(self, noise_seed: int) -> tuple[Noise]:
        return (Noise(noise_seed),)


class DisableNoise:
    FUNCTION = "noise"
    CATEGORY = CATEGORY + "/noise"
    RETURN_TYPES = ("NOISE",)
    DESCRIPTION = "No initial noise: continue from a latent that is already noisy."

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {}}

    def noise(self) -> tuple[Noise]:
        return (Noise(0, enabled=False),)


class CFGGuider:
    FUNCTION = "guider"
    CATEGORY = CATEGORY + "/guiders"
    RETURN_TYPES = ("GUIDER",)
    DESCRIPTION = "Classifier-free guidance: positive and negative conditioning mixed at scale cfg."

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "model": ("MODEL", {}),
                "positive": ("CONDITIONING", {}),
                "negative": ("CONDITIONING", {}),
                "cfg": cfg_input(),
            }
        }

    def guider(
        self, model: DiffusionModel, positive: Conditioning, negative: Conditioning, cfg: float
    ) -> tuple[Guider]:
        return (Guider(model, positive, negative, cfg),)


class BasicGuider:
    FUNCTION = "guider"
    CATEGORY = CATEGORY + "/guiders"
    RETURN_TYPES = ("GUIDER",)
    DESCRIPTION = "The model guided by one conditioning, without a negative."

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"model": ("MODEL", {}), "conditioning": ("CONDITIONING", {})}}

    def guider(self, model: DiffusionModel, conditioning: Conditioning) -> tuple[Guider]:
        return (Guider(model, conditioning),)


class BasicScheduler:
    FUNCTION = "sigmas"
    CATEGORY = CATEGORY + "/schedulers"
    RETURN_TYPES = ("SIGMAS",)
    DESCRIPTION = "The noise levels of a schedule for the model's sampling."

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "model": ("MODEL", {}),
                "scheduler": (list(SCHEDULER_NAMES), {}),
                "steps": ("INT", {"default": 20, "min": 1, "max": MAX_STEPS}),
                "denoise": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01}),
            }
        }

    def sigmas(self, model: DiffusionModel, scheduler: str, steps: int, denoise: float) -> tuple[torch.Tensor]:
        return (make_sigmas(scheduler, model.sampling, steps, denoise),)


class SplitSigmas:
    FUNCTION = "split"
    CATEGORY = CATEGORY + "/sigmas"
    RETURN_TYPES = ("SIGMAS", "SIGMAS")
    RETURN_NAMES = ("high_sigmas", "low_sigmas")
    DESCRIPTION = "Splits a schedule at a step: the levels up to it, and from it on (the step is in both)."

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"sigmas": ("SIGMAS", {}), "step": ("INT", {"default": 0, "min": 0, "max": MAX_STEPS})}}

    def split(self, sigmas: torch.Tensor, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        return sigmas[: step + 1], sigmas[step:]


class ManualSigmas:
    FUNCTION = "parse"
    CATEGORY = CATEGORY + "/sigmas"
    RETURN_TYPES = ("SIGMAS",)
    DESCRIPTION = "Noise levels typed as numbers separated by commas or spaces, highest first."

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"sigmas": ("STRING", {"default": "1, 0.5", "multiline": False})}}

    def parse(self, sigmas: str) -> tuple[torch.Tensor]:
        return (parse_sigmas(sigmas),)


def parse_sigmas(text: str) -> torch.Tensor:
    """Numbers from ``text`` (comma or space separated) as a float32 tensor; ``ValueError`` naming a bad item."""
    items = [item for item in re.split(r"[,\s]+", text.strip()) if item]
    if not items:
        raise ValueError("sigmas: no numbers given")
    values = []
    for item in items:
        try:
            value = float(item)
        except ValueError:
            raise ValueError(f"sigmas: {item!r} is not a number") from None
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"sigmas: {item!r} is not a finite, non-negative noise level")
        values.append(value)
    return torch.tensor(values, dtype=torch.float32)


class ModelSamplingSD3:
    FUNCTION = "patch"
    CATEGORY = "advanced/model"
    RETURN_TYPES = ("MODEL",)
    DESCRIPTION = (
        "Sets the flow shift of a rectified-flow model (Wan, SD3): higher shifts spend more steps at high noise."
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "model": ("MODEL", {}),
                "shift": ("FLOAT", {"default": 3.0, "min": 0.0, "max": 100.0, "step": 0.01}),
            }
        }

    def patch(self, model: DiffusionModel, shift: float) -> tuple[DiffusionModel]:
        if shift <= 0:
            raise ValueError(f"shift: {shift} must be above 0")
        return (model.with_sampling(FlowSampling(shift=shift, multiplier=1000.0)),)


NODE_CLASS_MAPPINGS = {
    "KSamplerSelect": KSamplerSelect,
    "RandomNoise": RandomNoise,
    "DisableNoise": DisableNoise,
    "CFGGuider": CFGGuider,
    "BasicGuider": BasicGuider,
    "BasicScheduler": BasicScheduler,
    "SplitSigmas": SplitSigmas,
    "ManualSigmas": ManualSigmas,
    "ModelSamplingSD3": ModelSamplingSD3,
}
