"""Schedulers against their formulas, with hand-computable values, and ComfyUI's denoise semantics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from models.sampling import SCHEDULER_NAMES, EpsSampling, FlowSampling, ModelSampling, make_sigmas
from models.sampling.beta_distribution import beta_ppf

EPS, FLOW = EpsSampling(), FlowSampling(shift=3.0)
SPACES = [EPS, FLOW]


def test_names_are_comfyui_s() -> None:
    assert SCHEDULER_NAMES == (
        "simple", "sgm_uniform", "karras", "exponential", "ddim_uniform", "beta", "normal", "linear_quadratic",
        "kl_optimal",
    )  # fmt: skip


@pytest.mark.parametrize("space", SPACES, ids=["eps", "flow"])
@pytest.mark.parametrize("name", SCHEDULER_NAMES)
@pytest.mark.parametrize("steps", [1, 2, 10, 25])
def test_shape_order_and_end(name: str, space: ModelSampling, steps: int) -> None:
    sigmas = make_sigmas(name, space, steps)
    assert sigmas.dtype == torch.float32 and sigmas.ndim == 1
    assert float(sigmas[-1]) == 0.0
    assert bool((sigmas[:-1] > sigmas[1:]).all()), sigmas
    if name not in ("ddim_uniform", "beta"):  # ComfyUI's ddim_uniform may give more, beta fewer (see below)
        assert len(sigmas) == steps + 1
    if name not in ("ddim_uniform",):  # ddim_uniform starts below the top of the table
        assert float(sigmas[0]) == pytest.approx(space.sigma_max, rel=1e-6)


@pytest.mark.parametrize("space", SPACES, ids=["eps", "flow"])
def test_karras_is_even_in_sigma_to_the_one_seventh(space: ModelSampling) -> None:
    sigmas = make_sigmas("karras", space, 12).double()[:-1]
    assert float(sigmas[0]) == pytest.approx(space.sigma_max, rel=1e-6)
    assert float(sigmas[-1]) == pytest.approx(space.sigma_min, rel=1e-6)
    root = sigmas ** (1 / 7)
    np.testing.assert_allclose(np.diff(root.numpy()), (root[-1] - root[0]).item() / 11, rtol=1e-4)


def test_karras_hand_values() -> None:
    """Three steps: sigma_max, the rho-mean ((a^(1/7) + b^(1/7)) / 2)^7, sigma_min, 0."""
    sigmas = make_sigmas("karras", EPS, 3).double()
    middle = ((EPS.sigma_max ** (1 / 7) + EPS.sigma_min ** (1 / 7)) / 2) ** 7
    np.testing.assert_allclose(sigmas.numpy(), [EPS.sigma_max, middle, EPS.sigma_min, 0.0], rtol=1e-6)
    assert middle == pytest.approx(1.2741, abs=1e-4)


@pytest.mark.parametrize("space", SPACES, ids=["eps", "flow"])
def test_exponential_is_log_uniform(space: ModelSampling) -> None:
    sigmas = make_sigmas("exponential", space, 3).double()
    ratio = (space.sigma_min / space.sigma_max) ** 0.5
    np.testing.assert_allclose(
        sigmas.numpy(), [space.sigma_max, space.sigma_max * ratio, space.sigma_min, 0], rtol=1e-6
    )


def test_simple_picks_table_entries_from_the_top() -> None:
    for space in SPACES:
        table = space.sigmas
        assert torch.equal(make_sigmas("simple", space, 10)[:-1], table[[999 - 100 * i for i in range(10)]])
        # 3 steps: strides of 333.33 -> indices 999, 999 - 333, 999 - 666
        assert torch.equal(make_sigmas("simple", space, 3)[:-1], table[[999, 666, 333]])
    # flow with shift 3: t = 1, 0.9, ... -> sigma = 3t / (1 + 2t)
    t = np.arange(10, 0, -1) / 10
    np.testing.assert_allclose(make_sigmas("simple", FLOW, 10)[:-1].numpy(), 3 * t / (1 + 2 * t), rtol=1e-6)


def test_ddim_uniform_takes_every_stride_th_entry_from_index_one() -> None:
    table = EPS.sigmas
    sigmas = make_sigmas("ddim_uniform", EPS, 10)
    assert torch.equal(sigmas[:-1], table[[901, 801, 701, 601, 501, 401, 301, 201, 101, 1]])
    # stride 1000 // 30 = 33 gives indices 1, 34, ..., 991: 31 sigmas + 0, as ComfyUI does
    assert len(make_sigmas("ddim_uniform", EPS, 30)) == 32


@pytest.mark.parametrize("space", SPACES, ids=["eps", "flow"])
def test_normal_and_sgm_uniform_space_timesteps_evenly(space: ModelSampling) -> None:
    top, bottom = (
        float(space.timestep(torch.tensor(s, dtype=torch.float64))) for s in (space.sigma_max, space.sigma_min)
    )
    normal = make_sigmas("normal", space, 4).double()
    want = space.sigma(torch.tensor([top + (bottom - top) * i / 3 for i in range(4)], dtype=torch.float64))
    np.testing.assert_allclose(normal[:-1].numpy(), want.numpy(), rtol=1e-6)
    sgm = make_sigmas("sgm_uniform", space, 4).double()
    want = space.sigma(torch.tensor([top + (bottom - top) * i / 4 for i in range(4)], dtype=torch.float64))
    np.testing.assert_allclose(sgm[:-1].numpy(), want.numpy(), rtol=1e-6)


def test_normal_on_eps_hand_values() -> None:
    """Timesteps 999, 499.5, 0: the top, the log-midpoint of table entries 499 and 500, the bottom."""
    sigmas = make_sigmas("normal", EPS, 3).double()
    table = EPS.sigmas.double()
    want = [table[999], (table[499] * table[500]).sqrt(), table[0], 0.0]
    np.testing.assert_allclose(sigmas.numpy(), want, rtol=1e-6)


def test_beta_uses_beta_quantiles_of_the_table() -> None:
    table = EPS.sigmas
    sigmas = make_sigmas("beta", EPS, 10)
    indices = [int(torch.nonzero(table == s).max()) for s in sigmas[:-1]]
    assert indices[0] == 999  # ppf(1) = 1
    # quantiles 1, 0.9, ..., 0.1: Beta(0.6, 0.6) is symmetric, so ppf(q) + ppf(1 - q) = 1
    for i in range(1, 5):
        assert indices[i] + indices[10 - i] == 999
    expected = [round(beta_ppf(1 - i / 10, 0.6, 0.6) * 999) for i in range(10)]
    assert indices == expected
    # many steps: the quantiles crowd at both ends, repeated table indices are kept once
    many = make_sigmas("beta", EPS, 300)
    assert len(many) < 301 and bool((many[:-1] > many[1:]).all())


def test_linear_quadratic_hand_values() -> None:
    np.testing.assert_allclose(make_sigmas("linear_quadratic", FLOW, 2).numpy(), [1.0, 0.975, 0.0], rtol=1e-6)
    # 4 steps: linear 0, 0.0125, 0.025; then 0.025 + 0.0125 k + c k^2 with c = (1 - 0.025 - 0.025) / 4
    tau = [0.0, 0.0125, 0.025, 0.025 + 0.0125 + 0.2375, 1.0]
    np.testing.assert_allclose(
        make_sigmas("linear_quadratic", EPS, 4).double().numpy(), (1 - np.array(tau)) * EPS.sigma_max, rtol=1e-6
    )
    np.testing.assert_allclose(make_sigmas("linear_quadratic", FLOW, 1).numpy(), [1.0, 0.0])


@pytest.mark.parametrize("space", SPACES, ids=["eps", "flow"])
def test_kl_optimal_is_even_in_arctan_sigma(space: ModelSampling) -> None:
    sigmas = make_sigmas("kl_optimal", space, 5).double()[:-1]
    angles = np.arctan(sigmas.numpy())
    np.testing.assert_allclose(
        angles, np.linspace(math.atan(space.sigma_max), math.atan(space.sigma_min), 5), rtol=1e-6
    )


@pytest.mark.parametrize("name", SCHEDULER_NAMES)
def test_denoise_keeps_the_tail_of_a_longer_schedule(name: str) -> None:
    assert torch.equal(make_sigmas(name, EPS, 10, denoise=0.5), make_sigmas(name, EPS, 20)[-11:])
    assert torch.equal(make_sigmas(name, FLOW, 10, denoise=0.3), make_sigmas(name, FLOW, 33)[-11:])
    assert torch.equal(make_sigmas(name, FLOW, 10, denoise=0.99995), make_sigmas(name, FLOW, 10))
    assert make_sigmas(name, EPS, 10, denoise=0.0).shape == (0,)


def test_bad_arguments_name_themselves() -> None:
    with pytest.raises(ValueError, match="unknown scheduler 'cosine'; valid schedulers: simple, sgm_uniform, karras"):
        make_sigmas("cosine", EPS, 10)
    with pytest.raises(ValueError, match="'karras': steps must be a positive integer, got 0"):
        make_sigmas("karras", EPS, 0)
    with pytest.raises(ValueError, match=r"steps must be a positive integer, got 2\.5"):
        make_sigmas("karras", EPS, 2.5)  # type: ignore[arg-type]
    for denoise in (1.5, -0.1, float("nan")):
        with pytest.raises(ValueError, match="denoise must lie in"):
            make_sigmas("karras", EPS, 10, denoise=denoise)
