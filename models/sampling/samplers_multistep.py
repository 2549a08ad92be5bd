"""DPM-Solver++ multistep samplers (Lu et al. 2022): 2M, and the 2M and 3M SDE variants.

All step in the half log-SNR ``lambda = log(alpha / sigma)``. Over a step of size ``h``, the SDE family with noise
scale ``eta`` (``eta = 0``: the probability-flow ODE) solves exactly to

    x_t = (sigma_t / sigma_s) e^(-eta h) x_s + alpha_t * integral_0^h c e^(-c (h - tau)) x0(lambda_s + tau) dtau
          + sigma_t sqrt(1 - e^(-2 eta h)) z,          c = 1 + eta,

and the methods differ in how they extrapolate ``x0(lambda)`` from the denoised values of the last steps. Denoised
values at ``lambda = -inf`` (a flow model's pure-noise start) carry no slope information and are not used; the step
to ``sigma = 0`` returns the denoised value (the limit of every formula as ``h -> inf``).
"""

from __future__ import annotations

import math

from torch import Tensor

from models.sampling.phi import phi_weights
from models.sampling.sampling_run import DenoisedAt, SamplingRun

__all__ = ["SDE_SOLVER_TYPES", "dpmpp_2m", "dpmpp_2m_sde", "dpmpp_3m_sde"]

SDE_SOLVER_TYPES = ("midpoint", "heun")


def _exponential_step(run: SamplingRun, x: Tensor, denoised: Tensor, i: int, eta: float, s_noise: float) -> Tensor:
    """The first-order step (``x0`` held constant), with the SDE's fresh noise when ``eta > 0``."""
    sigma, sigma_next = run.sigmas[i], run.sigmas[i + 1]
    h = run.half_log_snr(sigma_next) - run.half_log_snr(sigma)
    eta_h = eta * h if eta > 0.0 else 0.0
    x = (sigma_next / sigma * math.exp(-eta_h)) * x + (run.alpha(sigma_next) * -math.expm1(-h - eta_h)) * denoised
    if eta_h > 0.0 and s_noise > 0.0:
        x = x + run.noise_like(x) * (s_noise * sigma_next * math.sqrt(-math.expm1(-2.0 * eta_h)))
    return x


def _weights(h: float, eta: float) -> tuple[float, float, float]:
    """``(1/h^k) integral_0^h c e^(-c (h - tau)) tau^k / k! dtau`` for k = 0, 1, 2 (``c = 1 + eta``)."""
    w0, w1, w2 = phi_weights((1.0 + eta) * h, 3)
    return w0, w1, w2 / 2.0


def _sample(run: SamplingRun, x: Tensor, *, eta: float, s_noise: float, history: int, solver_type: str) -> Tensor:
    """The shared loop: ``history`` past denoised values (1: 2M, 2: 3M) feed the correction of each step."""
    past: list[DenoisedAt] = []
    for i in range(run.steps):
        sigma, sigma_next = run.sigmas[i], run.sigmas[i + 1]
        denoised = run.denoise(x, sigma)
        lam = run.half_log_snr(sigma)
        if sigma_next == 0.0:
            x = denoised
        else:
            correction = _correction(past, lam, denoised, run.half_log_snr(sigma_next) - lam, eta, solver_type)
            x = _exponential_step(run, x, denoised, i, eta, s_noise)
            if correction is not None:
                x = x + run.alpha(sigma_next) * correction
        if math.isfinite(lam):
            past = [*past, DenoisedAt(lam, denoised)][-history:]
        run.report(i, x, denoised)
    return x


def _correction(
    past: list[DenoisedAt], lam: float, denoised: Tensor, h: float, eta: float, solver_type: str
) -> Tensor | None:
    """The higher-order part of the integral from polynomial extrapolation of ``x0`` through the past values.

    One past value: a linear ``x0`` with slope ``s0``; "midpoint" weighs it by the value at the step's middle, as
    DPM-Solver++(2M) does, "heun" integrates it exactly. Two: the quadratic through the three values, integrated
    exactly (third order: weight ``w2`` for the second derivative).
    """
    if not past or not math.isfinite(h):
        return None
    w0, w1, w2 = _weights(h, eta)
    h1 = lam - past[-1].lam
    slope = (denoised - past[-1].denoised) / h1
    if len(past) == 1:
        return slope * (0.5 * h * w0 if solver_type == "midpoint" else h * w1)
    h2 = past[-1].lam - past[-2].lam
    slope_before = (past[-1].denoised - past[-2].denoised) / h2
    curvature = (slope - slope_before) * (2.0 / (h1 + h2))
    return (slope + curvature * (h1 / 2.0)) * (h * w1) + curvature * (h * h * w2)


def dpmpp_2m(run: SamplingRun, x: Tensor) -> Tensor:
    """DPM-Solver++(2M): the ODE with ``x0`` extrapolated linearly through the previous step (second order)."""
    return _sample(run, x, eta=0.0, s_noise=0.0, history=1, solver_type="midpoint")


def dpmpp_2m_sde(run: SamplingRun, x: Tensor, *, eta: float, s_noise: float, solver_type: str) -> Tensor:
    """SDE-DPM-Solver++(2M): as 2M, with the SDE's decay and fresh noise scaled by ``eta``."""
    return _sample(run, x, eta=eta, s_noise=s_noise, history=1, solver_type=solver_type)


def dpmpp_3m_sde(run: SamplingRun, x: Tensor, *, eta: float, s_noise: float) -> Tensor:
    """The third-order multistep SDE solver: ``x0`` extrapolated quadratically through the last two steps."""
    return _sample(run, x, eta=eta, s_noise=s_noise, history=2, solver_type="heun")
