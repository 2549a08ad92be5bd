"""The ``MODEL`` socket: a diffusion network held by the memory manager, its family adapter and its sampling."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from models.accelerate.acceleration import Acceleration
from models.families.base import FamilyAdapter
from models.model_handle import ModelHandle
from models.sampling.model_sampling import ModelSampling

__all__ = ["DiffusionModel"]


@dataclass(frozen=True)
class DiffusionModel:
    """What ``UNETLoader`` gives and samplers take. Immutable: nodes that change the sampling (``ModelSamplingSD3``)
    return a copy sharing the same loaded network.

    Args:
        name: the file or folder it came from, for messages.
        handle: the network in the memory manager.
        adapter: the family plumbing for this variant.
        sampling: the noise parametrisation samplers use.
        compute_dtype: the dtype the network computes in (its weights may be stored in another, e.g. fp8).
        offload: the offload policy to force when it runs (``auto`` lets the manager choose).
        video_min_cfg: ``VideoLinearCFGGuidance``: the CFG scale at the first latent frame, rising linearly to the
            sampler's ``cfg`` at the last; ``None`` guides every frame at ``cfg``.
        accelerations: accelerators applied to the network while it samples (caches, sparse attention), in order.
    """

    name: str
    handle: ModelHandle
    adapter: FamilyAdapter
    sampling: ModelSampling
    compute_dtype: torch.dtype
    offload: str = "auto"
    video_min_cfg: float | None = None
    accelerations: tuple[Acceleration, ...] = ()

    def with_sampling(self, sampling: ModelSampling) -> DiffusionModel:
        return dataclasses.replace(self, sampling=sampling)

    def with_acceleration(self, acceleration: Acceleration) -> DiffusionModel:
        """A copy also applying ``acceleration``; one of the same kind it had is replaced (set again, not stacked)."""
        kept = tuple(old for old in self.accelerations if type(old) is not type(acceleration))
        return dataclasses.replace(self, accelerations=(*kept, acceleration))
