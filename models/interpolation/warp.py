"""Backward warping: each output pixel samples its source image where a flow field points, bilinearly.

The flow is in pixels, ``[N, 2, H, W]`` with x (width) first: output pixel ``(x, y)`` takes the source's value at
``(x + flow_x, y + flow_y)``. Points outside the source take the nearest border pixel. RIFE warps both frames towards
the middle time this way; the classical optical-flow method uses it too.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["backward_warp"]


def backward_warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """``image`` (``[N, C, H, W]``) sampled at every pixel's position plus ``flow`` (``[N, 2, H, W]``, pixels).

    Raises:
        ValueError: the flow's batch or size does not match the image's, or it has not two channels.
    """
    if image.dim() != 4 or flow.dim() != 4 or flow.shape[1] != 2:
        raise ValueError(
            f"backward_warp needs an [N, C, H, W] image and an [N, 2, H, W] flow, got "
            f"{list(image.shape)} and {list(flow.shape)}"
        )
    if flow.shape[0] != image.shape[0] or flow.shape[2:] != image.shape[2:]:
        raise ValueError(f"backward_warp: flow {list(flow.shape)} does not match image {list(image.shape)}")
    height, width = image.shape[2:]
    xs = torch.arange(width, device=flow.device, dtype=flow.dtype)
    ys = torch.arange(height, device=flow.device, dtype=flow.dtype)
    # grid_sample with align_corners=True maps -1 and 1 to the centres of the first and last pixels.
    x = (xs.view(1, 1, width) + flow[:, 0]) * (2.0 / max(width - 1, 1)) - 1.0
    y = (ys.view(1, height, 1) + flow[:, 1]) * (2.0 / max(height - 1, 1)) - 1.0
    grid = torch.stack((x, y), dim=-1).to(image.dtype)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=True)
