"""Canny edges: exact contours of simple shapes, thin closed curves, noise rejection, hysteresis, line thickening."""

from __future__ import annotations

from collections import deque

import torch

from models.control.canny import canny_edges, connected_labels, disc_kernel, hysteresis, thicken_lines


def gray_frames(values: torch.Tensor) -> torch.Tensor:
    """An IMAGE batch ``[B, H, W, 3]`` from gray levels ``[B, H, W]``."""
    return values[..., None].expand(*values.shape, 3).contiguous()


def square_ring(size: int, top: int, bottom: int) -> torch.Tensor:
    """The outermost pixel ring of the square ``[top, bottom)`` in both axes, as a bool ``[size, size]``."""
    ring = torch.zeros(size, size, dtype=torch.bool)
    ring[top:bottom, top:bottom] = True
    ring[top + 1 : bottom - 1, top + 1 : bottom - 1] = False
    return ring


def reachable_from_border(blocked: torch.Tensor) -> torch.Tensor:
    """Pixels of ``blocked`` ``[H, W]`` (bool) that are free and 4-connected through free pixels to the border."""
    height, width = blocked.shape
    seen = torch.zeros_like(blocked)
    queue = deque((y, x) for y in range(height) for x in range(width) if y in (0, height - 1) or x in (0, width - 1))
    while queue:
        y, x = queue.popleft()
        if 0 <= y < height and 0 <= x < width and not blocked[y, x] and not seen[y, x]:
            seen[y, x] = True
            queue.extend(((y + 1, x), (y - 1, x), (y, x + 1), (y, x - 1)))
    return seen


def test_white_square_gives_its_one_pixel_border() -> None:
    values = torch.zeros(1, 32, 32)
    values[:, 10:22, 10:22] = 1.0
    edges = canny_edges(gray_frames(values), 0.4, 0.8)
    assert edges.shape == (1, 32, 32)
    assert torch.equal(edges[0], square_ring(32, 10, 22))


def test_disc_gives_a_thin_closed_curve_on_its_boundary() -> None:
    y, x = torch.meshgrid(torch.arange(40.0), torch.arange(40.0), indexing="ij")
    distance = torch.hypot(x - 19.3, y - 20.6)
    edges = canny_edges(gray_frames((distance < 12.2).float()[None]), 0.4, 0.8)[0]
    assert (distance[edges] - 12.2).abs().max() < 1.5  # on the boundary
    blocks = edges[:-1, :-1] & edges[1:, :-1] & edges[:-1, 1:] & edges[1:, 1:]
    assert not blocks.any()  # one pixel thick: no 2x2 block of edge pixels
    outside = reachable_from_border(edges)
    assert not outside[distance < 10].any()  # closed: the inside cannot be reached from outside


def test_noise_below_the_thresholds_gives_no_edges() -> None:
    generator = torch.Generator().manual_seed(0)
    noisy = 0.5 + (torch.rand(3, 48, 48, 3, generator=generator) - 0.5) * 0.1
    assert not canny_edges(noisy, 0.4, 0.8).any()


def test_hysteresis_keeps_weak_edges_connected_to_strong_ones_only() -> None:
    values = torch.zeros(1, 40, 60)
    values[:, 2:38, 10:30] = torch.linspace(1.0, 0.2, 36)[:, None]  # left edge fades from strong to weak
    values[:, 12:22, 42:52] = 0.25  # isolated square with weak edges (magnitude about 0.65)
    frames = gray_frames(values)
    strong_only = canny_edges(frames, 0.8, 0.8)[0]
    assert strong_only[3:30, 10].all()
    assert not strong_only[33:37, 10].any()  # the faint end of the left edge is weak
    with_hysteresis = canny_edges(frames, 0.4, 0.8)[0]
    assert with_hysteresis[3:37, 10].all()  # weak end kept: it continues the strong part
    assert not with_hysteresis[:, 40:].any()  # isolated weak square dropped
    low_only = canny_edges(frames, 0.4, 0.4)[0]
    assert low_only[13:21, 42].all()  # yet the square's edges are above the low threshold


def test_hysteresis_on_masks() -> None:
    weak = torch.zeros(1, 6, 8, dtype=torch.bool)
    weak[0, 1, 0:4] = True  # a horizontal run
    weak[0, 2, 4] = True  # touching it diagonally
    weak[0, 4, 6:8] = True  # separate
    strong = torch.zeros_like(weak)
    strong[0, 1, 0] = True
    kept = hysteresis(weak, strong)
    expected = weak.clone()
    expected[0, 4] = False
    assert torch.equal(kept, expected)


def test_connected_labels_follow_a_long_spiral_and_keep_frames_apart() -> None:
    size = 31
    spiral = torch.zeros(size, size, dtype=torch.bool)
    top, left, bottom, right = 0, 0, size - 1, size - 1
    while top <= bottom and left <= right:  # a square spiral with one free pixel between turns
        spiral[top, left : right + 1] = True
        spiral[top : bottom + 1, right] = True
        spiral[bottom, left : right + 1] = True
        spiral[top + 2 : bottom + 1, left] = True
        spiral[top + 2, left : left + 3] = True
        top, left, bottom, right = top + 2, left + 2, bottom - 2, right - 2
    batch = torch.stack((spiral, spiral))
    labels = connected_labels(batch)
    assert labels[0][spiral].unique().tolist() == [0]
    assert labels[1][spiral].unique().tolist() == [size * size]
    assert (labels[~batch] == batch.numel()).all()


def test_frames_are_independent() -> None:
    generator = torch.Generator().manual_seed(1)
    frames = torch.rand(3, 24, 20, 3, generator=generator)
    batch = canny_edges(frames, 0.2, 0.5)
    for index in range(3):
        assert torch.equal(batch[index], canny_edges(frames[index : index + 1], 0.2, 0.5)[0])


def test_thicken_lines_uses_a_round_brush() -> None:
    dot = torch.zeros(1, 11, 11, dtype=torch.bool)
    dot[0, 5, 5] = True
    assert torch.equal(thicken_lines(dot, 1), dot)
    three = thicken_lines(dot, 3)[0]
    assert three.sum() == 9 and three[4:7, 4:7].all()
    five = thicken_lines(dot, 5)[0]
    assert five.sum() == 21 and five[3:8, 3:8].sum() == 21 and not five[3, 3]
    two = thicken_lines(dot, 2)[0]
    assert two.sum() == 4 and two[4:6, 4:6].all()  # even widths centre half a pixel up and left
    assert disc_kernel(5).sum() == 21
