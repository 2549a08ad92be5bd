"""``mochi_sigmas`` is the schedule ``MochiPipeline`` gives its inverted flow-matching scheduler, to the bit."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler
from diffusers.pipelines.mochi.pipeline_mochi import linear_quadratic_schedule, retrieve_timesteps

from models.families.mochi.schedule import DEFAULT_THRESHOLD_NOISE, mochi_sigmas


@pytest.mark.parametrize("steps", [2, 3, 4, 7, 28, 64])
def test_equal_to_the_pipeline_scheduler(steps: int) -> None:
    scheduler = FlowMatchEulerDiscreteScheduler(invert_sigmas=True)  # genmo/mochi-1-preview's scheduler config
    sigmas = np.array(linear_quadratic_schedule(steps, DEFAULT_THRESHOLD_NOISE))
    timesteps, _ = retrieve_timesteps(scheduler, steps, "cpu", None, sigmas)
    ours = mochi_sigmas(steps)
    assert ours.dtype == torch.float32 and ours.shape == (steps + 1,)
    assert ours[0] == 1.0 and ours[-1] == 0.0
    assert torch.equal(1.0 - ours, scheduler.sigmas)  # the scheduler walks tau = 1 - sigma
    assert torch.equal((1.0 - ours[:-1]) * 1000.0, timesteps)
    assert bool((ours[1:] < ours[:-1]).all())


@pytest.mark.parametrize(("steps", "threshold", "linear_steps"), [(10, 0.1, 3), (9, 0.025, 8), (30, 0.05, None)])
def test_options_follow_genmo_schedule(steps: int, threshold: float, linear_steps: int | None) -> None:
    expected = torch.tensor(linear_quadratic_schedule(steps, threshold, linear_steps), dtype=torch.float64)
    assert torch.equal(mochi_sigmas(steps, threshold, linear_steps)[:-1], expected.float())


def test_one_step_goes_from_noise_to_zero() -> None:
    assert mochi_sigmas(1).tolist() == [1.0, 0.0]


def test_all_linear_steps_leave_the_rest_to_the_last_step() -> None:
    expected = torch.tensor([1.0, 0.9, 0.8, 0.7, 0.0], dtype=torch.float64).float()
    assert torch.equal(mochi_sigmas(4, threshold_noise=0.4, linear_steps=4), expected)


@pytest.mark.parametrize(("steps", "linear_steps"), [(0, None), (4, 0), (4, 5), (True, None)])
def test_bad_arguments_are_refused(steps: int, linear_steps: int | None) -> None:
    with pytest.raises(ValueError, match="mochi_sigmas"):
        mochi_sigmas(steps, linear_steps=linear_steps)
