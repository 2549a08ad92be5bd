"""ModelSampling: the training tables against their definitions, timestep maps, and the state-space conversions."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from models.sampling import EpsSampling, FlowSampling


def test_flow_table_is_the_shifted_uniform_grid() -> None:
    ms = FlowSampling(shift=3.0)
    t = np.arange(1, 1001) / 1000.0
    want = 3.0 * t / (1.0 + 2.0 * t)
    assert ms.sigmas.dtype == torch.float32 and ms.sigmas.shape == (1000,)
    np.testing.assert_allclose(ms.sigmas.numpy(), want, rtol=1e-6)
    assert ms.sigma_max == 1.0
    assert ms.sigma_min == pytest.approx(0.003 / 1.002, rel=1e-6)


def test_flow_timestep_is_the_unshifted_inverse() -> None:
    """The network gets ``sigma * 1000`` (diffusers' flow-match convention); ``sigma(t)`` applies the shift, so the
    round trip is the identity only without shift."""
    shifted, plain = FlowSampling(shift=3.0), FlowSampling()
    sigmas = torch.tensor([1.0, 0.75, 0.3, 0.01], dtype=torch.float64)
    torch.testing.assert_close(shifted.timestep(sigmas), sigmas * 1000.0)
    torch.testing.assert_close(plain.sigma(plain.timestep(sigmas)), sigmas)
    torch.testing.assert_close(shifted.sigma(shifted.timestep(sigmas)), 3.0 * sigmas / (1.0 + 2.0 * sigmas))
    assert float(shifted.sigma(torch.tensor(500.0))) == pytest.approx(0.75)  # t = 0.5: 1.5 / 2


def test_flow_state_conversions() -> None:
    ms = FlowSampling(shift=5.0)
    x0, noise = torch.randn(2, 3, 4), torch.randn(2, 3, 4)
    sigma = torch.tensor([0.25, 0.8])
    x = ms.noise_scaling(sigma, noise, x0)
    s = sigma.reshape(2, 1, 1)
    torch.testing.assert_close(x, s * noise + (1 - s) * x0)
    torch.testing.assert_close(ms.alpha(sigma), 1 - sigma)
    torch.testing.assert_close(ms.denoised(x, sigma, noise - x0), x0)  # the network predicts the velocity
    assert ms.model_input(x, sigma) is x
    torch.testing.assert_close(ms.inverse_noise_scaling(torch.tensor(0.5), 0.5 * x0), x0)
    torch.testing.assert_close(ms.inverse_noise_scaling(torch.tensor(0.0), x0), x0)
    assert torch.equal(ms.inverse_noise_scaling(torch.tensor(1.0), x0), x0)  # no signal to rescale


def test_eps_table_is_the_scaled_linear_schedule() -> None:
    ms = EpsSampling()
    betas = np.linspace(0.00085**0.5, 0.012**0.5, 1000) ** 2
    alphas_cumprod = np.cumprod(1.0 - betas)
    np.testing.assert_allclose(ms.sigmas.numpy(), np.sqrt((1 - alphas_cumprod) / alphas_cumprod), rtol=1e-6)
    assert ms.sigma_min == pytest.approx(0.0292, abs=1e-4)
    assert ms.sigma_max == pytest.approx(14.6146, abs=1e-4)
    linear = EpsSampling(beta_start=0.0001, beta_end=0.02, schedule="linear")
    alphas_cumprod = np.cumprod(1.0 - np.linspace(0.0001, 0.02, 1000))
    np.testing.assert_allclose(linear.sigmas.numpy(), np.sqrt((1 - alphas_cumprod) / alphas_cumprod), rtol=1e-6)


def test_eps_timestep_interpolates_log_sigma() -> None:
    ms = EpsSampling()
    table = ms.sigmas.double()
    torch.testing.assert_close(ms.timestep(table[[0, 10, 999]]), torch.tensor([0.0, 10.0, 999.0], dtype=torch.float64))
    between = (table[10] * table[11]).sqrt()  # halfway in log sigma
    assert float(ms.timestep(between)) == pytest.approx(10.5, abs=1e-9)
    assert float(ms.sigma(torch.tensor(10.5, dtype=torch.float64))) == pytest.approx(float(between), rel=1e-12)
    sigmas = torch.tensor([14.0, 3.3, 0.5, 0.03], dtype=torch.float64)
    torch.testing.assert_close(ms.sigma(ms.timestep(sigmas)), sigmas)
    assert float(ms.timestep(torch.tensor(100.0))) == 999.0 and float(ms.timestep(torch.tensor(0.001))) == 0.0
    assert ms.timestep(torch.tensor([1.0, 2.0])).dtype == torch.float32


def test_eps_state_conversions() -> None:
    x0, noise = torch.randn(2, 4, 3), torch.randn(2, 4, 3)
    sigma = torch.tensor([0.5, 7.0])
    s = sigma.reshape(2, 1, 1)
    eps = EpsSampling()
    x = eps.noise_scaling(sigma, noise, x0)
    torch.testing.assert_close(x, x0 + s * noise)
    torch.testing.assert_close(eps.alpha(sigma), torch.ones(2))
    torch.testing.assert_close(eps.denoised(x, sigma, noise), x0)
    torch.testing.assert_close(eps.model_input(x, sigma), x / (s**2 + 1).sqrt())
    assert eps.inverse_noise_scaling(sigma, x) is x
    # v-prediction: in the VP state z = x / sqrt(1 + sigma^2) = a x0 + b noise, v = a noise - b x0
    a, b = 1 / (1 + s**2).sqrt(), s / (1 + s**2).sqrt()
    v = EpsSampling(prediction="v_prediction")
    torch.testing.assert_close(v.denoised(x, sigma, a * noise - b * x0), x0, rtol=1e-5, atol=1e-5)


def test_percent_to_sigma() -> None:
    flow, eps = FlowSampling(shift=3.0), EpsSampling()
    assert flow.percent_to_sigma(0.0) == 1.0 and eps.percent_to_sigma(0.0) == math.inf
    for ms in (flow, eps):
        assert ms.percent_to_sigma(1.0) == 0.0
    assert flow.percent_to_sigma(0.5) == pytest.approx(0.75)
    assert flow.percent_to_sigma(0.25) > flow.percent_to_sigma(0.5) > flow.percent_to_sigma(0.75)
    assert eps.percent_to_sigma(0.5) == pytest.approx(float(eps.sigma(torch.tensor(499.5, dtype=torch.float64))))
    assert eps.percent_to_sigma(1e-9) == pytest.approx(eps.sigma_max, rel=1e-6)


def test_frozen_hashable_and_checked() -> None:
    assert FlowSampling(shift=3.0) == FlowSampling(shift=3.0)
    assert len({FlowSampling(shift=3.0), FlowSampling(shift=3.0), EpsSampling()}) == 2
    with pytest.raises(dataclasses.FrozenInstanceError):
        FlowSampling().shift = 2.0  # type: ignore[misc]
    with pytest.raises(ValueError, match="unknown prediction 'x0'; valid: epsilon, v_prediction"):
        EpsSampling(prediction="x0")
    with pytest.raises(ValueError, match="unknown schedule 'cosine'; valid: scaled_linear, linear"):
        EpsSampling(schedule="cosine")
    with pytest.raises(ValueError, match="shift must be a positive number"):
        FlowSampling(shift=0.0)
