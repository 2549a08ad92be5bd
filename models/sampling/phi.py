"""The weights of exponential integrators: how a step of size ``x`` in half log-SNR weighs the Taylor terms of ``x0``.

``phi_weights(x, n)[k] = (k! / x^k) * integral_0^x e^(-(x - u)) u^k / k! du`` (so ``[0] = 1 - e^-x`` and every
weight tends to 1 as ``x -> inf``; ``[k] ~ x / (k + 1)`` for small ``x``). Computed by their power series for small
steps, where the closed-form recursion ``g_k = 1 - k g_(k-1) / x`` would cancel catastrophically.
"""

from __future__ import annotations

import math

__all__ = ["phi_weights"]

_SERIES_BELOW = 1.0
_SERIES_TERMS = 40


def _series(x: float, k: int) -> float:
    """``k! * sum_j (-1)^j x^(j+1) / (k+1+j)!``."""
    term = x / (k + 1)
    total = term
    for j in range(_SERIES_TERMS):
        term *= -x / (k + 2 + j)
        total += term
        if abs(term) < 1e-18 * abs(total):
            break
    return total


def phi_weights(x: float, count: int) -> tuple[float, ...]:
    """The weights ``g_0 .. g_(count - 1)`` for a step of size ``x > 0`` (``inf`` allowed: all 1)."""
    if x < _SERIES_BELOW:
        return tuple(_series(x, k) for k in range(count))
    weights = [-math.expm1(-x)]
    for k in range(1, count):
        weights.append(1.0 - k * weights[-1] / x)
    return tuple(weights)
