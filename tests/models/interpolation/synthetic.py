"""Synthetic clips whose true in-between frames are known: a square moving at constant speed over a textured
background (frame ``2k + 1`` is the exact middle of frames ``2k`` and ``2k + 2``), and a clip that cuts between two
scenes."""

from __future__ import annotations

import torch

SQUARE_COLOUR = (0.9, 0.25, 0.1)


def textured_background(size: int, phase: float = 0.0) -> torch.Tensor:
    """``[size, size, 3]``: smooth stripes in 0.1..0.7 (texture for the flow to lock on to)."""
    ys, xs = torch.meshgrid(
        torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32), indexing="ij"
    )
    pattern = torch.sin(xs / 5.0 + phase) * torch.cos(ys / 7.0 - phase)
    return torch.stack((0.4 + 0.3 * pattern, 0.35 + 0.2 * pattern, 0.4 - 0.25 * pattern), dim=-1)


def moving_square_clip(frames: int, size: int = 64, square: int = 16, step: tuple[int, int] = (2, 1)) -> torch.Tensor:
    """``[frames, size, size, 3]`` in 0..1: a flat square (with a faint gradient) moving ``step`` pixels (x, y) a
    frame over a still textured background."""
    background = textured_background(size)
    ys, xs = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    clip = []
    for index in range(frames):
        left, top = 4 + step[0] * index, 6 + step[1] * index
        inside = (xs >= left) & (xs < left + square) & (ys >= top) & (ys < top + square)
        frame = background.clone()
        colour = torch.tensor(SQUARE_COLOUR) + 0.004 * (xs - left).clamp(0, square).unsqueeze(-1)
        frame[inside] = colour[inside]
        clip.append(frame)
    return torch.stack(clip)


def two_scene_clip(frames_each: int, size: int = 32) -> torch.Tensor:
    """``[2 * frames_each, size, size, 3]``: a slowly drifting bright scene, then a slowly drifting dark one."""
    first = [textured_background(size, 0.05 * index) for index in range(frames_each)]
    second = [0.2 + 0.3 * textured_background(size, 2.0 + 0.05 * index).flip(-1) for index in range(frames_each)]
    return torch.stack(first + second).clamp(0.0, 1.0)
