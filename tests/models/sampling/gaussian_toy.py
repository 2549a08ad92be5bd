"""An analytic test problem: data ``x0 ~ N(mu, s^2)`` per element, whose denoiser and probability-flow map are exact.

For a state ``x = alpha x0 + sigma noise`` the posterior mean is
``mu + alpha s^2 / (alpha^2 s^2 + sigma^2) (x - alpha mu)`` and the probability-flow ODE keeps
``(x - alpha mu) / sqrt(alpha^2 s^2 + sigma^2)`` constant.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from models.sampling import FlowSampling, ModelSampling


@dataclass(frozen=True)
class GaussianToy:
    model_sampling: ModelSampling
    mu: float = 0.5
    s: float = 0.3

    def alpha(self, sigma: float) -> float:
        return float(self.model_sampling.alpha(torch.tensor(sigma, dtype=torch.float64)))

    def marginal_std(self, sigma: float) -> float:
        return math.hypot(self.alpha(sigma) * self.s, sigma)

    def denoiser(self, x: Tensor, sigma: Tensor) -> Tensor:
        """The exact posterior mean; ``sigma`` holds one value per batch item."""
        sigma = sigma.to(x.dtype).reshape(-1, *([1] * (x.ndim - 1)))
        alpha = self.model_sampling.alpha(sigma)
        return self.mu + alpha * self.s**2 / (alpha**2 * self.s**2 + sigma**2) * (x - alpha * self.mu)

    def flow(self, x: Tensor, sigma_from: float, sigma_to: float) -> Tensor:
        """The exact probability-flow solution at ``sigma_to`` from ``x`` at ``sigma_from``."""
        scale = self.marginal_std(sigma_to) / self.marginal_std(sigma_from)
        return self.alpha(sigma_to) * self.mu + scale * (x - self.alpha(sigma_from) * self.mu)

    def marginal(self, sigma: float, n: int, generator: torch.Generator, dtype: torch.dtype = torch.float64) -> Tensor:
        """``n`` states drawn from the marginal at ``sigma``, shaped ``[n, 1]``."""
        noise = torch.randn(n, 1, generator=generator, dtype=dtype)
        return self.alpha(sigma) * self.mu + self.marginal_std(sigma) * noise

    def half_log_snr_grid(self, sigma_from: float, sigma_to: float, steps: int) -> Tensor:
        """``steps + 1`` float64 sigmas evenly spaced in ``log(alpha / sigma)`` (a smooth schedule)."""
        lam = torch.linspace(
            math.log(self.alpha(sigma_from) / sigma_from),
            math.log(self.alpha(sigma_to) / sigma_to),
            steps + 1,
            dtype=torch.float64,
        )
        if isinstance(self.model_sampling, FlowSampling):  # alpha = 1 - sigma
            return 1.0 / (1.0 + lam.exp())
        return (-lam).exp()  # alpha = 1
