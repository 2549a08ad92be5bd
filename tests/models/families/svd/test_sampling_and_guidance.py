"""SVD's sampling (continuous EDM, ``v`` prediction) against diffusers' ``EulerDiscreteScheduler`` as the release
configures it, and ``VideoLinearCFGGuidance``'s per-frame CFG in the guider."""

from __future__ import annotations

import math

import pytest
import torch
from diffusers import EulerDiscreteScheduler

from models.families.svd.adapter import SvdAdapter
from models.families.svd.unet_checkpoint import SvdUnetSpec
from models.guidance import Guider
from models.sampling.model_sampling import EdmSampling
from models.tiny.svd import TINY_SVD_UNET

SCHEDULER = {
    "prediction_type": "v_prediction",
    "timestep_type": "continuous",
    "use_karras_sigmas": True,
    "sigma_min": 0.002,
    "sigma_max": 700.0,
    "timestep_spacing": "leading",
}


def test_an_euler_step_matches_the_release_scheduler() -> None:
    sampling = EdmSampling()
    scheduler = EulerDiscreteScheduler(**SCHEDULER)
    scheduler.set_timesteps(4)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(1, 4, 2, 3, 3, generator=generator) * 5
    v = torch.randn(1, 4, 2, 3, 3, generator=generator)
    sigma, following = scheduler.sigmas[1], scheduler.sigmas[2]
    t = scheduler.timesteps[1]
    torch.testing.assert_close(sampling.timestep(sigma), t)
    torch.testing.assert_close(sampling.model_input(x, sigma), scheduler.scale_model_input(x, t))
    scheduler._step_index = 1
    denoised = sampling.denoised(x, sigma, v)
    ours = x + (x - denoised) / sigma * (following - sigma)
    torch.testing.assert_close(ours, scheduler.step(v, t, x).prev_sample)


def test_the_sigma_table_spans_the_release_range() -> None:
    sampling = EdmSampling()
    assert (sampling.sigma_min, sampling.sigma_max) == (0.002, 700.0)
    assert float(sampling.sigmas[0]) == pytest.approx(0.002) and float(sampling.sigmas[-1]) == pytest.approx(700.0)
    assert float(sampling.sigma(sampling.timestep(torch.tensor(3.0)))) == pytest.approx(3.0)
    assert sampling.percent_to_sigma(0.0) == math.inf and sampling.percent_to_sigma(1.0) == 0.0
    assert sampling.percent_to_sigma(0.5) == pytest.approx(math.sqrt(0.002 * 700.0))
    with pytest.raises(ValueError, match="sigma_min < sigma_max"):
        EdmSampling(sigma_min=1.0, sigma_max=0.5)


class _FakeModel:
    """A stand-in ``DiffusionModel`` for the guider: a sampling, an adapter and the per-frame CFG start."""

    def __init__(self, video_min_cfg: float | None) -> None:
        self.sampling = EdmSampling()
        self.adapter = SvdAdapter(SvdUnetSpec(TINY_SVD_UNET))
        self.compute_dtype = torch.float32
        self.video_min_cfg = video_min_cfg


class _ConditioningEcho(torch.nn.Module):
    """A network whose ``v`` is the conditioning's first value on every element (1 positive, 0 negative)."""

    def forward(self, sample, timestep, encoder_hidden_states, added_time_ids, return_dict):
        value = encoder_hidden_states[:, :1, :1, None, None]
        return (torch.zeros(sample.shape[0], sample.shape[1], 4, *sample.shape[3:]) + value,)


@pytest.mark.parametrize(("min_cfg", "expected"), [(1.0, (1.0, 2.0, 3.0)), (None, (3.0, 3.0, 3.0))])
def test_cfg_rises_over_the_frames(min_cfg: float | None, expected: tuple[float, ...]) -> None:
    image = torch.ones(1, 1, TINY_SVD_UNET["cross_attention_dim"])
    guider = Guider(_FakeModel(min_cfg), [[image, {}]], [[torch.zeros_like(image), {}]], cfg=3.0)  # type: ignore[arg-type]
    x = torch.zeros(1, 4, 3, 2, 2)
    sigma = torch.tensor(1.0)
    denoised = guider.denoise(_ConditioningEcho(), x, sigma)
    v = -denoised * (sigma**2 + 1).sqrt() / sigma  # x = 0: denoised = -v * sigma / sqrt(sigma^2 + 1)
    assert v[0, 0, :, 0, 0].tolist() == pytest.approx(expected)
