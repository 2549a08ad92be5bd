"""FreeInit's frequency filter and restart against diffusers' ``FreeInitMixin`` and ``DDIMScheduler.add_noise``."""

from __future__ import annotations

import pytest
import torch
from diffusers import DDIMScheduler
from diffusers.pipelines.free_init_utils import FreeInitMixin

from models.sampling.free_init import FILTER_METHODS, FreeInitSettings, frequency_mix, restart
from models.sampling.model_sampling import EpsSampling, FlowSampling

SHAPE = (1, 4, 5, 6, 8)  # odd frames: the centred spectrum's zero frequency is off the filter's centre


def _diffusers_filter(settings: FreeInitSettings) -> torch.Tensor:
    return FreeInitMixin()._get_free_init_freq_filter(
        (1, *SHAPE[1:]),
        "cpu",
        settings.method,
        settings.order,
        settings.spatial_stop_frequency,
        settings.temporal_stop_frequency,
    )


@pytest.mark.parametrize("method", FILTER_METHODS)
@pytest.mark.parametrize(("spatial", "temporal"), [(0.25, 0.25), (0.4, 0.1), (0.0, 0.3)])
def test_mix_matches_diffusers(method: str, spatial: float, temporal: float) -> None:
    settings = FreeInitSettings(
        method=method, order=2, spatial_stop_frequency=spatial, temporal_stop_frequency=temporal
    )
    generator = torch.Generator().manual_seed(0)
    low, high = torch.randn(SHAPE, generator=generator), torch.randn(SHAPE, generator=generator)
    reference = FreeInitMixin()._apply_freq_filter(low, high, _diffusers_filter(settings))
    ours = frequency_mix(low, high, settings.low_pass(*SHAPE[2:]))
    torch.testing.assert_close(ours, reference, rtol=0, atol=1e-6)
    if spatial == 0.0:
        torch.testing.assert_close(ours, high, rtol=0, atol=1e-6)  # nothing of ``low`` is kept
    else:
        assert (ours - high).abs().max() > 0.01


def test_restart_is_the_diffused_result_mixed_with_fresh_noise() -> None:
    """Noised to the first sigma, the restart pair is diffusers' frequency mix of the result diffused to timestep 999
    (``add_noise``, the VP state) and fresh noise at that sigma (std ``sqrt(1 - abar)`` in the VP state: diffusers
    mixes unit noise, the start of its DDIM convention ``x_T = noise``)."""
    sampling = EpsSampling()
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
    settings = FreeInitSettings()
    generator = torch.Generator().manual_seed(1)
    result, initial, fresh = (torch.randn(SHAPE, generator=generator) for _ in range(3))
    sigma = sampling.sigmas[-1]
    latent, noise = restart(result, initial, fresh, settings.low_pass(*SHAPE[2:]))
    state = sampling.noise_scaling(sigma, noise, latent)  # variance-exploding
    vp_scale = float(scheduler.alphas_cumprod[-1].sqrt())
    diffused = scheduler.add_noise(result, initial, torch.tensor([999]))
    fresh_vp = (1.0 - scheduler.alphas_cumprod[-1]).sqrt() * fresh
    reference = FreeInitMixin()._apply_freq_filter(diffused, fresh_vp, _diffusers_filter(settings))
    torch.testing.assert_close(state * vp_scale, reference, rtol=0, atol=1e-5)


def test_flow_restart_from_pure_noise_keeps_no_result() -> None:
    """At a flow model's sigma 1 the diffused-back result is the initial noise: the restart carries none of it."""
    settings = FreeInitSettings(method="gaussian")
    generator = torch.Generator().manual_seed(2)
    result, initial, fresh = (torch.randn(SHAPE, generator=generator) for _ in range(3))
    latent, noise = restart(result, initial, fresh, settings.low_pass(*SHAPE[2:]))
    state = FlowSampling().noise_scaling(torch.tensor(1.0), noise, latent)
    torch.testing.assert_close(state, frequency_mix(initial, fresh, settings.low_pass(*SHAPE[2:])))
    assert (latent - result).abs().max() > 0.1  # the low pass does filter the result


def test_fast_sampling_steps_grow_to_the_full_run() -> None:
    assert [FreeInitSettings(iterations=3).steps(i, 10) for i in range(3)] == [10, 10, 10]
    assert [FreeInitSettings(iterations=3, fast_sampling=True).steps(i, 10) for i in range(3)] == [3, 6, 10]
    assert FreeInitSettings(iterations=4, fast_sampling=True).steps(0, 2) == 1


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"iterations": 0}, "iterations 0"),
        ({"method": "box"}, "filter method 'box'"),
        ({"order": 0}, "filter order 0"),
        ({"spatial_stop_frequency": 1.5}, "spatial_stop_frequency 1.5"),
        ({"temporal_stop_frequency": float("nan")}, "temporal_stop_frequency nan"),
    ],
)
def test_bad_settings_are_refused(options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FreeInitSettings(**options)  # type: ignore[arg-type]
