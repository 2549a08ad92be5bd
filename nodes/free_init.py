"""``FreeInitKSampler`` (our own; ComfyUI core has none): ``KSampler`` run several times with FreeInit's noise
re-initialisation (``models.sampling.free_init``), as diffusers' ``enable_free_init``. Works for every family: the
restart is the first sigma's noising in the model's own sampling."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from graph.context import current_context, node_context
from models.diffusion_model import DiffusionModel
from models.guidance import Conditioning, Guider
from models.noise import DrawnNoise, Noise
from models.sampling.free_init import FILTER_METHODS, FreeInitSettings, restart
from models.sampling.samplers import get_sampler
from models.sampling.schedulers import make_sigmas
from nodes.latent import latent_samples
from nodes.sampling import KSampler, run_sampling, with_memory_info

MAX_ITERATIONS = 16
STOP_FREQUENCY = {"default": 0.25, "min": 0.0, "max": 1.0, "step": 0.01}


class FreeInitKSampler:
    """``KSampler`` with FreeInit: after each run, the next starts from the result's low frequencies diffused back to
    the first noise level and fresh noise's high frequencies (better temporal consistency for video models)."""

    FUNCTION = "sample"
    CATEGORY = "sampling"
    RETURN_TYPES = ("LATENT",)
    DESCRIPTION = (
        "KSampler repeated `iterations` times with FreeInit: each run restarts from the low spatio-temporal "
        "frequencies of the previous result (re-noised) and the high frequencies of fresh noise."
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        required = KSampler.INPUT_TYPES()["required"]
        return {
            "required": {
                **required,
                "iterations": (
                    "INT",
                    {"default": 3, "min": 1, "max": MAX_ITERATIONS, "tooltip": "Sampling runs (1: plain KSampler)."},
                ),
                "filter_method": (list(FILTER_METHODS), {"tooltip": "The low-pass filter of the frequency mix."}),
                "order": ("INT", {"default": 4, "min": 1, "max": 16, "tooltip": "The Butterworth filter's order."}),
                "spatial_stop_frequency": (
                    "FLOAT",
                    {**STOP_FREQUENCY, "tooltip": "Normalised spatial cut-off of what the result passes on."},
                ),
                "temporal_stop_frequency": (
                    "FLOAT",
                    {**STOP_FREQUENCY, "tooltip": "Normalised temporal cut-off of what the result passes on."},
                ),
                "fast_sampling": (
                    "BOOLEAN",
                    {"default": False, "tooltip": "Coarse to fine: earlier runs take fewer steps."},
                ),
            },
            "optional": {
                "noise": ("NOISE", {"tooltip": "The initial noise instead of the seed's (e.g. FreeNoise's)."}),
            },
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
        iterations: int = 3,
        filter_method: str = "butterworth",
        order: int = 4,
        spatial_stop_frequency: float = 0.25,
        temporal_stop_frequency: float = 0.25,
        fast_sampling: bool = False,
        noise: Noise | None = None,
    ) -> dict[str, Any]:
        samples = latent_samples(latent_image, "latent_image")
        if latent_image.get("noise_mask") is not None:
            raise ValueError(
                "FreeInitKSampler: latent_image has a noise mask; FreeInit re-noises the whole latent and cannot keep "
                "a region (use KSampler, or drop the mask)"
            )
        try:
            settings = FreeInitSettings(
                iterations, filter_method, order, spatial_stop_frequency, temporal_stop_frequency, fast_sampling
            )
        except ValueError as exc:
            raise ValueError(f"FreeInitKSampler: {exc}") from exc
        schedules = [
            make_sigmas(scheduler, model.sampling, settings.steps(iteration, steps), denoise)
            for iteration in range(iterations)
        ]
        guider = Guider(model, positive, negative, cfg)
        if len(schedules[0]) < 2:  # denoise 0: nothing to sample
            return with_memory_info(guider, latent_image)
        sampler = get_sampler(sampler_name)
        fmt = model.adapter.latent_format
        initial, generator = (noise if noise is not None else Noise(seed)).draw(samples)
        low_pass = settings.low_pass(*samples.shape[-3:])
        total = sum(len(sigmas) - 1 for sigmas in schedules)
        latent, start_noise, done = samples, initial, 0
        for iteration, sigmas in enumerate(schedules):
            if iteration:  # FreeInit's restart from the previous result
                fresh = torch.randn(samples.shape, generator=generator, dtype=torch.float32)
                low, start_noise = restart(fmt.process_in(latent), initial, fresh, low_pass)
                latent = fmt.process_out(low)
            with _progress_from(done, total):
                drawn = DrawnNoise(drawn=start_noise, generator=generator)
                latent = run_sampling(guider, sampler, sigmas, {**latent_image, "samples": latent}, drawn).samples
            done += len(sigmas) - 1
        return with_memory_info(guider, {**latent_image, "samples": latent})


@contextmanager
def _progress_from(done: int, total: int) -> Iterator[None]:
    """Within, the running node's progress reports count on from ``done`` of ``total`` (one run of several)."""
    context = current_context()
    listener = context.on_progress

    def report(node_id: str, value: float, _runs_total: float, preview: Any) -> None:
        assert listener is not None
        listener(node_id, done + value, total, preview)

    with node_context(dataclasses.replace(context, on_progress=report if listener is not None else None)):
        yield


NODE_CLASS_MAPPINGS = {"FreeInitKSampler": FreeInitKSampler}
NODE_DISPLAY_NAME_MAPPINGS = {"FreeInitKSampler": "KSampler (FreeInit)"}
