"""Pixel arithmetic shared by image models, preprocessors and image nodes: luma and resizing."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

__all__ = ["LUMA_WEIGHTS", "luma", "resize_images"]

LUMA_WEIGHTS = (0.299, 0.587, 0.114)
"""ITU-R BT.601 luma of RGB (as kornia's and PIL's grayscale)."""
_TORCH_MODES = {"nearest-exact": "nearest-exact", "bilinear": "bilinear", "area": "area", "bicubic": "bicubic"}


def luma(images: torch.Tensor) -> torch.Tensor:
    """Luma ``[...]`` of channels-last pixels ``[..., C]`` in their float dtype (float32 for integers): one channel
    as it is, else BT.601 of the first three."""
    pixels = images if images.is_floating_point() else images.to(torch.float32)
    if pixels.shape[-1] < 3:
        return pixels[..., 0]
    return pixels[..., :3] @ torch.tensor(LUMA_WEIGHTS, dtype=pixels.dtype, device=pixels.device)


def resize_images(image: torch.Tensor, width: int, height: int, method: str, crop: str = "disabled") -> torch.Tensor:
    """Resize an IMAGE batch to ``width`` x ``height``; 0 on one side keeps the aspect ratio, 0 on both is a no-op.

    ``crop="center"`` first trims the image to the target aspect ratio. The result is clamped to 0..1
    because bicubic and lanczos overshoot at edges.
    """
    h, w = image.shape[1], image.shape[2]
    if width == 0 and height == 0:
        return image
    if width == 0:
        width = max(1, round(w * height / h))
    elif height == 0:
        height = max(1, round(h * width / w))
    if (width, height) == (w, h):
        return image
    if crop == "center":
        image = _center_crop(image, width, height)
    if method == "lanczos":
        resized = _lanczos(image, width, height)
    else:
        mode = _TORCH_MODES[method]
        extra = {"align_corners": False} if mode in ("bilinear", "bicubic") else {}
        resized = F.interpolate(image.movedim(-1, 1), size=(height, width), mode=mode, **extra).movedim(1, -1)
    return resized.clamp_(0.0, 1.0).contiguous()


def _center_crop(image: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """The largest centred region of ``image`` with the aspect ratio ``width:height`` (a view)."""
    h, w = image.shape[1], image.shape[2]
    if w * height > h * width:  # source is wider than the target: trim the sides
        keep = max(1, round(h * width / height))
        left = (w - keep) // 2
        return image[:, :, left : left + keep]
    keep = max(1, round(w * height / width))
    top = (h - keep) // 2
    return image[:, top : top + keep]


def _lanczos(image: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Lanczos resampling with Pillow, per frame and channel in float mode (no 8-bit rounding)."""
    frames = image.detach().to("cpu", torch.float32).numpy()
    out = np.empty((frames.shape[0], height, width, frames.shape[3]), dtype=np.float32)
    for b, frame in enumerate(frames):
        for c in range(frame.shape[2]):
            plane = Image.fromarray(np.ascontiguousarray(frame[:, :, c]))
            out[b, :, :, c] = np.asarray(plane.resize((width, height), Image.Resampling.LANCZOS))
    return torch.from_numpy(out).to(image.device)
