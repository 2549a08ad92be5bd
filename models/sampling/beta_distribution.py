"""The Beta distribution's CDF and its inverse, for the ``beta`` scheduler (no scipy).

The CDF is the regularized incomplete beta function ``I_x(a, b)``, evaluated by its continued fraction (DLMF 8.17.22)
with the modified Lentz method; the inverse is a bisection on it.
"""

from __future__ import annotations

import math

__all__ = ["beta_cdf", "beta_ppf"]

_TINY = 1e-300
_CF_TOLERANCE = 1e-15
_CF_MAX_TERMS = 500
_PPF_TOLERANCE = 1e-12


def _continued_fraction(x: float, a: float, b: float) -> float:
    """``1 / (1 + d1 / (1 + d2 / (1 + ...)))`` of DLMF 8.17.22, converging fast for ``x < (a + 1) / (a + b + 2)``."""
    value, c, d = 1.0, 1.0, 0.0  # modified Lentz for 1 + d1 / (1 + d2 / ...)
    for j in range(1, _CF_MAX_TERMS + 1):
        m, odd = divmod(j, 2)
        if odd:  # d_{2m+1}
            numerator = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
        else:  # d_{2m}
            numerator = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
        d = 1.0 + numerator * d
        d = 1.0 / (d if abs(d) > _TINY else _TINY)
        c = 1.0 + numerator / c
        c = c if abs(c) > _TINY else _TINY
        value *= c * d
        if abs(c * d - 1.0) < _CF_TOLERANCE:
            return 1.0 / value
    raise ArithmeticError(f"incomplete beta continued fraction did not converge for x={x}, a={a}, b={b}")


def beta_cdf(x: float, a: float, b: float) -> float:
    """``P(X <= x)`` for ``X ~ Beta(a, b)``."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    if x > (a + 1.0) / (a + b + 2.0):
        return 1.0 - beta_cdf(1.0 - x, b, a)
    log_front = a * math.log(x) + b * math.log1p(-x) - (math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b))
    return math.exp(log_front) / a * _continued_fraction(x, a, b)


def beta_ppf(q: float, a: float, b: float) -> float:
    """The ``q``-quantile of ``Beta(a, b)`` (inverse CDF), by bisection to 1e-12."""
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"beta_ppf: probability must lie in [0, 1], got {q}")
    low, high = 0.0, 1.0
    while high - low > _PPF_TOLERANCE:
        mid = 0.5 * (low + high)
        if beta_cdf(mid, a, b) < q:
            low = mid
        else:
            high = mid
    return 0.5 * (low + high)
