"""What every sampler method shares during one ``Sampler.sample`` call: the sigma list, the denoiser call, fresh
noise, the per-step callback and the state space's half log-SNR.

The state at noise level ``sigma`` is ``x = alpha(sigma) * x0 + sigma * noise``; ``half_log_snr`` is
``lambda = log(alpha / sigma)``, the variable the exponential integrators step in (``-inf`` where ``alpha == 0``,
the pure-noise start of a flow model, and ``+inf`` at ``sigma == 0``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from models.sampling.model_sampling import ModelSampling

__all__ = ["DenoisedAt", "Denoiser", "SamplingRun", "StepCallback"]

Denoiser = Callable[[Tensor, Tensor], Tensor]
"""``(x, sigma) -> x0`` estimate; ``sigma`` holds one value per batch item."""
StepCallback = Callable[[int, int, Tensor, Tensor], None]
"""``(step index, total steps, x, denoised)`` after every step; raising aborts the sampling."""


@dataclass(frozen=True)
class DenoisedAt:
    """A denoised value and the half log-SNR it was computed at (the history of multistep methods)."""

    lam: float
    denoised: Tensor


@dataclass(frozen=True)
class SamplingRun:
    """One sampling call's fixed inputs; ``sigmas`` are exact Python floats of the caller's sigma tensor."""

    denoiser: Denoiser
    sigmas: tuple[float, ...]
    sigma_dtype: torch.dtype
    model_sampling: ModelSampling
    generator: torch.Generator | None
    callback: StepCallback | None

    @property
    def steps(self) -> int:
        return len(self.sigmas) - 1

    def denoise(self, x: Tensor, sigma: float) -> Tensor:
        """The denoiser at ``sigma``, given as one value per batch item in the sigma list's dtype."""
        return self.denoiser(x, torch.full((x.shape[0],), sigma, dtype=self.sigma_dtype, device=x.device))

    def noise_like(self, x: Tensor) -> Tensor:
        """Unit Gaussian noise drawn on the CPU in float32 (the same values on every device), moved to ``x``."""
        noise = torch.randn(x.shape, generator=self.generator, dtype=torch.float32, device="cpu")
        return noise.to(device=x.device, dtype=x.dtype)

    def report(self, step: int, x: Tensor, denoised: Tensor) -> None:
        if self.callback is not None:
            self.callback(step, self.steps, x, denoised)

    def renoise(self, x: Tensor, denoised: Tensor, sigma: float, sigma_next: float, noise_std: float = 0.0) -> Tensor:
        """The state at ``sigma_next`` with the same denoised value and implied noise ``(x - alpha x0) / sigma``, the
        latter cut to leave room for ``noise_std`` of fresh noise (added by the caller). With none: the DDIM step."""
        kept_std = math.sqrt(max(sigma_next**2 - noise_std**2, 0.0))
        implied_noise = (x - self.alpha(sigma) * denoised) / sigma
        return self.alpha(sigma_next) * denoised + kept_std * implied_noise

    def alpha(self, sigma: float) -> float:
        return float(self.model_sampling.alpha(torch.tensor(sigma, dtype=torch.float64)))

    def half_log_snr(self, sigma: float) -> float:
        if sigma == 0.0:
            return math.inf
        alpha = self.alpha(sigma)
        return -math.inf if alpha <= 0.0 else math.log(alpha) - math.log(sigma)
