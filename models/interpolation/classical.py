"""A weights-free interpolator: motion-compensated blending from classical optical flow, in plain torch.

Flow is estimated both ways (frame 0 -> 1 and 1 -> 0) by coarse-to-fine dense Lucas-Kanade: at each level of an
image pyramid the second frame is warped by the flow so far and a windowed least-squares step (the structure tensor
of all three colour channels, with a small ridge) refines it. The frame at ``t`` is then made by forward splatting:
every pixel of frame 0 is carried ``t`` along its flow and every pixel of frame 1 ``1 - t`` along its own,
bilinearly, each weighted by how much it can be trusted (``exp(-(ALPHA * photometric error + BETA *
forward-backward error))``: pixels that are hidden in the other frame fail both checks and give way to the ones that
cover them) and by its frame's closeness in time. Where nothing lands, a backward-warped blend fills in.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from models.interpolation.base import FrameInterpolator
from models.interpolation.warp import backward_warp
from models.memory_types import WorkEstimate

__all__ = ["FlowBlendInterpolator", "estimate_flow"]

MIN_LEVEL_SIDE = 12
"""The coarsest pyramid level is the last whose shorter side is at least this."""
ITERATIONS = 2
"""Lucas-Kanade steps at each pyramid level."""
MAX_FLOW_SIDE = 640
"""Flow is estimated on pyramid levels up to this many pixels a side and upsampled beyond: flow is smooth enough, and
720p frames get it at 640x360 for a quarter of the work."""
WINDOW = 7
"""Side of the box window the structure tensor is summed over, in pixels of each level."""
RIDGE = 1e-4
"""Added to the structure tensor's diagonal: textureless areas keep the coarser level's flow."""
ALPHA = 10.0
BETA = 0.5
"""Splatting trust: ``exp(-(ALPHA * mean absolute colour error + BETA * forward-backward error in pixels (L1)))``."""
FILL_WEIGHT = 1e-4
"""Weight of the backward-warped blend, which shows only where splatting left (almost) nothing."""
_FLOATS_PER_PIXEL = 96
"""Working float32 values per pixel of one pair (both flows, pyramid, warps, splat buffers), for the estimate."""


class FlowBlendInterpolator(FrameInterpolator):
    """Motion-compensated blending from classical optical flow: no model file, runs anywhere."""

    name = "classical (no model)"
    handle = None
    pad_multiple = 1

    def describe(self) -> str:
        return "classical optical flow (coarse-to-fine Lucas-Kanade, occlusion-aware splatting)"

    def between(
        self, module: torch.nn.Module | None, first: torch.Tensor, second: torch.Tensor, times: torch.Tensor
    ) -> torch.Tensor:
        """The frames at ``times`` between ``first`` and ``second``; consecutive entries with the same two frames
        (several ``t`` of one pair) share one flow estimate."""
        if first.shape != second.shape or first.ndim != 4 or times.shape != first.shape[:1]:
            raise ValueError(
                f"between needs first and second [N, 3, H, W] and times [N], got {tuple(first.shape)}, "
                f"{tuple(second.shape)}, {tuple(times.shape)}"
            )
        starts = _distinct_pairs(first, second)
        pair_of = torch.zeros(first.shape[0], dtype=torch.long, device=first.device)
        pair_of[starts[1:]] = 1
        pair_of = pair_of.cumsum(0)
        frame0, frame1 = first[starts], second[starts]
        flows = estimate_flow(torch.cat((frame0, frame1)), torch.cat((frame1, frame0)))
        flow01, flow10 = flows.chunk(2)
        return _splat_between(first, second, flow01[pair_of], flow10[pair_of], times.to(first.dtype).view(-1, 1, 1, 1))

    def work_estimate(self, pairs: int, height: int, width: int) -> WorkEstimate:
        return WorkEstimate(activation_bytes=pairs * height * width * _FLOATS_PER_PIXEL * 4)


def _distinct_pairs(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """Indices of the entries that start a run of equal (first, second) pairs."""
    starts = [0]
    for index in range(1, first.shape[0]):
        if not (torch.equal(first[index], first[index - 1]) and torch.equal(second[index], second[index - 1])):
            starts.append(index)
    return torch.tensor(starts, dtype=torch.long, device=first.device)


def estimate_flow(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``[N, 2, H, W]``: the flow (pixels, x then y) taking each pixel of ``source`` to where it is in ``target``
    (both ``[N, C, H, W]``), i.e. ``target`` backward-warped by it matches ``source``. Frames with a side over
    ``MAX_FLOW_SIDE`` get the flow of the first pyramid level within it, upsampled."""
    pyramid = [(source, target)]
    while min(pyramid[-1][0].shape[2:]) // 2 >= MIN_LEVEL_SIDE:
        pyramid.append((_half(pyramid[-1][0]), _half(pyramid[-1][1])))
    finest = next(
        (level for level, (image, _) in enumerate(pyramid) if max(image.shape[2:]) <= MAX_FLOW_SIDE),
        len(pyramid) - 1,
    )
    flow = torch.zeros(source.shape[0], 2, *pyramid[-1][0].shape[2:], dtype=source.dtype, device=source.device)
    for level in range(len(pyramid) - 1, finest - 1, -1):
        level_source, level_target = pyramid[level]
        flow = _resize_flow(flow, level_source.shape[2:])
        for _ in range(ITERATIONS):
            flow = flow + _lucas_kanade_step(level_source, backward_warp(level_target, flow))
    return _resize_flow(flow, source.shape[2:])


def _half(image: torch.Tensor) -> torch.Tensor:
    height, width = image.shape[2:]
    return F.interpolate(image, size=((height + 1) // 2, (width + 1) // 2), mode="bilinear", antialias=True)


def _resize_flow(flow: torch.Tensor, size: torch.Size) -> torch.Tensor:
    if flow.shape[2:] == size:
        return flow
    scale = torch.tensor([size[1] / flow.shape[3], size[0] / flow.shape[2]], dtype=flow.dtype, device=flow.device).view(
        1, 2, 1, 1
    )
    return F.interpolate(flow, size=tuple(size), mode="bilinear", align_corners=False) * scale


def _gradients(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Central differences along x and y (edges replicated)."""
    padded = F.pad(image, (1, 1, 1, 1), mode="replicate")
    grad_x = (padded[:, :, 1:-1, 2:] - padded[:, :, 1:-1, :-2]) * 0.5
    grad_y = (padded[:, :, 2:, 1:-1] - padded[:, :, :-2, 1:-1]) * 0.5
    return grad_x, grad_y


def _lucas_kanade_step(source: torch.Tensor, warped: torch.Tensor) -> torch.Tensor:
    """The flow update that best explains ``warped - source`` by a shift, per window, all channels together."""
    grad_x, grad_y = _gradients((source + warped) * 0.5)
    difference = warped - source
    products = torch.cat(
        (
            (grad_x * grad_x).sum(1, keepdim=True),
            (grad_x * grad_y).sum(1, keepdim=True),
            (grad_y * grad_y).sum(1, keepdim=True),
            (grad_x * difference).sum(1, keepdim=True),
            (grad_y * difference).sum(1, keepdim=True),
        ),
        dim=1,
    )
    sums = F.avg_pool2d(products, WINDOW, stride=1, padding=WINDOW // 2, count_include_pad=False)
    xx, xy, yy, xt, yt = (sums[:, index] + (RIDGE if index in (0, 2) else 0.0) for index in range(5))
    determinant = xx * yy - xy * xy
    update_x = (xy * yt - yy * xt) / determinant
    update_y = (xy * xt - xx * yt) / determinant
    return torch.stack((update_x, update_y), dim=1)


def _splat_between(
    first: torch.Tensor, second: torch.Tensor, flow01: torch.Tensor, flow10: torch.Tensor, t: torch.Tensor
) -> torch.Tensor:
    """Frames at ``t`` (``[N, 1, 1, 1]``) from both frames splatted along their flows, trust-weighted."""
    trust0 = _trust(first, second, flow01, flow10) * (1 - t)
    trust1 = _trust(second, first, flow10, flow01) * t
    accumulated = _splat(first, flow01 * t, trust0) + _splat(second, flow10 * (1 - t), trust1)
    fill = (1 - t) * backward_warp(first, -t * flow01) + t * backward_warp(second, -(1 - t) * flow10)
    colour, weight = accumulated[:, :-1], accumulated[:, -1:]
    return ((colour + FILL_WEIGHT * fill) / (weight + FILL_WEIGHT)).clamp(0.0, 1.0)


def _trust(image: torch.Tensor, other: torch.Tensor, flow: torch.Tensor, other_flow: torch.Tensor) -> torch.Tensor:
    """``[N, 1, H, W]``: how far each pixel of ``image`` can be trusted to be where ``flow`` takes it in ``other``."""
    photometric = (image - backward_warp(other, flow)).abs().mean(1, keepdim=True)
    round_trip = (flow + backward_warp(other_flow, flow)).abs().sum(1, keepdim=True)
    return torch.exp(-(ALPHA * photometric + BETA * round_trip))


def _splat(image: torch.Tensor, flow: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``[N, C + 1, H, W]``: ``image * weight`` and ``weight`` carried along ``flow`` and summed bilinearly at the
    pixels they land between (what lands outside the frame is dropped)."""
    batch, channels, height, width = image.shape
    ys, xs = torch.meshgrid(
        torch.arange(height, device=flow.device, dtype=flow.dtype),
        torch.arange(width, device=flow.device, dtype=flow.dtype),
        indexing="ij",
    )
    x = xs + flow[:, 0]
    y = ys + flow[:, 1]
    left, top = x.floor(), y.floor()
    right_share, bottom_share = x - left, y - top
    values = torch.cat((image * weight, weight), dim=1).transpose(0, 1).reshape(channels + 1, -1)
    base = (torch.arange(batch, device=flow.device) * (height * width)).view(batch, 1, 1)
    out = torch.zeros(channels + 1, batch * height * width, dtype=image.dtype, device=image.device)
    for column, x_share in ((left, 1 - right_share), (left + 1, right_share)):
        for row, y_share in ((top, 1 - bottom_share), (top + 1, bottom_share)):
            inside = (column >= 0) & (column < width) & (row >= 0) & (row < height)
            share = (x_share * y_share * inside).reshape(1, -1)
            index = base + row.clamp(0, height - 1).long() * width + column.clamp(0, width - 1).long()
            out.index_add_(1, index.reshape(-1), values * share)
    return out.view(channels + 1, batch, height, width).transpose(0, 1)
