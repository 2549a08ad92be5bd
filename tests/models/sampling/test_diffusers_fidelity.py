"""Fidelity to diffusers' FlowMatchEulerDiscreteScheduler (the Wan pipelines' scheduler): timesteps, sigmas, and the
Euler (and stochastic) updates with a flow model."""

from __future__ import annotations

import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler
from torch import Tensor

from models.sampling import FlowSampling, StepCallback, get_sampler, make_sigmas
from tests.models.sampling.gaussian_toy import GaussianToy

CASES = [(3.0, 10), (5.0, 30), (1.0, 7)]


def _velocity(toy: GaussianToy, x: Tensor, sigma: Tensor) -> Tensor:
    """The toy as a flow network: ``v = (x - x0_hat) / sigma``."""
    sigma = sigma.reshape(-1).expand(x.shape[0]).to(torch.float32)
    return (x - toy.denoiser(x, sigma)) / sigma.reshape(-1, *([1] * (x.ndim - 1)))


def _record(states: list[Tensor]) -> StepCallback:
    def callback(step: int, total: int, x: Tensor, denoised: Tensor) -> None:
        states.append(x)

    return callback


@pytest.mark.parametrize(("shift", "steps"), CASES)
def test_timesteps_and_normal_sigmas_match(shift: float, steps: int) -> None:
    scheduler = FlowMatchEulerDiscreteScheduler(shift=shift)
    scheduler.set_timesteps(steps)
    ms = FlowSampling(shift=shift)
    assert torch.equal(ms.timestep(scheduler.sigmas[:-1]), scheduler.timesteps)
    # diffusers spaces timesteps evenly from the top to the table's (shifted) bottom and shifts them: our "normal"
    torch.testing.assert_close(make_sigmas("normal", ms, steps), scheduler.sigmas, rtol=0, atol=1e-6)


@pytest.mark.parametrize(("shift", "steps"), CASES)
def test_euler_reproduces_the_scheduler_steps(shift: float, steps: int) -> None:
    ms = FlowSampling(shift=shift)
    toy = GaussianToy(ms)
    scheduler = FlowMatchEulerDiscreteScheduler(shift=shift)
    scheduler.set_timesteps(steps)
    x = torch.randn(3, 4, 8, generator=torch.Generator().manual_seed(0))
    theirs, sample = [], x
    for i, t in enumerate(scheduler.timesteps):
        sample = scheduler.step(_velocity(toy, sample, scheduler.sigmas[i]), t, sample).prev_sample
        theirs.append(sample)

    def denoiser(state: Tensor, sigma: Tensor) -> Tensor:
        return ms.denoised(state, sigma, _velocity(toy, state, sigma))

    ours: list[Tensor] = []
    get_sampler("euler").sample(denoiser, x, scheduler.sigmas, ms, callback=_record(ours))
    assert len(ours) == len(theirs) == steps
    for mine, reference in zip(ours, theirs, strict=True):
        torch.testing.assert_close(mine, reference, rtol=0, atol=1e-6)


def test_lcm_reproduces_the_stochastic_scheduler_steps() -> None:
    """diffusers' ``stochastic_sampling`` step, ``(1 - sigma_next) x0 + sigma_next noise``, is our LCM step; both draw
    the noise on the CPU in float32 from the generator, so the values agree for a seed."""
    ms = FlowSampling(shift=3.0)
    toy = GaussianToy(ms)
    scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0, stochastic_sampling=True)
    scheduler.set_timesteps(6)
    x = torch.randn(2, 5, generator=torch.Generator().manual_seed(0))
    generator, theirs, sample = torch.Generator().manual_seed(9), [], x
    for i, t in enumerate(scheduler.timesteps):
        sample = scheduler.step(_velocity(toy, sample, scheduler.sigmas[i]), t, sample, generator=generator).prev_sample
        theirs.append(sample)

    def denoiser(state: Tensor, sigma: Tensor) -> Tensor:
        return ms.denoised(state, sigma, _velocity(toy, state, sigma))

    ours: list[Tensor] = []
    generator = torch.Generator().manual_seed(9)
    get_sampler("lcm").sample(denoiser, x, scheduler.sigmas, ms, generator=generator, callback=_record(ours))
    for mine, reference in zip(ours, theirs, strict=True):
        torch.testing.assert_close(mine, reference, rtol=0, atol=1e-6)
