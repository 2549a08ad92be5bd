"""Noise schedules: the descending sigma list a sampler walks, ending at 0, with ComfyUI's scheduler names.

Each schedule follows its definition as ComfyUI computes it (workflows depend on the exact values); ``make_sigmas``
applies ComfyUI's ``denoise`` semantics on top.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from types import MappingProxyType

import numpy as np
import torch
from torch import Tensor

from models.sampling.beta_distribution import beta_ppf
from models.sampling.model_sampling import ModelSampling

__all__ = ["SCHEDULER_NAMES", "make_sigmas"]

KARRAS_RHO = 7.0
BETA_ALPHA = 0.6
BETA_BETA = 0.6
LINEAR_QUADRATIC_THRESHOLD = 0.025
_FULL_DENOISE = 0.9999  # ComfyUI treats denoise above this as 1.0


def _with_zero(sigmas: list[float] | np.ndarray | Tensor) -> Tensor:
    values = torch.as_tensor(sigmas, dtype=torch.float64).reshape(-1)
    return torch.cat([values, values.new_zeros(1)]).to(torch.float32)


def simple(ms: ModelSampling, steps: int) -> Tensor:
    """Every ``N / steps``-th entry of the training table, from its top."""
    table = ms.sigmas
    stride = len(table) / steps
    return _with_zero([float(table[-(1 + int(i * stride))]) for i in range(steps)])


def _uniform_timesteps(ms: ModelSampling, steps: int, *, drop_last: bool) -> Tensor:
    """Sigmas at timesteps evenly spaced from ``timestep(sigma_max)`` to ``timestep(sigma_min)``."""
    bounds = ms.timestep(torch.tensor([ms.sigma_max, ms.sigma_min], dtype=torch.float64))
    count = steps + 1 if drop_last else steps
    timesteps = torch.linspace(float(bounds[0]), float(bounds[1]), count, dtype=torch.float64)
    if drop_last:
        timesteps = timesteps[:-1]
    return _with_zero(ms.sigma(timesteps))


def sgm_uniform(ms: ModelSampling, steps: int) -> Tensor:
    """``steps`` timesteps evenly spaced from the top, the last one short of ``timestep(sigma_min)``."""
    return _uniform_timesteps(ms, steps, drop_last=True)


def normal(ms: ModelSampling, steps: int) -> Tensor:
    """``steps`` timesteps evenly spaced from ``timestep(sigma_max)`` to ``timestep(sigma_min)`` inclusive."""
    return _uniform_timesteps(ms, steps, drop_last=False)


def karras(ms: ModelSampling, steps: int) -> Tensor:
    """Karras et al. (2022), eq. 5: evenly spaced in ``sigma ** (1 / rho)`` from ``sigma_max`` to ``sigma_min``."""
    ramp = torch.linspace(0.0, 1.0, steps, dtype=torch.float64)
    top, bottom = ms.sigma_max ** (1.0 / KARRAS_RHO), ms.sigma_min ** (1.0 / KARRAS_RHO)
    return _with_zero((top + ramp * (bottom - top)) ** KARRAS_RHO)


def exponential(ms: ModelSampling, steps: int) -> Tensor:
    """Evenly spaced in ``log(sigma)`` from ``sigma_max`` to ``sigma_min``."""
    return _with_zero(torch.linspace(math.log(ms.sigma_max), math.log(ms.sigma_min), steps, dtype=torch.float64).exp())


def ddim_uniform(ms: ModelSampling, steps: int) -> Tensor:
    """Every ``N // steps``-th table entry from index 1 upwards, reversed.

    As in ComfyUI, this gives more than ``steps`` sigmas when ``N - 1`` is not a multiple of the stride.
    """
    table = ms.sigmas
    stride = max(len(table) // steps, 1)
    return _with_zero(table[1::stride].flip(0))


def beta(ms: ModelSampling, steps: int) -> Tensor:
    """Lee et al. (2024), "Beta sampling is all you need": table indices at Beta(0.6, 0.6) quantiles of
    ``1, 1 - 1/steps, ..., 1/steps``, rounded half to even; repeated indices are kept once."""
    table = ms.sigmas
    last_index = len(table) - 1
    quantiles = 1.0 - np.linspace(0.0, 1.0, steps, endpoint=False)
    indices = np.rint([beta_ppf(float(q), BETA_ALPHA, BETA_BETA) * last_index for q in quantiles]).astype(np.int64)
    kept = [int(i) for n, i in enumerate(indices) if n == 0 or i != indices[n - 1]]
    return _with_zero(table[kept])


def linear_quadratic(ms: ModelSampling, steps: int) -> Tensor:
    """Genmo's Mochi schedule: ``1 - tau`` times ``sigma_max``, where ``tau`` rises linearly from 0 to the threshold
    over the first ``steps // 2`` steps, then along the parabola continuing it with the same slope to 1 at ``steps``."""
    if steps == 1:
        return torch.tensor([ms.sigma_max, 0.0], dtype=torch.float32)
    threshold = LINEAR_QUADRATIC_THRESHOLD
    linear_steps = steps // 2
    quadratic_steps = steps - linear_steps
    slope = threshold / linear_steps
    curvature = (1.0 - threshold - slope * quadratic_steps) / quadratic_steps**2
    i = torch.arange(steps + 1, dtype=torch.float64)
    tau = torch.where(
        i < linear_steps, slope * i, threshold + slope * (i - linear_steps) + curvature * (i - linear_steps) ** 2
    )
    tau[-1] = 1.0
    return ((1.0 - tau) * ms.sigma_max).to(torch.float32)


def kl_optimal(ms: ModelSampling, steps: int) -> Tensor:
    """Sabour et al. (2024), "Align your steps": evenly spaced in ``atan(sigma)`` from sigma_max to sigma_min."""
    t = torch.linspace(0.0, 1.0, steps, dtype=torch.float64)
    return _with_zero(torch.tan(t * math.atan(ms.sigma_min) + (1.0 - t) * math.atan(ms.sigma_max)))


_SCHEDULES: Mapping[str, Callable[[ModelSampling, int], Tensor]] = MappingProxyType(
    {
        "simple": simple,
        "sgm_uniform": sgm_uniform,
        "karras": karras,
        "exponential": exponential,
        "ddim_uniform": ddim_uniform,
        "beta": beta,
        "normal": normal,
        "linear_quadratic": linear_quadratic,
        "kl_optimal": kl_optimal,
    }
)
SCHEDULER_NAMES: tuple[str, ...] = tuple(_SCHEDULES)


def make_sigmas(scheduler: str, model_sampling: ModelSampling, steps: int, denoise: float = 1.0) -> Tensor:
    """The float32 descending sigmas (last 0.0) of ``scheduler`` for ``steps`` steps.

    With ``denoise < 1`` the schedule is made for ``int(steps / denoise)`` steps and its last ``steps + 1`` sigmas are
    kept (ComfyUI's semantics); ``denoise == 0`` gives an empty tensor.
    """
    schedule = _SCHEDULES.get(scheduler)
    if schedule is None:
        raise ValueError(f"unknown scheduler {scheduler!r}; valid schedulers: {', '.join(SCHEDULER_NAMES)}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"scheduler {scheduler!r}: steps must be a positive integer, got {steps!r}")
    if not 0.0 <= denoise <= 1.0:  # also rejects NaN
        raise ValueError(f"scheduler {scheduler!r}: denoise must lie in [0, 1], got {denoise!r}")
    if denoise > _FULL_DENOISE:
        return schedule(model_sampling, steps)
    if denoise <= 0.0:
        return torch.zeros(0, dtype=torch.float32)
    return schedule(model_sampling, int(steps / denoise))[-(steps + 1) :]
