"""Pixel arithmetic shared by image models and preprocessors."""

from __future__ import annotations

import torch

__all__ = ["LUMA_WEIGHTS", "luma"]

LUMA_WEIGHTS = (0.299, 0.587, 0.114)
"""ITU-R BT.601 luma of RGB (as kornia's and PIL's grayscale)."""


def luma(images: torch.Tensor) -> torch.Tensor:
    """Luma ``[...]`` of channels-last pixels ``[..., C]`` in their float dtype (float32 for integers): one channel
    as it is, else BT.601 of the first three."""
    pixels = images if images.is_floating_point() else images.to(torch.float32)
    if pixels.shape[-1] < 3:
        return pixels[..., 0]
    return pixels[..., :3] @ torch.tensor(LUMA_WEIGHTS, dtype=pixels.dtype, device=pixels.device)
