"""Single-step samplers: Euler, Euler ancestral, Heun, DPM-2, DDIM and LCM.

Euler, Heun and DPM-2 integrate the probability-flow ODE ``dx/dsigma = (x - D(x, sigma)) / sigma`` (Karras et al.
2022), which holds both for variance-exploding states and for rectified-flow states ``(1 - sigma) x0 + sigma noise``.
DDIM and the ancestral step use the state's signal scale ``alpha`` explicitly.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from models.sampling.sampling_run import SamplingRun

__all__ = ["ddim", "dpm_2", "euler", "euler_ancestral", "heun", "lcm"]


def euler(run: SamplingRun, x: Tensor) -> Tensor:
    """Euler's method on the probability-flow ODE (first order)."""
    for i in range(run.steps):
        sigma, sigma_next = run.sigmas[i], run.sigmas[i + 1]
        denoised = run.denoise(x, sigma)
        x = x + (x - denoised) / sigma * (sigma_next - sigma)
        run.report(i, x, denoised)
    return x


def heun(run: SamplingRun, x: Tensor) -> Tensor:
    """Heun's method (Karras et al. 2022, Algorithm 1 without churn; second order); Euler for the step to 0."""
    for i in range(run.steps):
        sigma, sigma_next = run.sigmas[i], run.sigmas[i + 1]
        denoised = run.denoise(x, sigma)
        slope = (x - denoised) / sigma
        x_euler = x + slope * (sigma_next - sigma)
        if sigma_next == 0.0:
            x = x_euler
        else:
            slope_next = (x_euler - run.denoise(x_euler, sigma_next)) / sigma_next
            x = x + (slope + slope_next) / 2.0 * (sigma_next - sigma)
        run.report(i, x, denoised)
    return x


def dpm_2(run: SamplingRun, x: Tensor) -> Tensor:
    """The midpoint method with the midpoint at the geometric mean of the two sigmas (second order, Karras et al.'s
    DPM-Solver-2 variant); Euler for the step to 0."""
    for i in range(run.steps):
        sigma, sigma_next = run.sigmas[i], run.sigmas[i + 1]
        denoised = run.denoise(x, sigma)
        slope = (x - denoised) / sigma
        if sigma_next == 0.0:
            x = x + slope * (sigma_next - sigma)
        else:
            sigma_mid = math.sqrt(sigma * sigma_next)
            x_mid = x + slope * (sigma_mid - sigma)
            slope_mid = (x_mid - run.denoise(x_mid, sigma_mid)) / sigma_mid
            x = x + slope_mid * (sigma_next - sigma)
        run.report(i, x, denoised)
    return x


def ddim(run: SamplingRun, x: Tensor) -> Tensor:
    """Deterministic DDIM (Song et al. 2021), i.e. first-order DPM-Solver: keep the implied noise, move the signal."""
    for i in range(run.steps):
        sigma, sigma_next = run.sigmas[i], run.sigmas[i + 1]
        denoised = run.denoise(x, sigma)
        x = run.renoise(x, denoised, sigma, sigma_next)
        run.report(i, x, denoised)
    return x


def euler_ancestral(run: SamplingRun, x: Tensor, *, eta: float, s_noise: float) -> Tensor:
    """Ancestral sampling: a DDIM step to a lower noise level, then fresh noise back up to ``sigma_next``.

    With ``eta = 1`` the fresh noise has the DDPM posterior's std ``sigma_next * sqrt(1 - exp(-2 h))``, ``h`` the step
    in half log-SNR (for variance-exploding states this is k-diffusion's ``sigma_up``); ``eta`` scales it.
    """
    for i in range(run.steps):
        sigma, sigma_next = run.sigmas[i], run.sigmas[i + 1]
        denoised = run.denoise(x, sigma)
        if sigma_next == 0.0:
            x = denoised
        else:
            h = run.half_log_snr(sigma_next) - run.half_log_snr(sigma)
            noise_std = min(sigma_next, eta * sigma_next * math.sqrt(-math.expm1(-2.0 * h)))
            x = run.renoise(x, denoised, sigma, sigma_next, noise_std)
            if noise_std > 0.0 and s_noise > 0.0:
                x = x + run.noise_like(x) * (s_noise * noise_std)
        run.report(i, x, denoised)
    return x


def lcm(run: SamplingRun, x: Tensor) -> Tensor:
    """Latent-consistency sampling (Luo et al. 2023): denoise, then noise the estimate afresh to ``sigma_next``."""
    for i in range(run.steps):
        sigma, sigma_next = run.sigmas[i], run.sigmas[i + 1]
        denoised = run.denoise(x, sigma)
        if sigma_next == 0.0:
            x = denoised
        else:
            level = torch.tensor(sigma_next, dtype=run.sigma_dtype, device=x.device)
            x = run.model_sampling.noise_scaling(level, run.noise_like(x), denoised)
        run.report(i, x, denoised)
    return x
