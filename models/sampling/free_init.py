"""FreeInit (Wu et al., 2023; diffusers' ``FreeInitMixin``): re-initialise the noise of a finished sampling run
from the low spatio-temporal frequencies of its result and the high frequencies of fresh noise, then sample again.

The restart state of an iteration is the result diffused back to the schedule's first sigma with the run's initial
noise, low-pass filtered in a 3-D FFT over (frames, height, width), plus fresh noise at that sigma, high-pass
filtered. Every model sampling noises linearly (``alpha(sigma) * latent + sigma * noise``), so that state is the
first sigma's noising of the low-passed result with the noise ``low(initial) + high(fresh)``: ``restart`` returns
that pair, for any family (variance-exploding eps / v models, rectified flow, zero-terminal-SNR schedules). Where the
first sigma holds no signal (a flow model's or a zero-terminal-SNR schedule's pure noise) the result carries nothing
over and only the noise's high frequencies are drawn afresh, as in diffusers for such schedulers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["FILTER_METHODS", "FreeInitSettings", "frequency_mix", "restart"]

FILTER_METHODS = ("butterworth", "gaussian", "ideal")
"""The low-pass filters: Butterworth of an order, Gaussian, or ideal (a sharp cut-off)."""

_DIMS = (-3, -2, -1)


@dataclass(frozen=True)
class FreeInitSettings:
    """FreeInit's options, named as diffusers' ``enable_free_init`` arguments.

    ``iterations`` sampling runs; ``fast_sampling`` (coarse-to-fine) gives run ``i`` of ``n`` only
    ``steps * (i + 1) / n`` steps. The low-pass filter's stop frequencies are normalised (0..1): a stop frequency of 0
    keeps nothing of the result.
    """

    iterations: int = 3
    method: str = "butterworth"
    order: int = 4
    spatial_stop_frequency: float = 0.25
    temporal_stop_frequency: float = 0.25
    fast_sampling: bool = False

    def __post_init__(self) -> None:
        if self.iterations < 1:
            raise ValueError(f"iterations {self.iterations} must be at least 1")
        if self.method not in FILTER_METHODS:
            raise ValueError(f"filter method {self.method!r} is not one of {', '.join(FILTER_METHODS)}")
        if self.order < 1:
            raise ValueError(f"filter order {self.order} must be at least 1")
        for name in ("spatial_stop_frequency", "temporal_stop_frequency"):
            value = getattr(self, name)
            if not (math.isfinite(value) and 0.0 <= value <= 1.0):
                raise ValueError(f"{name} {value} must lie in [0, 1]")

    def steps(self, iteration: int, steps: int) -> int:
        """The sampling steps of run ``iteration`` (from 0) when the full run has ``steps``."""
        if not self.fast_sampling:
            return steps
        return max(1, int(steps / self.iterations * (iteration + 1)))

    def low_pass(self, frames: int, height: int, width: int) -> Tensor:
        """The float32 low-pass filter ``[frames, height, width]`` in ``fft``'s frequency order (zero frequency
        first). Distances are measured as diffusers' ``_get_free_init_freq_filter`` measures them on the centred
        spectrum: ``(2 i / n - 1)`` per axis, the temporal one scaled by ``spatial / temporal`` stop frequency."""
        spatial, temporal = self.spatial_stop_frequency, self.temporal_stop_frequency
        if spatial == 0.0 or temporal == 0.0:
            return torch.zeros(frames, height, width)

        def axis(size: int) -> Tensor:
            return 2.0 * torch.arange(size, dtype=torch.float64) / size - 1.0

        t = (spatial / temporal * axis(frames)).view(-1, 1, 1)
        distance = t**2 + axis(height).view(1, -1, 1) ** 2 + axis(width).view(1, 1, -1) ** 2
        if self.method == "butterworth":
            centred = 1.0 / (1.0 + (distance / spatial**2) ** self.order)
        elif self.method == "gaussian":
            centred = torch.exp(-distance / (2.0 * spatial**2))
        else:
            centred = (distance <= spatial * 2.0).double()
        return torch.fft.ifftshift(centred, dim=_DIMS).to(torch.float32)


def frequency_mix(low: Tensor, high: Tensor, low_pass: Tensor) -> Tensor:
    """``low``'s frequencies through ``low_pass`` plus ``high``'s through ``1 - low_pass`` (3-D FFT over the last
    three dimensions; ``low_pass`` in ``fft`` order, e.g. ``FreeInitSettings.low_pass``)."""
    low_pass = low_pass.to(low.device)
    mixed = torch.fft.fftn(low, dim=_DIMS) * low_pass + torch.fft.fftn(high, dim=_DIMS) * (1.0 - low_pass)
    return torch.fft.ifftn(mixed, dim=_DIMS).real


def _low_passed(x: Tensor, low_pass: Tensor) -> Tensor:
    return torch.fft.ifftn(torch.fft.fftn(x, dim=_DIMS) * low_pass.to(x.device), dim=_DIMS).real


def restart(result: Tensor, initial_noise: Tensor, fresh_noise: Tensor, low_pass: Tensor) -> tuple[Tensor, Tensor]:
    """FreeInit's restart as ``(latent, noise)``: noised to the first sigma (``noise_scaling``), they give the
    ``result`` diffused back with ``initial_noise``, low-passed, plus ``fresh_noise`` high-passed. Tensors are
    ``[..., frames, height, width]`` in the network's latent space."""
    return _low_passed(result, low_pass), frequency_mix(initial_noise, fresh_noise, low_pass)
