"""LTX-Video's resolution-dependent shift and ``LTXVScheduler``'s sigmas against diffusers' flow-matching scheduler
with the LTX-Video release config."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler

from models.families.ltx.schedule import ltxv_mu, ltxv_shift, ltxv_sigmas
from models.sampling.model_sampling import FlowSampling


def diffusers_sigmas(steps: int, tokens: int, terminal: float | None) -> torch.Tensor:
    scheduler = FlowMatchEulerDiscreteScheduler(
        use_dynamic_shifting=True,
        base_shift=0.95,
        max_shift=2.05,
        base_image_seq_len=1024,
        max_image_seq_len=4096,
        shift_terminal=terminal,
    )
    scheduler.set_timesteps(sigmas=np.linspace(1.0, 1 / steps, steps), mu=ltxv_mu(tokens))
    return scheduler.sigmas


def test_mu_is_linear_between_the_anchors() -> None:
    assert ltxv_mu(1024) == pytest.approx(0.95)
    assert ltxv_mu(4096) == pytest.approx(2.05)
    assert ltxv_mu(2560) == pytest.approx(1.5)
    assert ltxv_shift(4096) == pytest.approx(math.exp(2.05))


@pytest.mark.parametrize(("steps", "tokens"), [(4, 18), (20, 4096), (30, 6144), (2, 1024)])
def test_sigmas_match_the_ltx_scheduler(steps: int, tokens: int) -> None:
    ours = ltxv_sigmas(steps, tokens=tokens)
    assert ours.dtype == torch.float32 and ours.shape == (steps + 1,)
    assert (ours - diffusers_sigmas(steps, tokens, 0.1)).abs().max() < 1e-6
    assert ours[-2] == pytest.approx(0.1) and ours[-1] == 0.0


def test_unstretched_sigmas_are_the_flow_shift_of_the_token_count() -> None:
    ours = ltxv_sigmas(10, stretch=False, tokens=3000)
    assert (ours - diffusers_sigmas(10, 3000, None)).abs().max() < 1e-6
    linear = torch.linspace(1.0, 0.0, 11, dtype=torch.float64)
    shifted = FlowSampling(shift=ltxv_shift(3000))._shifted(linear)
    assert (ours.double() - shifted).abs().max() < 1e-6


def test_one_step_goes_from_one_to_zero() -> None:
    sigmas = ltxv_sigmas(1)
    assert sigmas[0] == pytest.approx(1.0) and sigmas[1] == 0.0


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="steps must be at least 1"):
        ltxv_sigmas(0)
    with pytest.raises(ValueError, match="terminal must be in"):
        ltxv_sigmas(4, terminal=1.0)
