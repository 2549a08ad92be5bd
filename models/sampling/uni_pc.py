"""UniPC (Zhao et al. 2023): a multistep predictor (UniP) and a corrector (UniC) that reuses the next step's model
evaluation, on the data-prediction ODE in half log-SNR ``lambda``.

Over a step of size ``h`` from ``lambda_s`` the exact solution is
``x_t = (sigma_t / sigma_s) x_s + alpha_t * integral_0^h e^(-(h - tau)) x0(lambda_s + tau) dtau``. With ``m0`` the
denoised value at ``lambda_s`` and ``m_k`` those at ``lambda_s + r_k h``, the differences ``(m_k - m0) / r_k`` are
combined with coefficients ``c`` solving ``sum_k c_k r_k^(n-1) = g_n(h)`` for n = 1..K (``g`` from ``phi_weights``),
which matches the Taylor terms of the integral up to order K. With a single difference UniPC uses ``c_1 = B(h) / 2``
instead: ``B(h) = h`` ("bh1") or ``1 - e^-h`` ("bh2"); with more, the paper's ``B(h)`` cancels out of the solve.

The predictor uses up to ``order - 1`` past values; the corrector adds the value at the predicted state, raising the
local accuracy by one order. Its model evaluation is the one the next step needs anyway, so each step costs one
evaluation; the corrector is skipped where no later step uses the state (before the final step to 0, and at the end).
With order 3 the bulk steps are fourth-order accurate, but the warm-up steps (fewer past values) bound the global
error to third order.
"""

from __future__ import annotations

import math

import numpy as np
from torch import Tensor

from models.sampling.phi import phi_weights
from models.sampling.sampling_run import DenoisedAt, SamplingRun

__all__ = ["UNI_PC_ORDER", "uni_pc"]

UNI_PC_ORDER = 3


def _combination(lam: float, h: float, current: Tensor, points: list[DenoisedAt], variant: str) -> Tensor | None:
    """``sum_k c_k (m_k - m0) / r_k`` over ``points`` (see the module docstring), or None without points."""
    if not points:
        return None
    ratios = [(p.lam - lam) / h for p in points]
    differences = [(p.denoised - current) / r for p, r in zip(points, ratios, strict=True)]
    if len(points) == 1:
        b_h = h if variant == "bh1" else -math.expm1(-h)
        coefficients = [b_h / 2.0]
    else:
        g = phi_weights(h, len(points) + 1)[1:]
        powers = np.array([[r**n for r in ratios] for n in range(len(points))])
        coefficients = np.linalg.solve(powers, np.array(g)).tolist()
    total = differences[0] * coefficients[0]
    for difference, coefficient in zip(differences[1:], coefficients[1:], strict=True):
        total = total + difference * coefficient
    return total


def uni_pc(run: SamplingRun, x: Tensor, *, variant: str) -> Tensor:
    """UniPC-3 with the given ``B(h)`` variant; the step to 0 returns the denoised value."""
    past: list[DenoisedAt] = []
    upcoming: Tensor | None = None  # the next step's denoised value, from the corrector's evaluation
    for i in range(run.steps):
        sigma, sigma_next = run.sigmas[i], run.sigmas[i + 1]
        current = run.denoise(x, sigma) if upcoming is None else upcoming
        upcoming = None
        lam = run.half_log_snr(sigma)
        if sigma_next == 0.0:
            x = current
        else:
            h = run.half_log_snr(sigma_next) - lam
            alpha_next = run.alpha(sigma_next)
            usable = past if math.isfinite(h) else []
            first_order = run.renoise(x, current, sigma, sigma_next)
            x = _advance(first_order, alpha_next, _combination(lam, h, current, usable, variant))
            if i + 1 < run.steps:
                upcoming = run.denoise(x, sigma_next)
                if run.sigmas[i + 2] > 0.0 and math.isfinite(h):
                    points = [*usable, DenoisedAt(lam + h, upcoming)]
                    x = _advance(first_order, alpha_next, _combination(lam, h, current, points, variant))
        if math.isfinite(lam):
            past = [*past, DenoisedAt(lam, current)][-(UNI_PC_ORDER - 1) :]
        run.report(i, x, current)
    return x


def _advance(first_order: Tensor, alpha_next: float, combination: Tensor | None) -> Tensor:
    return first_order if combination is None else first_order + alpha_next * combination
