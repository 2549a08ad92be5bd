"""FreeNoise's initial noise (Qiu et al., 2023; diffusers' ``enable_free_noise(noise_type="shuffle_context")``):
frames past the first context window repeat earlier windows' noise in a shuffled order, so that every window of the
motion modules' context windows starts from a similar noise."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from models.noise import Noise

__all__ = ["ShuffledContextNoise", "shuffle_context"]


def shuffle_context(noise: torch.Tensor, length: int, stride: int, generator: torch.Generator) -> torch.Tensor:
    """``noise`` ``[B, C, F, ...]`` with frames ``[s, s + stride)`` for ``s = length, length + stride, ...`` copied
    from frames ``[s - length, s - length + stride)`` in an order drawn from ``generator`` (a permutation per window,
    drawn whole even where the last window is cut short), as diffusers' ``_prepare_latents_free_noise``."""
    shuffled = noise.clone()
    frames = noise.shape[2]
    for start in range(length, frames, stride):
        source = torch.arange(start - length, min(frames, start - length + stride))
        order = source[torch.randperm(len(source), generator=generator)]
        end = min(frames, start + len(source))
        shuffled[:, :, start:end] = shuffled[:, :, order[: end - start]]
    return shuffled


@dataclass(frozen=True, eq=False)
class ShuffledContextNoise(Noise):
    """Gaussian noise from ``seed`` with FreeNoise's shuffled context windows of ``context_length`` frames every
    ``context_stride`` frames; the generator continues past the permutations."""

    context_length: int = 16
    context_stride: int = 4

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 1 <= self.context_stride <= self.context_length:
            raise ValueError(
                f"context stride {self.context_stride} must lie in 1..context length {self.context_length}"
            )

    def draw(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Generator]:
        noise, generator = super().draw(like)
        if like.dim() < 3:
            raise ValueError(f"FreeNoise shuffles frames: the latent {tuple(like.shape)} has no frame dimension")
        return shuffle_context(noise, self.context_length, self.context_stride, generator), generator
