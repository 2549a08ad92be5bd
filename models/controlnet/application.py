"""ControlNets applied to conditioning, as ComfyUI's apply nodes set them: the ``control`` extra of each entry holds a
``ControlApplication`` (a ControlNet, its control frames, strength and the part of the sampling it acts in), chained
to the one applied before it, so that several ControlNets drive one prediction (their residuals add up).

The sampling run computes the residuals (``models.controlnet.control_step``); the family adapter feeds them to the
network (``CONTROL_RESIDUALS``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from models.controlnet.loading import ControlNet
    from models.video_vae import VideoVAE

__all__ = ["CONTROL", "CONTROL_RESIDUALS", "ControlApplication", "ControlResiduals"]

CONTROL = "control"
"""The conditioning extra holding the entry's last ``ControlApplication`` (ComfyUI's key)."""
CONTROL_RESIDUALS = "control_residuals"
"""The conditioning extra a sampling step sets to the ``ControlResiduals`` of the entry's active controls."""


@dataclass(frozen=True)
class ControlResiduals:
    """What ControlNets add to a UNet: one tensor per encoder block output and one for the middle block, in the
    network's dtype, batched like the UNet's sample."""

    down: tuple[torch.Tensor, ...]
    middle: torch.Tensor

    def __add__(self, other: ControlResiduals) -> ControlResiduals:
        if len(self.down) != len(other.down):
            raise ValueError(f"ControlNets with {len(self.down)} and {len(other.down)} outputs cannot be combined")
        down = tuple(mine + theirs for mine, theirs in zip(self.down, other.down, strict=True))
        return ControlResiduals(down, self.middle + other.middle)


@dataclass(frozen=True, eq=False)
class ControlApplication:
    """One ControlNet applied to a conditioning.

    Attributes:
        control_net: the ControlNet.
        image: the control frames, IMAGE ``[N, H, W, 3]`` in 0..1 (one picture for every frame, or one per frame);
            resized to the latent's pixel size when they differ.
        strength: the scale of its residuals.
        start_percent: where in the sampling it starts acting (0: from the first step).
        end_percent: where it stops (1: to the last step).
        node: the node that applied it, for messages.
        frame_indices: a SparseCtrl's latent frames its pictures condition, in order, negative ones from the end
            (None: spread evenly from the first frame to the last).
        vae: the VAE that encodes a latent-conditioned SparseCtrl's pictures (the RGB one).
        previous: the ControlNet applied before it to the same conditioning, which acts too.
    """

    control_net: ControlNet
    image: torch.Tensor
    strength: float
    start_percent: float = 0.0
    end_percent: float = 1.0
    node: str = "ControlNetApplyAdvanced"
    frame_indices: tuple[int, ...] | None = None
    vae: VideoVAE | None = None
    previous: ControlApplication | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.start_percent <= self.end_percent <= 1.0:
            raise ValueError(
                f"{self.node}: start_percent ({self.start_percent}) must not be above end_percent "
                f"({self.end_percent}), both within 0..1"
            )
        if self.image.dim() != 4 or self.image.shape[-1] != 3 or self.image.shape[0] < 1:
            raise ValueError(f"{self.node}: image: expected IMAGE frames [N, H, W, 3], got {tuple(self.image.shape)}")
        if self.frame_indices is not None and len(self.frame_indices) != self.image.shape[0]:
            raise ValueError(
                f"{self.node}: frame_indices: {len(self.frame_indices)} frame indices for {self.image.shape[0]} "
                f"pictures: give one index per picture"
            )
        if self.control_net.sparse and self.control_net.spec.condition_is_latent and self.vae is None:
            raise ValueError(
                f"{self.node}: vae: {self.control_net.describe()} is conditioned on latents: connect the video's VAE"
            )

    def sparse_frames(self, frames: int) -> tuple[int, ...]:
        """The latent frames a SparseCtrl's pictures condition in a video of ``frames`` frames: ``frame_indices``
        (negative ones count from the end), or the pictures spread evenly over the video (one picture: the first
        frame)."""
        if self.frame_indices is not None:
            return tuple(index + frames if index < 0 else index for index in self.frame_indices)
        count = self.image.shape[0]
        if count == 1:
            return (0,)
        return tuple(round(index * (frames - 1) / (count - 1)) for index in range(count))

    def chain(self) -> Iterator[ControlApplication]:
        """This application and those applied before it, the first applied first."""
        if self.previous is not None:
            yield from self.previous.chain()
        yield self

    def describe(self) -> str:
        """E.g. ``"control_v11p_sd15_openpose_fp16.safetensors (ControlNetApplyAdvanced)"``, for messages."""
        return f"{self.control_net.name} ({self.node})"
