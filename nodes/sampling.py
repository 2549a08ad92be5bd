"""Sampler nodes in ComfyUI's vocabulary: ``KSampler``, ``KSamplerAdvanced``, ``SamplerCustom``,
``SamplerCustomAdvanced``. All run ``models.generate.sample_latent``: per-step progress with a latent preview
(``models.latent_preview``), interrupt between steps, deterministic seeds, the memory manager's placement and
out-of-memory recovery."""

from __future__ import annotations

from typing import Any

import torch

from graph.context import current_context
from models.diffusion_model import DiffusionModel
from models.generate import SamplingResult, sample_latent
from models.guidance import Conditioning, Guider
from models.latent_preview import LATENT_PREVIEWS_SERVICE, LatentRgbProjection, pca_projection
from models.memory import MODELS_SERVICE
from models.noise import SEED_MAX, Noise
from models.sampling.samplers import SAMPLER_NAMES, Sampler, get_sampler
from models.sampling.schedulers import SCHEDULER_NAMES, make_sigmas
from nodes.latent import latent_samples

CATEGORY = "sampling"
MAX_STEPS = 10000


def seed_input(tooltip: str = "The noise seed.") -> tuple[str, dict[str, Any]]:
    return ("INT", {"default": 0, "min": 0, "max": SEED_MAX, "control_after_generate": True, "tooltip": tooltip})


def cfg_input() -> tuple[str, dict[str, Any]]:
    return (
        "FLOAT",
        {"default": 8.0, "min": 0.0, "max": 100.0, "step": 0.1, "round": 0.01, "tooltip": "Guidance scale (1: none)."},
    )


def run_sampling(
    guider: Guider, sampler: Sampler, sigmas: torch.Tensor, latent: dict[str, Any], noise: Noise
) -> SamplingResult:
    """Sample with the run's model manager, reporting each step as the node's progress."""
    context = current_context()
    samples = latent_samples(latent, "latent_image")
    noise_mask = latent.get("noise_mask")  # checked (and named) by sample_latent

    previews = context.services.get(LATENT_PREVIEWS_SERVICE)
    fmt = guider.model.adapter.latent_format
    fallback: list[LatentRgbProjection] = []

    def on_step(done: int, total: int, denoised: torch.Tensor) -> None:
        projection = previews.projection(fmt) if previews is not None else None
        if projection is None:  # no VAE of this format seen yet: principal components, fixed for the run
            if not fallback:
                fallback.append(pca_projection(denoised))
            projection = fallback[0]
        context.report_progress(done, total, projection.image(denoised))

    manager = context.service(MODELS_SERVICE)
    return sample_latent(manager, guider, sampler, sigmas, samples, noise, on_step, noise_mask)


def with_memory_info(guider: Guider, *outputs: Any) -> dict[str, Any]:
    """The node's result with the memory manager's placement decision as its output info (``ui.text``)."""
    plan = guider.model.handle.plan
    text = f"memory: {plan.policy}: {plan.reason}" if plan is not None else "memory: placed whole"
    return {"ui": {"text": [text]}, "result": outputs}


def _out(latent: dict[str, Any], samples: torch.Tensor) -> dict[str, Any]:
    return {**latent, "samples": samples}  # a noise mask stays: the next sampler keeps the same region


class KSampler:
    """Denoise a latent with a model, a sampler and a scheduler."""

    FUNCTION = "sample"
    CATEGORY = CATEGORY
    RETURN_TYPES = ("LATENT",)
    DESCRIPTION = "Samples a latent: noise from the seed, steps of the sampler along the scheduler's noise levels."

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "model": ("MODEL", {}),
                "seed": seed_input(),
                "steps": ("INT", {"default": 20, "min": 1, "max": MAX_STEPS}),
                "cfg": cfg_input(),
                "sampler_name": (list(SAMPLER_NAMES), {}),
                "scheduler": (list(SCHEDULER_NAMES), {}),
                "positive": ("CONDITIONING", {}),
                "negative": ("CONDITIONING", {}),
                "latent_image": ("LATENT", {}),
                "denoise": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01}),
            }
        }

    def sample(
        self,
        model: DiffusionModel,
        seed: int,
        steps: int,
        cfg: float,
        sampler_name: str,
        scheduler: str,
        positive: Conditioning,
        negative: Conditioning,
        latent_image: dict[str, Any],
        denoise: float = 1.0,
    ) -> dict[str, Any]:
        sigmas = make_sigmas(scheduler, model.sampling, steps, denoise)
        guider = Guider(model, positive, negative, cfg)
        result = run_sampling(guider, get_sampler(sampler_name), sigmas, latent_image, Noise(seed))
        return with_memory_info(guider, _out(latent_image, result.samples))


class KSamplerAdvanced:
    """``KSampler`` over a range of steps, optionally without adding noise or keeping the leftover noise: how Wan
    2.2 14B workflows hand a latent from the high-noise model to the low-noise one."""

    FUNCTION = "sample"
    CATEGORY = CATEGORY
    RETURN_TYPES = ("LATENT",)
    DESCRIPTION = "Samples steps start_at_step..end_at_step of a schedule; can continue from a noisy latent."

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "model": ("MODEL", {}),
                "add_noise": (["enable", "disable"], {}),
                "noise_seed": seed_input(),
                "steps": ("INT", {"default": 20, "min": 1, "max": MAX_STEPS}),
                "cfg": cfg_input(),
                "sampler_name": (list(SAMPLER_NAMES), {}),
                "scheduler": (list(SCHEDULER_NAMES), {}),
                "positive": ("CONDITIONING", {}),
                "negative": ("CONDITIONING", {}),
                "latent_image": ("LATENT", {}),
                "start_at_step": ("INT", {"default": 0, "min": 0, "max": MAX_STEPS}),
                "end_at_step": ("INT", {"default": MAX_STEPS, "min": 0, "max": MAX_STEPS}),
                "return_with_leftover_noise": (["disable", "enable"], {}),
            }
        }

    def sample(
        self,
        model: DiffusionModel,
        add_noise: str,
        noise_seed: int,
        steps: int,
        cfg: float,
        sampler_name: str,
        scheduler: str,
        positive: Conditioning,
        negative: Conditioning,
        latent_image: dict[str, Any],
        start_at_step: int,
        end_at_step: int,
        return_with_leftover_noise: str,
    ) -> dict[str, Any]:
        sigmas = step_range(
            make_sigmas(scheduler, model.sampling, steps), start_at_step, end_at_step, return_with_leftover_noise
        )
        guider = Guider(model, positive, negative, cfg)
        noise = Noise(noise_seed, enabled=add_noise == "enable")
        result = run_sampling(guider, get_sampler(sampler_name), sigmas, latent_image, noise)
        return with_memory_info(guider, _out(latent_image, result.samples))


def step_range(sigmas: torch.Tensor, start: int, end: int, leftover_noise: str) -> torch.Tensor:
    """The part of a schedule from step ``start`` to step ``end``; it ends at 0 unless the leftover noise is kept
    (``leftover_noise == "enable"``) and the range stops early. An empty range gives one sigma (nothing to do)."""
    if end < len(sigmas) - 1:
        sigmas = sigmas[: end + 1].clone()
        if leftover_noise != "enable":
            sigmas[-1] = 0.0
    if start >= len(sigmas) - 1:
        return sigmas[-1:]
    return sigmas[start:]


class SamplerCustom:
    """Sample with a given sampler and sigmas (noise, CFG and conditioning as inputs)."""

    FUNCTION = "sample"
    CATEGORY = "sampling/custom_sampling"
    RETURN_TYPES = ("LATENT", "LATENT")
    RETURN_NAMES = ("output", "denoised_output")
    DESCRIPTION = "Runs a SAMPLER along SIGMAS with classifier-free guidance; also gives the last x0 estimate."

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "model": ("MODEL", {}),
                "add_noise": ("BOOLEAN", {"default": True}),
                "noise_seed": seed_input(),
                "cfg": cfg_input(),
                "positive": ("CONDITIONING", {}),
                "negative": ("CONDITIONING", {}),
                "sampler": ("SAMPLER", {}),
                "sigmas": ("SIGMAS", {}),
                "latent_image": ("LATENT", {}),
            }
        }

    def sample(
        self,
        model: DiffusionModel,
        add_noise: bool,
        noise_seed: int,
        cfg: float,
        positive: Conditioning,
        negative: Conditioning,
        sampler: Sampler,
        sigmas: torch.Tensor,
        latent_image: dict[str, Any],
    ) -> dict[str, Any]:
        guider = Guider(model, positive, negative, cfg)
        result = run_sampling(guider, sampler, sigmas, latent_image, Noise(noise_seed, enabled=add_noise))
        return with_memory_info(guider, _out(latent_image, result.samples), _out(latent_image, result.denoised))


class SamplerCustomAdvanced:
    """Sample with separate noise, guider, sampler and sigmas."""

    FUNCTION = "sample"
    CATEGORY = "sampling/custom_sampling"
    RETURN_TYPES = ("LATENT", "LATENT")
    RETURN_NAMES = ("output", "denoised_output")
    DESCRIPTION = "Runs a SAMPLER along SIGMAS with a GUIDER from NOISE; also gives the last x0 estimate."

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "noise": ("NOISE", {}),
                "guider": ("GUIDER", {}),
                "sampler": ("SAMPLER", {}),
                "sigmas": ("SIGMAS", {}),
                "latent_image": ("LATENT", {}),
            }
        }

    def sample(
        self, noise: Noise, guider: Guider, sampler: Sampler, sigmas: torch.Tensor, latent_image: dict[str, Any]
    ) -> dict[str, Any]:
        result = run_sampling(guider, sampler, sigmas, latent_image, noise)
        return with_memory_info(guider, _out(latent_image, result.samples), _out(latent_image, result.denoised))


NODE_CLASS_MAPPINGS = {
    "KSampler": KSampler,
    "KSamplerAdvanced": KSamplerAdvanced,
    "SamplerCustom": SamplerCustom,
    "SamplerCustomAdvanced": SamplerCustomAdvanced,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "KSampler": "KSampler",
    "KSamplerAdvanced": "KSampler (Advanced)",
    "SamplerCustom": "SamplerCustom",
    "SamplerCustomAdvanced": "SamplerCustomAdvanced",
}
