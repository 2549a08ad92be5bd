"""``FrameInterpolator``: what the ``FRAME_INTERPOLATION_MODEL`` socket carries, and all that clip-level code (the
interpolate node, its batching and scene cuts) asks of one interpolation method.

An interpolator makes the frames at times ``t`` in (0, 1) between pairs of frames. Learned ones (RIFE, FILM) hold
their network through a ``ModelHandle`` of the memory manager and get the placed module in ``between``; the
weights-free classical method has no handle and gets ``None``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch

from models.memory_types import WorkEstimate
from models.model_handle import ModelHandle

__all__ = ["FrameInterpolator"]


class FrameInterpolator(ABC):
    """One loaded interpolation method.

    Attributes:
        name: the model file's name (or the method's, without a file), for messages and cache keys.
        handle: the network's handle in the memory manager; ``None`` for methods without weights.
        pad_multiple: frame sides are padded (replicating the border) to a multiple of this before ``between``
            and the result cropped back.
    """

    name: str
    handle: ModelHandle | None
    pad_multiple: int = 1

    @abstractmethod
    def describe(self) -> str:
        """What this is, for messages and the UI (``"RIFE 4.6 (IFNet)"``)."""

    @abstractmethod
    def between(
        self, module: torch.nn.Module | None, first: torch.Tensor, second: torch.Tensor, times: torch.Tensor
    ) -> torch.Tensor:
        """The frames at ``times`` (``[N]``, each in (0, 1)) between ``first`` and ``second`` (``[N, 3, H, W]``, 0..1,
        on the compute device, sides multiples of ``pad_multiple``), as ``[N, 3, H, W]`` in 0..1; ``module`` is the
        placed network (``None`` without a handle)."""

    @abstractmethod
    def work_estimate(self, pairs: int, height: int, width: int) -> WorkEstimate:
        """The working memory of one ``between`` call over ``pairs`` frame pairs of this size."""
