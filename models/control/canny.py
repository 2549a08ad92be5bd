"""Canny edge detection and line thickening in torch, for structure-control maps (edges, scribbles).

The detector follows the classic steps: grayscale, 5x5 Gaussian blur (sigma 1), Sobel gradients, non-maximum
suppression along the gradient direction, double threshold, hysteresis. Thresholds apply to the unnormalised Sobel
magnitude of a 0..1 image, as ComfyUI's kornia-based Canny node does, so the same threshold values give the same
kind of map (a sharp black-to-white step reaches about 2.6). Borders are extended by replicating the edge pixels.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from models.pixels import luma

BLUR_SIZE = 5
BLUR_SIGMA = 1.0
TIE_TOLERANCE = 1e-4  # magnitudes closer than this are equal: float rounding must not decide which side is kept
# (dx, dy) one pixel along each of the 8 directions, 45 degrees apart, counter-clockwise from +x (y points down).
_DIRECTIONS = ((1, 0), (1, 1), (0, 1), (-1, 1), (-1, 0), (-1, -1), (0, -1), (1, -1))


def _gaussian_kernel(like: torch.Tensor) -> torch.Tensor:
    offsets = torch.arange(BLUR_SIZE, dtype=like.dtype, device=like.device) - BLUR_SIZE // 2
    kernel = torch.exp(-(offsets**2) / (2 * BLUR_SIGMA**2))
    return kernel / kernel.sum()


def gaussian_blur(gray: torch.Tensor) -> torch.Tensor:
    """``gray`` ``[B, H, W]`` blurred with the separable 5x5 Gaussian, borders replicated."""
    kernel = _gaussian_kernel(gray)
    pad = BLUR_SIZE // 2
    padded = F.pad(gray[:, None], (pad, pad, pad, pad), mode="replicate")
    rows = F.conv2d(padded, kernel.view(1, 1, 1, BLUR_SIZE))
    return F.conv2d(rows, kernel.view(1, 1, BLUR_SIZE, 1))[:, 0]


def sobel_gradients(gray: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Unnormalised 3x3 Sobel derivatives (d/dx, d/dy with y pointing down) of ``gray`` ``[B, H, W]``."""
    padded = F.pad(gray[:, None], (1, 1, 1, 1), mode="replicate")[:, 0]
    height, width = gray.shape[1:]

    def shifted(dx: int, dy: int) -> torch.Tensor:
        return padded[:, 1 + dy : 1 + dy + height, 1 + dx : 1 + dx + width]

    gx = (shifted(1, -1) + 2 * shifted(1, 0) + shifted(1, 1)) - (shifted(-1, -1) + 2 * shifted(-1, 0) + shifted(-1, 1))
    gy = (shifted(-1, 1) + 2 * shifted(0, 1) + shifted(1, 1)) - (shifted(-1, -1) + 2 * shifted(0, -1) + shifted(1, -1))
    return gx, gy


def suppress_non_maxima(magnitude: torch.Tensor, gx: torch.Tensor, gy: torch.Tensor) -> torch.Tensor:
    """``magnitude`` ``[B, H, W]`` where it is a local maximum along the gradient direction, else 0.

    The direction is rounded to the nearest of 8 (45 degrees apart). A pixel must be above its neighbour towards the
    brighter side and at least equal to the one towards the darker side (both within ``TIE_TOLERANCE``): of two
    pixels that tie across a step, the brighter one is kept, so edges are one pixel thick. Outside the frame is 0.
    """
    height, width = magnitude.shape[1:]
    padded = F.pad(magnitude, (1, 1, 1, 1))
    neighbours = torch.stack([padded[:, 1 + dy : 1 + dy + height, 1 + dx : 1 + dx + width] for dx, dy in _DIRECTIONS])
    direction = torch.round(torch.atan2(gy, gx) / (math.pi / 4)).long().remainder_(len(_DIRECTIONS))
    brighter = neighbours.gather(0, direction[None])[0]
    darker = neighbours.gather(0, direction.add_(len(_DIRECTIONS) // 2).remainder_(len(_DIRECTIONS))[None])[0]
    is_max = (magnitude - brighter > TIE_TOLERANCE) & (magnitude - darker >= -TIE_TOLERANCE)
    return torch.where(is_max, magnitude, 0.0)


def _neighbour_table(pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The flat indices ``[K]`` of the mask's pixels, and their 8 neighbours as positions in that list ``[8, K]``.

    A neighbour outside the mask or the frame is ``K``. Positions are int32 where they fit: CPU min-reductions of
    int64 are many times slower.
    """
    height, width = pixels.shape[1:]
    members = pixels.flatten().nonzero()[:, 0]
    count = members.numel()
    dtype = torch.int32 if count < torch.iinfo(torch.int32).max else torch.long
    position = torch.full((pixels.numel(),), count, dtype=dtype, device=pixels.device)
    position[members] = torch.arange(count, dtype=dtype, device=pixels.device)
    rows, columns = (members // width) % height, members % width
    table = []
    for dx, dy in _DIRECTIONS:
        inside = (rows + dy >= 0) & (rows + dy < height) & (columns + dx >= 0) & (columns + dx < width)
        neighbour = (members + dy * width + dx).clamp_(0, pixels.numel() - 1)
        table.append(torch.where(inside, position[neighbour], count))
    return members, torch.stack(table)


def connected_labels(pixels: torch.Tensor) -> torch.Tensor:
    """A label per pixel of the bool mask ``pixels`` ``[B, H, W]``: equal within an 8-connected component.

    Labels are flat pixel indices (the smallest in the component); pixels outside the mask get ``pixels.numel()``.
    Only mask pixels are visited. Each round takes the smallest label among a pixel and its neighbours, then jumps
    each label to the label of the pixel it names (pointer jumping), so long components converge in far fewer
    rounds than their length.
    """
    members, neighbours = _neighbour_table(pixels)
    count = members.numel()
    flat_neighbours = neighbours.flatten()
    labels = torch.arange(count, dtype=neighbours.dtype, device=pixels.device)
    while True:
        with_outside = torch.cat((labels, labels.new_full((1,), count)))
        around = with_outside.index_select(0, flat_neighbours).view(neighbours.shape).amin(dim=0)
        merged = torch.minimum(labels, around)
        merged = merged.index_select(0, merged)
        if torch.equal(merged, labels):
            break
        labels = merged
    flat = torch.full((pixels.numel(),), pixels.numel(), dtype=torch.long, device=pixels.device)
    flat[members] = members[labels]
    return flat.view(pixels.shape)


def hysteresis(weak: torch.Tensor, strong: torch.Tensor) -> torch.Tensor:
    """The pixels of ``weak`` (bool, a superset of ``strong``) 8-connected through ``weak`` to a ``strong`` pixel."""
    labels = connected_labels(weak)
    has_strong = torch.zeros(weak.numel() + 1, dtype=torch.bool, device=weak.device)
    has_strong[labels[strong]] = True
    return has_strong[labels] & weak


def canny_edges(images: torch.Tensor, low_threshold: float, high_threshold: float) -> torch.Tensor:
    """Edge mask ``[B, H, W]`` (bool) of an IMAGE batch ``[B, H, W, C]``; frames are independent.

    Pixels whose suppressed gradient magnitude is above ``high_threshold`` are edges, and so are those above
    ``low_threshold`` that connect to them through other such pixels.
    """
    gx, gy = sobel_gradients(gaussian_blur(luma(images.to(torch.float32))))
    magnitude = suppress_non_maxima(torch.hypot(gx, gy), gx, gy)
    return hysteresis(magnitude > low_threshold, magnitude > high_threshold)


def disc_kernel(diameter: int, device: torch.device | None = None) -> torch.Tensor:
    """A ``diameter`` x ``diameter`` float kernel: 1 where the cell centre lies within the disc, else 0."""
    offsets = torch.arange(diameter, dtype=torch.float32, device=device) - (diameter - 1) / 2
    return ((offsets[:, None] ** 2 + offsets[None, :] ** 2) <= (diameter / 2) ** 2).to(torch.float32)


def thicken_lines(lines: torch.Tensor, thickness: int) -> torch.Tensor:
    """The bool mask ``lines`` ``[B, H, W]`` dilated by a disc ``thickness`` pixels across (1 keeps it as is).

    For an even thickness the disc's centre sits half a pixel left of and above each line pixel.
    """
    if thickness == 1:
        return lines
    before, after = (thickness - 1) // 2, thickness // 2
    padded = F.pad(lines[:, None].to(torch.float32), (before, after, before, after))
    kernel = disc_kernel(thickness, lines.device)[None, None]
    return F.conv2d(padded, kernel)[:, 0] > 0.5
