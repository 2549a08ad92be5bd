"""What generic model code asks of a model family: its latent format, how to call its network on one conditioning
entry, how much memory a run takes, and its default noise parametrisation.

A family adapter is the only code that knows a family's network signature and conditioning extras; samplers,
guiders and nodes call these methods and nothing family-specific.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from models.memory_types import WorkEstimate
from models.sampling.model_sampling import ModelSampling

__all__ = ["ConditioningEntry", "FamilyAdapter", "LatentFormat", "LatentShapeError", "batched"]

ConditioningEntry = tuple[torch.Tensor, Mapping[str, Any]]
"""One ``[tensor, extras]`` item of a ``CONDITIONING`` list (the extras are read, never changed in place)."""


class LatentShapeError(ValueError):
    """A latent or image does not fit the model: wrong channels, rank, or a size the family cannot take."""


@dataclass(frozen=True)
class LatentFormat:
    """A family's VAE latent space: channel count, per-channel statistics and compression ratios.

    ``LATENT`` values hold raw VAE latents (what ``VAEEncode`` gives and ``VAEDecode`` takes); the network works on
    ``(raw - mean) / std``.
    """

    name: str
    channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    spatial_ratio: int
    temporal_ratio: int

    def __post_init__(self) -> None:
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            raise ValueError(f"{self.name}: {self.channels} channels need as many means and stds")

    def process_in(self, latent: torch.Tensor) -> torch.Tensor:
        """Raw VAE latent ``[B, C, T, H, W]`` -> the network's normalised space."""
        mean, std = self._stats(latent)
        return (latent - mean) / std

    def process_out(self, latent: torch.Tensor) -> torch.Tensor:
        """The network's space -> raw VAE latent."""
        mean, std = self._stats(latent)
        return latent * std + mean

    def latent_frames(self, frames: int) -> int:
        """Latent frames for ``frames`` video frames (the first frame is coded alone)."""
        return (frames - 1) // self.temporal_ratio + 1

    def check(self, samples: torch.Tensor, what: str = "latent") -> None:
        """Raise ``LatentShapeError`` unless ``samples`` is a ``[B, C, T, H, W]`` latent of this format."""
        if samples.dim() != 5:
            raise LatentShapeError(
                f"{what} has shape {tuple(samples.shape)}; a {self.name} video latent is [batch, {self.channels}, "
                "frames, height, width]"
            )
        if samples.shape[1] != self.channels:
            raise LatentShapeError(
                f"{what} has {samples.shape[1]} channels; the {self.name} latent has {self.channels} (was it made "
                "for another model family, or by another VAE?)"
            )

    def _stats(self, latent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.check(latent)
        shape = (1, self.channels, 1, 1, 1)
        mean = torch.tensor(self.mean, dtype=latent.dtype, device=latent.device).view(shape)
        std = torch.tensor(self.std, dtype=latent.dtype, device=latent.device).view(shape)
        return mean, std


def batched(tensor: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``tensor`` (a conditioning tensor) with its batch repeated to the latent ``x``'s: a batch of one serves any
    batch; another size that differs raises ``LatentShapeError``."""
    if tensor.shape[0] == x.shape[0]:
        return tensor
    if tensor.shape[0] != 1:
        raise LatentShapeError(f"conditioning batch {tensor.shape[0]} does not match latent batch {x.shape[0]}")
    return tensor.expand(x.shape[0], *tensor.shape[1:])


class FamilyAdapter(ABC):
    """One model family's plumbing around its (diffusers) network; instances describe one loaded variant."""

    family: str
    latent_format: LatentFormat

    @abstractmethod
    def describe(self) -> str:
        """A short description for logs and output info, e.g. ``"Wan 2.1 i2v, dim 5120, 40 layers"``."""

    @abstractmethod
    def default_sampling(self) -> ModelSampling:
        """The noise parametrisation the family was trained with (before any ``ModelSampling*`` node)."""

    @abstractmethod
    def predict(
        self,
        network: torch.nn.Module,
        x: torch.Tensor,
        timestep: torch.Tensor,
        entry: ConditioningEntry,
        dtype: torch.dtype,
        denoise_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The network's raw prediction for state ``x`` (the network's space, float32, ``[B, C, T, H, W]``) at
        ``timestep`` (``[B]``) under one conditioning entry, as float32 shaped like ``x``; the network computes in
        ``dtype`` (its weights may be stored in another, e.g. fp8). ``denoise_mask`` (``[B, 1, T, H, W]``, 1 where
        generated) is given when the latent keeps a region; families with per-token timesteps use it."""

    def known_state(
        self, sampling: ModelSampling, sigma: torch.Tensor, noise: torch.Tensor, clean: torch.Tensor
    ) -> torch.Tensor:
        """What the network sees, at ``sigma``, of the region a noise mask keeps: by default the kept latent noised
        to ``sigma`` with the run's starting noise (inpainting); families that denoise per token keep it clean."""
        return sampling.noise_scaling(sigma, noise, clean)

    @abstractmethod
    def check_conditioning(self, entry: ConditioningEntry, samples: torch.Tensor) -> None:
        """Raise ``LatentShapeError``/``ValueError`` naming what does not fit before any step runs."""

    @abstractmethod
    def work_estimate(self, samples: torch.Tensor, streams: int) -> WorkEstimate:
        """The working memory of one forward over ``samples`` for ``streams`` parallel predictions."""
