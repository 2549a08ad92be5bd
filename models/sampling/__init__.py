"""Sampling: noise parametrisations of model families, noise schedules and samplers, with ComfyUI's names."""

from models.sampling.model_sampling import EpsSampling, FlowSampling, ModelSampling
from models.sampling.samplers import SAMPLER_NAMES, Denoiser, Sampler, SamplerOptions, StepCallback, get_sampler
from models.sampling.schedulers import SCHEDULER_NAMES, make_sigmas

__all__ = [
    "SAMPLER_NAMES",
    "SCHEDULER_NAMES",
    "Denoiser",
    "EpsSampling",
    "FlowSampling",
    "ModelSampling",
    "Sampler",
    "SamplerOptions",
    "StepCallback",
    "get_sampler",
    "make_sigmas",
]
