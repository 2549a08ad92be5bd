"""The AnimateDiff family adapter: an SD1.5 UNet with motion modules (diffusers' ``UNetMotionModel``), called on the
whole video ``[B, C, F, H, W]`` as ``AnimateDiffPipeline`` calls it. Conditioning and sampling are SD1.5's.

A motion module attends over at most ``max_frames`` frames (its positional encoding's length) unless context
windows (FreeNoise) are on, which run its temporal attention in overlapping windows of ``context.length`` frames.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from models.families.base import ConditioningEntry, LatentShapeError, NetworkCall
from models.families.sd15.adapter import Sd15Adapter, with_control_residuals
from models.families.sd15.unet_checkpoint import Sd15UnetSpec, sd15_spec_from_config

__all__ = ["WEIGHTING_SCHEMES", "AnimateDiffAdapter", "ContextWindows", "adapter_from_motion_config"]

WEIGHTING_SCHEMES = ("pyramid", "flat", "delayed_reverse_sawtooth")
"""How FreeNoise averages overlapping windows (diffusers' ``FreeNoiseTransformerBlock`` schemes)."""


@dataclass(frozen=True)
class ContextWindows:
    """FreeNoise context windows for the motion modules: ``length`` frames every ``stride`` frames."""

    length: int
    stride: int
    weighting: str = "pyramid"

    def __post_init__(self) -> None:
        if self.length < 1 or self.stride < 1:
            raise ValueError(f"context length {self.length} and stride {self.stride} must be positive")
        if self.stride > self.length:
            raise ValueError(f"context stride {self.stride} above context length {self.length} leaves frames out")
        if self.weighting not in WEIGHTING_SCHEMES:
            raise ValueError(f"context weighting {self.weighting!r} is not one of {', '.join(WEIGHTING_SCHEMES)}")


class AnimateDiffAdapter(Sd15Adapter):
    """An SD1.5 UNet with motion modules of ``max_frames`` frames, optionally with context windows."""

    family = "animatediff"
    has_motion_modules = True

    def __init__(self, spec: Sd15UnetSpec, max_frames: int, context: ContextWindows | None = None) -> None:
        super().__init__(spec)
        self.max_frames = max_frames
        self.context = context

    def describe(self) -> str:
        windows = f", context {self.context.length}/{self.context.stride}" if self.context else ""
        return f"{self.spec.describe()} + AnimateDiff motion modules (up to {self.max_frames} frames{windows})"

    def check_conditioning(self, entry: ConditioningEntry, samples: torch.Tensor) -> None:
        super().check_conditioning(entry, samples)
        frames = samples.shape[2]
        if self.context is None and frames > self.max_frames:
            raise LatentShapeError(
                f"the latent has {frames} frames; the motion module takes at most {self.max_frames} at once: use "
                f"fewer frames or set a context_length (at most {self.max_frames}) in the AnimateDiff apply node"
            )

    def network_call(
        self,
        x: torch.Tensor,
        timestep: torch.Tensor,
        entry: ConditioningEntry,
        dtype: torch.dtype,
        denoise_mask: torch.Tensor | None = None,
    ) -> NetworkCall:
        # the whole video, text embeddings per frame, as AnimateDiffPipeline calls it
        per_sample = self.controlnet_arguments(x, timestep, entry, dtype, whole_video=True)
        return NetworkCall(with_control_residuals(per_sample, entry), {})

    def network_output(self, output: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return output.float()  # already [B, C, T, H, W], not SD1.5's frames as batch


def adapter_from_motion_config(config: Mapping[str, Any]) -> AnimateDiffAdapter:
    """The adapter of a ``UNetMotionModel`` config (an ``AnimateDiffPipeline`` folder's ``unet/config.json``)."""
    return AnimateDiffAdapter(sd15_spec_from_config(config), int(config.get("motion_max_seq_length", 32)))
