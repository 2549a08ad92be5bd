"""Deterministic samplers against the exact probability-flow solution of the Gaussian toy: the error shrinks at the
method's order as the steps double, in both state spaces.

Orders expected (the global error ~ step^order on a smooth schedule):
- euler, ddim: 1 (one denoiser value per step, held constant over it).
- heun, dpm_2: 2 (two evaluations per step, trapezoid / midpoint).
- dpmpp_2m (and dpmpp_2m_sde with eta 0, both solver types): 2 (x0 extrapolated linearly through one past value).
- dpmpp_3m_sde with eta 0: 3 (quadratic through two past values; its first-order start step bounds the order to 2 only
  on far finer grids than these, where that single step's O(h^2) error overtakes the bulk's).
- uni_pc, uni_pc_bh2: 3 (UniP-3 with UniC: the bulk is fourth-order, the warm-up steps cap it at 3; measured ~3.5-4).
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from models.sampling import EpsSampling, FlowSampling, ModelSampling, get_sampler
from tests.models.sampling.gaussian_toy import GaussianToy

SPACES: list[tuple[ModelSampling, float, float]] = [
    (EpsSampling(), 10.0, 0.05),  # variance exploding, alpha = 1
    (FlowSampling(shift=3.0), 0.95, 0.05),  # rectified flow, alpha = 1 - sigma
]
CASES = [
    ("euler", {}, 1),
    ("ddim", {}, 1),
    ("euler_ancestral", {"eta": 0.0}, 1),
    ("heun", {}, 2),
    ("dpm_2", {}, 2),
    ("dpmpp_2m", {}, 2),
    ("dpmpp_2m_sde", {"eta": 0.0}, 2),
    ("dpmpp_2m_sde", {"eta": 0.0, "solver_type": "heun"}, 2),
    ("dpmpp_3m_sde", {"eta": 0.0}, 3),
    ("uni_pc", {}, 3),
    ("uni_pc_bh2", {}, 3),
]
STEPS = (20, 40, 80)


def _error(toy: GaussianToy, sampler_name: str, options: dict, sigma_from: float, sigma_to: float, steps: int) -> float:
    x = toy.alpha(sigma_from) * toy.mu + toy.marginal_std(sigma_from) * torch.linspace(
        -3.0, 3.0, 61, dtype=torch.float64
    )
    x = x.reshape(-1, 1)
    sigmas = toy.half_log_snr_grid(sigma_from, sigma_to, steps)
    out = get_sampler(sampler_name, **options).sample(toy.denoiser, x, sigmas, toy.model_sampling)
    return float((out - toy.flow(x, sigma_from, sigma_to)).abs().max())


@pytest.mark.parametrize(("space", "sigma_from", "sigma_to"), SPACES, ids=["eps", "flow"])
@pytest.mark.parametrize(("name", "options", "order"), CASES, ids=[f"{n}{o or ''}" for n, o, _ in CASES])
def test_error_shrinks_at_the_method_order(
    name: str, options: dict, order: int, space: ModelSampling, sigma_from: float, sigma_to: float
) -> None:
    toy = GaussianToy(space)
    errors = [_error(toy, name, options, sigma_from, sigma_to, steps) for steps in STEPS]
    assert errors[0] > 1e-9, f"errors {errors} too close to float64 noise to measure an order"
    observed = [math.log2(a / b) for a, b in itertools.pairwise(errors)]
    assert all(o >= order - 0.3 for o in observed), f"{name}: errors {errors}, observed orders {observed}"


@pytest.mark.parametrize("space", [s for s, _, _ in SPACES], ids=["eps", "flow"])
def test_first_order_methods_agree(space: ModelSampling) -> None:
    """Euler in sigma, DDIM and ancestral sampling without noise are the same step for both state spaces."""
    toy = GaussianToy(space)
    x = toy.marginal(float(space.sigma_max), 64, torch.Generator().manual_seed(1))
    sigmas = toy.half_log_snr_grid(0.9 * float(space.sigma_max), 0.05, 12)
    outs = [get_sampler(n, **o).sample(toy.denoiser, x, sigmas, space) for n, o, _ in CASES[:3]]
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=1e-12)
    torch.testing.assert_close(outs[0], outs[2], rtol=0, atol=1e-12)


@pytest.mark.parametrize("space", [s for s, _, _ in SPACES], ids=["eps", "flow"])
def test_sde_variants_without_noise_are_the_ode_solvers(space: ModelSampling) -> None:
    toy = GaussianToy(space)
    x = toy.marginal(0.9, 64, torch.Generator().manual_seed(2))
    sigmas = toy.half_log_snr_grid(0.9, 0.05, 10)
    two_m = get_sampler("dpmpp_2m").sample(toy.denoiser, x, sigmas, space)
    two_m_sde = get_sampler("dpmpp_2m_sde", eta=0.0).sample(toy.denoiser, x, sigmas, space)
    torch.testing.assert_close(two_m_sde, two_m, rtol=0, atol=1e-12)
