"""The sampler API: names and options, input checks, callbacks, evaluation counts, every sampler with every schedule."""

from __future__ import annotations

import copy
import dataclasses
import pickle

import pytest
import torch
from torch import Tensor

from models.sampling import (
    SAMPLER_NAMES,
    SCHEDULER_NAMES,
    EpsSampling,
    FlowSampling,
    ModelSampling,
    Sampler,
    get_sampler,
    make_sigmas,
)
from tests.models.sampling.gaussian_toy import GaussianToy

SPACES = [EpsSampling(), FlowSampling(shift=3.0)]


class CountingDenoiser:
    """The toy's denoiser, recording the sigma argument of every call."""

    def __init__(self, toy: GaussianToy) -> None:
        self.toy = toy
        self.sigmas: list[Tensor] = []

    def __call__(self, x: Tensor, sigma: Tensor) -> Tensor:
        self.sigmas.append(sigma)
        return self.toy.denoiser(x, sigma)


def test_names_are_comfyui_s() -> None:
    assert SAMPLER_NAMES == (
        "euler", "euler_ancestral", "heun", "dpm_2", "dpmpp_2m", "dpmpp_2m_sde", "dpmpp_3m_sde", "lcm", "ddim",
        "uni_pc", "uni_pc_bh2",
    )  # fmt: skip


def test_unknown_sampler_lists_the_valid_names() -> None:
    with pytest.raises(ValueError, match=r"unknown sampler 'dpmpp_9m'.*euler, euler_ancestral.*uni_pc_bh2"):
        get_sampler("dpmpp_9m")


def test_options_have_defaults_are_checked_and_read_only() -> None:
    sampler = get_sampler("dpmpp_2m_sde", eta=0.5)
    assert dict(sampler.options) == {"eta": 0.5, "s_noise": 1.0, "solver_type": "midpoint"}
    assert dict(get_sampler("euler").options) == {}
    with pytest.raises(TypeError):
        sampler.options["eta"] = 1.0  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        sampler.name = "euler"  # type: ignore[misc]
    assert sampler == Sampler("dpmpp_2m_sde", {"eta": 0.5}) != get_sampler("dpmpp_2m_sde")
    assert hash(sampler) == hash(get_sampler("dpmpp_2m_sde", s_noise=1, eta=0.5))
    assert pickle.loads(pickle.dumps(sampler)) == copy.deepcopy(sampler) == sampler
    with pytest.raises(ValueError, match=r"'euler': unknown option.*eta; valid options: none"):
        get_sampler("euler", eta=1.0)
    with pytest.raises(ValueError, match=r"unknown option.*churn; valid options: eta, s_noise"):
        get_sampler("euler_ancestral", churn=1.0)
    with pytest.raises(ValueError, match="eta must be a finite number >= 0"):
        get_sampler("euler_ancestral", eta=-1.0)
    with pytest.raises(ValueError, match="s_noise must be a finite number >= 0"):
        get_sampler("dpmpp_3m_sde", s_noise=float("nan"))
    with pytest.raises(ValueError, match="solver_type 'rk4'; valid: midpoint, heun"):
        get_sampler("dpmpp_2m_sde", solver_type="rk4")


@pytest.mark.parametrize(
    ("sigmas", "message"),
    [
        (torch.tensor([[1.0, 0.0]]), "1-D tensor"),
        (torch.tensor([0.5, 0.8, 0.0]), "strictly descending"),
        (torch.tensor([0.8, 0.8, 0.0]), "strictly descending"),
        (torch.tensor([0.8, float("nan"), 0.0]), "finite"),
        (torch.tensor([0.8, 0.2, -0.1]), "negative"),
        (torch.tensor([2, 1, 0]), "floating-point"),
        (torch.tensor([1.5, 0.5, 0.0]), "outside the state space of FlowSampling"),
    ],
)
def test_bad_sigmas_are_rejected(sigmas: Tensor, message: str) -> None:
    toy = GaussianToy(FlowSampling())
    with pytest.raises(ValueError, match=message):
        get_sampler("euler").sample(toy.denoiser, torch.zeros(2, 3), sigmas, toy.model_sampling)


def test_bad_states_are_rejected() -> None:
    toy = GaussianToy(FlowSampling())
    sigmas = torch.tensor([1.0, 0.0])
    with pytest.raises(ValueError, match="floating-point tensor with a batch dimension"):
        get_sampler("euler").sample(toy.denoiser, torch.zeros(2, dtype=torch.long), sigmas, toy.model_sampling)
    with pytest.raises(ValueError, match="floating-point tensor with a batch dimension"):
        get_sampler("euler").sample(toy.denoiser, torch.tensor(0.5), sigmas, toy.model_sampling)


@pytest.mark.parametrize("sigmas", [torch.zeros(0), torch.tensor([0.7])])
def test_fewer_than_two_sigmas_return_the_state(sigmas: Tensor) -> None:
    toy = GaussianToy(FlowSampling())
    x = torch.randn(3, 2)
    counting = CountingDenoiser(toy)
    assert get_sampler("uni_pc").sample(counting, x, sigmas, toy.model_sampling) is x
    assert counting.sigmas == []


@pytest.mark.parametrize("name", SAMPLER_NAMES)
def test_callback_once_per_step_and_evaluation_count(name: str) -> None:
    toy = GaussianToy(EpsSampling())
    sigmas = make_sigmas("karras", toy.model_sampling, 7)
    x = toy.marginal(float(sigmas[0]), 5, torch.Generator().manual_seed(0), dtype=torch.float32)
    counting = CountingDenoiser(toy)
    calls: list[tuple[int, int, tuple[int, ...], tuple[int, ...]]] = []

    def record(step: int, total: int, state: Tensor, denoised: Tensor) -> None:
        calls.append((step, total, tuple(state.shape), tuple(denoised.shape)))

    get_sampler(name).sample(counting, x, sigmas, toy.model_sampling, generator=torch.Generator(), callback=record)
    assert calls == [(i, 7, (5, 1), (5, 1)) for i in range(7)]
    two_evaluation_steps = 6 if name in ("heun", "dpm_2") else 0  # the step to 0 is an Euler step
    assert len(counting.sigmas) == 7 + two_evaluation_steps
    assert all(s.shape == (5,) and s.dtype == torch.float32 for s in counting.sigmas)
    assert float(counting.sigmas[0][0]) == float(sigmas[0])


def test_a_raising_callback_aborts() -> None:
    toy = GaussianToy(EpsSampling())
    counting = CountingDenoiser(toy)

    def stop(step: int, total: int, state: Tensor, denoised: Tensor) -> None:
        if step == 2:
            raise InterruptedError("stop")

    sigmas = make_sigmas("karras", toy.model_sampling, 10)
    with pytest.raises(InterruptedError):
        get_sampler("dpmpp_2m").sample(counting, torch.zeros(2, 1), sigmas, toy.model_sampling, callback=stop)
    assert len(counting.sigmas) == 3


def _run_toy(name: str, scheduler: str, space: ModelSampling, steps: int) -> Tensor:
    """A float32 run from the toy's marginal at the schedule's top down to 0."""
    toy = GaussianToy(space)
    sigmas = make_sigmas(scheduler, space, steps)
    generator = torch.Generator().manual_seed(0)
    x = toy.marginal(float(sigmas[0]), 4000, generator, dtype=torch.float32)
    out = get_sampler(name).sample(toy.denoiser, x, sigmas, space, generator=generator)
    assert out.dtype == torch.float32 and bool(torch.isfinite(out).all())
    return out


@pytest.mark.parametrize("space", SPACES, ids=["eps", "flow"])
@pytest.mark.parametrize("scheduler", SCHEDULER_NAMES)
@pytest.mark.parametrize("name", SAMPLER_NAMES)
def test_every_sampler_runs_with_every_schedule(name: str, scheduler: str, space: ModelSampling) -> None:
    """Finite and at the data's scale. Not closer: some schedules end with one step far longer (in log-SNR) than the
    one before, where the multistep methods' extrapolation overshoots on this sharp toy (as they do in k-diffusion),
    and linear_quadratic leaves a variance-exploding model one step from 5.07 to 0."""
    out = _run_toy(name, scheduler, space, 16)
    assert abs(float(out.mean()) - 0.5) < 0.1
    assert 0.01 < float(out.std()) < 3.0


@pytest.mark.parametrize(("space", "scheduler"), [(SPACES[0], "karras"), (SPACES[1], "simple")], ids=["eps", "flow"])
@pytest.mark.parametrize("name", SAMPLER_NAMES)
def test_every_sampler_lands_on_the_data(name: str, scheduler: str, space: ModelSampling) -> None:
    """With each family's usual schedule, 16 steps land near N(0.5, 0.3^2) (LCM's re-noising of a posterior mean
    loses variance by design, hence the lower bound)."""
    out = _run_toy(name, scheduler, space, 16)
    assert abs(float(out.mean()) - 0.5) < 0.02
    assert 0.15 < float(out.std()) < 0.36
