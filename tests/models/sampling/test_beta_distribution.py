"""The Beta distribution's CDF (continued fraction) and quantiles (bisection) against independent values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from models.sampling.beta_distribution import beta_cdf, beta_ppf


def _cdf_by_quadrature(x: float, a: float, b: float) -> float:
    """``I_x(a, b)`` by the trapezoid rule after ``t = u^(1/a)``, which removes the ``t^(a-1)`` singularity:
    ``integral_0^x t^(a-1) (1-t)^(b-1) dt = (1/a) integral_0^(x^a) (1 - u^(1/a))^(b-1) du``."""
    u = np.linspace(0.0, x**a, 200_001)
    integral = np.trapezoid((1.0 - u ** (1.0 / a)) ** (b - 1.0), u) / a
    return float(integral / math.exp(math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)))


@pytest.mark.parametrize("x", [0.001, 0.05, 0.3, 0.5, 0.62, 0.8])
def test_cdf_matches_numerical_integration(x: float) -> None:
    assert beta_cdf(x, 0.6, 0.6) == pytest.approx(_cdf_by_quadrature(x, 0.6, 0.6), abs=1e-8)


def test_cdf_closed_forms() -> None:
    x = 0.3
    assert beta_cdf(x, 0.5, 0.5) == pytest.approx(2 / math.pi * math.asin(math.sqrt(x)), abs=1e-12)  # arcsine law
    # Beta(2, 3): P(X <= x) = P(Binomial(4, x) >= 2)
    assert beta_cdf(x, 2, 3) == pytest.approx(sum(math.comb(4, j) * x**j * (1 - x) ** (4 - j) for j in (2, 3, 4)))
    assert beta_cdf(x, 1, 1) == pytest.approx(x)
    assert beta_cdf(0.0, 0.6, 0.6) == 0.0 and beta_cdf(1.0, 0.6, 0.6) == 1.0


def test_ppf_inverts_the_cdf() -> None:
    assert beta_ppf(0.5, 0.6, 0.6) == pytest.approx(0.5, abs=1e-9)  # symmetric
    assert beta_ppf(0.0, 0.6, 0.6) == pytest.approx(0.0, abs=1e-9)
    assert beta_ppf(1.0, 0.6, 0.6) == pytest.approx(1.0, abs=1e-9)
    for q in (0.01, 0.2, 0.45, 0.9, 0.999):
        x = beta_ppf(q, 0.6, 0.6)
        assert beta_cdf(x, 0.6, 0.6) == pytest.approx(q, abs=1e-9)
        assert beta_ppf(1 - q, 0.6, 0.6) == pytest.approx(1 - x, abs=1e-9)
    assert beta_ppf(0.25, 2, 3) == pytest.approx(0.2430, abs=1e-4)
    with pytest.raises(ValueError, match=r"probability must lie in \[0, 1\], got 1.5"):
        beta_ppf(1.5, 0.6, 0.6)
