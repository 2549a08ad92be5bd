"""The ``NOISE`` socket: the initial noise of a sampling run, and the seeded generator its stochastic steps draw from.

Noise is drawn on the CPU in float32 from ``torch.Generator().manual_seed(seed)``, as diffusers' pipelines do with a
CPU generator, so a seed gives the same video on any device. The sampler's own noise continues the same generator.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

__all__ = ["DrawnNoise", "Noise"]

SEED_MAX = 0xFFFF_FFFF_FFFF_FFFF


@dataclass(frozen=True)
class Noise:
    """``RandomNoise(seed)`` (``enabled``) or ``DisableNoise`` (zeros; ``seed`` still seeds stochastic samplers)."""

    seed: int = 0
    enabled: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed <= SEED_MAX:
            raise ValueError(f"noise seed must be an integer from 0 to {SEED_MAX}, got {self.seed!r}")

    def draw(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Generator]:
        """The initial noise shaped like ``like`` (float32, CPU) and the generator, advanced past it."""
        generator = torch.Generator().manual_seed(self.seed)
        if not self.enabled:
            return torch.zeros(like.shape, dtype=torch.float32), generator
        return torch.randn(like.shape, generator=generator, dtype=torch.float32), generator


@dataclass(frozen=True, eq=False)
class DrawnNoise(Noise):
    """Noise drawn before the run (FreeInit's re-initialised noise) and the generator the run continues."""

    drawn: torch.Tensor = field(kw_only=True)
    generator: torch.Generator = field(kw_only=True)

    def draw(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Generator]:
        if self.drawn.shape != like.shape:
            raise ValueError(f"the noise has shape {tuple(self.drawn.shape)}; the latent {tuple(like.shape)}")
        return self.drawn, self.generator
