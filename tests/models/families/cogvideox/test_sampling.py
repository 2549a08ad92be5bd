"""``ZeroSnrSampling`` against ``CogVideoXDDIMScheduler``: the same schedule, and Euler (and DDIM) over the "simple"
sigmas take the scheduler's steps exactly, the zero-SNR first step included, with no inf or nan."""

from __future__ import annotations

import math

import pytest
import torch
from diffusers import CogVideoXDDIMScheduler

from models.families.cogvideox.sampling import sampling_from_scheduler_config
from models.sampling import get_sampler, make_sigmas
from models.sampling.model_sampling import ZeroSnrSampling

RELEASE = {  # THUDM/CogVideoX-2b's scheduler_config.json
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "clip_sample": False,
    "prediction_type": "v_prediction",
    "rescale_betas_zero_snr": True,
    "set_alpha_to_one": True,
    "timestep_spacing": "trailing",
    "snr_shift_scale": 3.0,
}


def _velocity(x: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
    """A smooth stand-in for a v-predicting network."""
    return torch.tanh(0.7 * x) + 0.002 * timestep.reshape(-1, 1, 1) * x.flip(-1)


@pytest.mark.parametrize("shift", [3.0, 1.0])
def test_schedule_matches_the_scheduler(shift: float) -> None:
    scheduler = CogVideoXDDIMScheduler(**{**RELEASE, "snr_shift_scale": shift})
    sampling = ZeroSnrSampling(snr_shift_scale=shift)
    assert torch.equal(sampling.alphas_cumprod, scheduler.alphas_cumprod)
    assert sampling.sigma_max == 1.0  # zero terminal SNR: pure noise at a finite sigma
    assert bool((sampling.sigmas.diff() > 0).all())


@pytest.mark.parametrize(("sampler", "steps"), [("euler", 4), ("euler", 10), ("ddim", 5)])
def test_euler_takes_the_ddim_steps(sampler: str, steps: int) -> None:
    scheduler = CogVideoXDDIMScheduler(**RELEASE)
    scheduler.set_timesteps(steps)
    sampling = sampling_from_scheduler_config({"_class_name": "CogVideoXDDIMScheduler", **RELEASE})
    noise = torch.randn(2, 3, 8, generator=torch.Generator().manual_seed(0))

    reference = noise.clone()
    for t in scheduler.timesteps:
        v = _velocity(reference, t.float().expand(2))
        reference = scheduler.step(v, t, reference, return_dict=False)[0]

    sigmas = make_sigmas("simple", sampling, steps)
    timesteps = sampling.timestep(sigmas[:-1])
    assert timesteps.tolist() == scheduler.timesteps.float().tolist()

    def denoiser(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        per_sample = sigma.view(-1, 1, 1)
        output = _velocity(sampling.model_input(x, per_sample), sampling.timestep(sigma))
        denoised = sampling.denoised(x, per_sample, output)
        assert bool(torch.isfinite(denoised).all())
        return denoised

    x = sampling.noise_scaling(sigmas[0], noise, torch.zeros_like(noise))
    ours = get_sampler(sampler).sample(denoiser, x, sigmas, sampling)
    ours = sampling.inverse_noise_scaling(sigmas[-1], ours)
    assert (ours - reference).abs().max().item() < 2e-6


def test_first_step_at_zero_snr_is_exact() -> None:
    """At sigma 1 the state is the noise itself and x0 is -v, as the scheduler's first step computes it."""
    sampling = ZeroSnrSampling()
    x = torch.randn(4, 5)
    v = torch.randn(4, 5)
    sigma = torch.tensor(1.0)
    assert torch.equal(sampling.model_input(x, sigma), x)
    assert torch.equal(sampling.denoised(x, sigma, v), -v)
    assert sampling.timestep(sigma).item() == 999.0
    assert sampling.percent_to_sigma(0.0) == 1.0 and sampling.percent_to_sigma(1.0) == 0.0
    assert 0.0 < sampling.percent_to_sigma(0.5) < 1.0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"prediction": "epsilon"}, "cannot denoise at zero terminal SNR"),
        ({"snr_shift_scale": 0.0}, "snr_shift_scale must be a positive number"),
        ({"snr_shift_scale": math.inf}, "snr_shift_scale must be a positive number"),
        ({"schedule": "cosine"}, "unknown schedule"),
    ],
)
def test_bad_settings_are_refused(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ZeroSnrSampling(**options)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"_class_name": "DDIMScheduler"}, "not a CogVideoX scheduler"),
        ({"_class_name": "CogVideoXDDIMScheduler", "trained_betas": [0.1, 0.2]}, "trained_betas"),
    ],
)
def test_scheduler_configs_reelgraph_cannot_sample(config: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        sampling_from_scheduler_config(config)
