"""Stochastic samplers: distribution tests on the Gaussian toy, LCM's step by definition, seeds and generators."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from models.sampling import SAMPLER_NAMES, EpsSampling, FlowSampling, ModelSampling, get_sampler, make_sigmas
from tests.models.sampling.gaussian_toy import GaussianToy

SPACES = [(EpsSampling(), "karras"), (FlowSampling(shift=3.0), "simple")]
STOCHASTIC = ("euler_ancestral", "dpmpp_2m_sde", "dpmpp_3m_sde", "lcm")
DETERMINISTIC = tuple(n for n in SAMPLER_NAMES if n not in STOCHASTIC)
SAMPLES = 40_000


def _final_samples(toy: GaussianToy, name: str, scheduler: str, steps: int, seed: int = 0) -> Tensor:
    generator = torch.Generator().manual_seed(seed)
    sigmas = make_sigmas(scheduler, toy.model_sampling, steps)
    x = toy.marginal(float(sigmas[0]), SAMPLES, generator)
    return get_sampler(name).sample(toy.denoiser, x, sigmas, toy.model_sampling, generator=generator)


@pytest.mark.parametrize(("space", "scheduler"), SPACES, ids=["eps", "flow"])
@pytest.mark.parametrize("name", ["euler_ancestral", "dpmpp_2m_sde", "dpmpp_3m_sde"])
def test_sde_samplers_reach_the_data_distribution(name: str, space: ModelSampling, scheduler: str) -> None:
    """From the marginal at sigma_max to 0: the samples' mean and std approach mu and s as the steps grow."""
    toy = GaussianToy(space)
    coarse, fine = (_final_samples(toy, name, scheduler, steps) for steps in (4, 256))
    mean_tolerance = 5 * toy.s / math.sqrt(SAMPLES)  # the mean is unbiased here (the toy's steps are linear)
    for out in (coarse, fine):
        assert abs(float(out.mean()) - toy.mu) < mean_tolerance
    coarse_error, fine_error = (abs(float(out.std()) - toy.s) for out in (coarse, fine))
    assert fine_error < 0.02, f"std {float(fine.std())} after 256 steps, data std {toy.s}"
    assert fine_error < coarse_error / 5, f"std errors {coarse_error} (4 steps), {fine_error} (256 steps)"


@pytest.mark.parametrize("space", [s for s, _ in SPACES], ids=["eps", "flow"])
def test_lcm_step_is_noise_scaling_of_the_denoised_value(space: ModelSampling) -> None:
    toy = GaussianToy(space)
    sigmas = torch.tensor([0.8, 0.3, 0.0], dtype=torch.float32)
    x = toy.marginal(0.8, 16, torch.Generator().manual_seed(5))
    seen: list[Tensor] = []

    def record(step: int, total: int, state: Tensor, denoised: Tensor) -> None:
        seen.append(state)

    out = get_sampler("lcm").sample(
        toy.denoiser, x, sigmas, space, generator=torch.Generator().manual_seed(7), callback=record
    )
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(7), dtype=torch.float32).double()
    first = space.noise_scaling(sigmas[1], noise, toy.denoiser(x, sigmas[:1].expand(16)))
    torch.testing.assert_close(seen[0], first, rtol=0, atol=1e-12)
    torch.testing.assert_close(out, toy.denoiser(first, sigmas[1:2].expand(16)), rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", STOCHASTIC)
def test_same_seed_same_samples_other_seed_other_samples(name: str) -> None:
    toy = GaussianToy(FlowSampling(shift=3.0))
    sigmas = make_sigmas("simple", toy.model_sampling, 6)

    def run(seed: int) -> Tensor:
        x = toy.marginal(1.0, 32, torch.Generator().manual_seed(0), dtype=torch.float32)
        generator = torch.Generator().manual_seed(seed)
        return get_sampler(name).sample(toy.denoiser, x, sigmas, toy.model_sampling, generator=generator)

    assert torch.equal(run(1), run(1))
    assert not torch.equal(run(1), run(2))


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_deterministic_samplers_do_not_touch_the_generators(name: str) -> None:
    toy = GaussianToy(EpsSampling())
    sigmas = make_sigmas("karras", toy.model_sampling, 8)
    x = toy.marginal(float(sigmas[0]), 32, torch.Generator().manual_seed(0))
    generator = torch.Generator().manual_seed(11)
    state, global_state = generator.get_state(), torch.get_rng_state()
    with_generator = get_sampler(name).sample(toy.denoiser, x, sigmas, toy.model_sampling, generator=generator)
    assert torch.equal(generator.get_state(), state)
    assert torch.equal(torch.get_rng_state(), global_state)
    assert torch.equal(get_sampler(name).sample(toy.denoiser, x, sigmas, toy.model_sampling), with_generator)


def test_zero_eta_draws_no_noise() -> None:
    toy = GaussianToy(EpsSampling())
    sigmas = make_sigmas("karras", toy.model_sampling, 8)
    x = toy.marginal(float(sigmas[0]), 32, torch.Generator().manual_seed(0))
    generator = torch.Generator().manual_seed(11)
    state = generator.get_state()
    for name in ("euler_ancestral", "dpmpp_2m_sde", "dpmpp_3m_sde"):
        get_sampler(name, eta=0.0).sample(toy.denoiser, x, sigmas, toy.model_sampling, generator=generator)
    assert torch.equal(generator.get_state(), state)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", STOCHASTIC)
def test_a_seed_gives_the_same_samples_on_cpu_and_cuda(name: str) -> None:
    """Noise is drawn on the CPU in float32, so only the arithmetic differs between devices."""
    toy = GaussianToy(FlowSampling(shift=3.0))
    sigmas = make_sigmas("simple", toy.model_sampling, 8)
    x = toy.marginal(1.0, 256, torch.Generator().manual_seed(0), dtype=torch.float32)
    outs = [
        get_sampler(name).sample(
            toy.denoiser,
            x.to(device),
            sigmas.to(device),
            toy.model_sampling,
            generator=torch.Generator().manual_seed(4),
        )
        for device in ("cpu", "cuda")
    ]
    torch.testing.assert_close(outs[1].cpu(), outs[0], rtol=1e-5, atol=1e-5)
