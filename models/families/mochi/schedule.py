"""Mochi's sampling schedule as ``MochiPipeline`` runs it: Genmo's linear-quadratic schedule, given to diffusers'
``FlowMatchEulerDiscreteScheduler(invert_sigmas=True)`` (the genmo/mochi-1-preview scheduler config).

Genmo's ``tau`` (0 at pure noise, 1 at the clean video) rises linearly by ``threshold_noise / linear_steps`` per step
over the first ``linear_steps`` steps, then along a parabola that continues that slope and reaches 1 at ``steps``.
The pipeline's scheduler works in ``tau`` (its inverted sigmas); the noise level our flow samplers walk is
``sigma = 1 - tau``, ending at 0.
"""

from __future__ import annotations

import torch

__all__ = ["DEFAULT_THRESHOLD_NOISE", "mochi_sigmas"]

DEFAULT_THRESHOLD_NOISE = 0.025
"""``MochiPipeline``'s ``threshold_noise``: the noise removed over the linear first half."""


def mochi_sigmas(
    steps: int, threshold_noise: float = DEFAULT_THRESHOLD_NOISE, linear_steps: int | None = None
) -> torch.Tensor:
    """The noise levels of ``MochiPipeline`` for ``steps`` steps: a float32 1-D tensor of ``steps + 1`` values from
    1.0 down to 0.0, equal to ``1 - scheduler.sigmas`` of the pipeline's inverted scheduler (its first ``steps``
    values rounded to float32 exactly as the scheduler rounds them).

    Args:
        steps: the number of sampling steps (at least 1).
        threshold_noise: the noise removed over the linear part.
        linear_steps: the steps of the linear part (``steps // 2`` by default, as the pipeline's); the others are
            quadratic. One step with the default is plain ``[1, 0]``.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"mochi_sigmas: steps must be a positive integer, got {steps!r}")
    if linear_steps is None:
        if steps == 1:  # the pipeline's formula divides by zero here; one step goes straight from noise to 0
            return torch.tensor([1.0, 0.0], dtype=torch.float32)
        linear_steps = steps // 2
    if not 0 < linear_steps <= steps:
        raise ValueError(f"mochi_sigmas: linear_steps must lie in 1..{steps}, got {linear_steps} (steps {steps})")
    quadratic_steps = steps - linear_steps
    tau = [i * threshold_noise / linear_steps for i in range(linear_steps)]
    if quadratic_steps:
        # tau(i) = a i^2 + b i + c on [linear_steps, steps]: continuous and with the linear part's slope at
        # linear_steps, and tau(steps) = 1.
        excess = linear_steps - threshold_noise * steps
        a = excess / (linear_steps * quadratic_steps**2)
        b = threshold_noise / linear_steps - 2 * excess / quadratic_steps**2
        c = a * linear_steps**2
        tau += [a * i**2 + b * i + c for i in range(linear_steps, steps)]
    sigmas = torch.tensor([1.0 - value for value in tau], dtype=torch.float64).to(torch.float32)
    return torch.cat([sigmas, torch.zeros(1, dtype=torch.float32)])
