"""The output timeline of frame interpolation: which output frame is an original and which is made between two
originals (and where), for a frame multiplier or a target frame rate; and scene cuts, across which nothing is
blended.

Times are counted in input frames: the output frame at ``index + t`` lies a fraction ``t`` of the way from input
frame ``index`` to ``index + 1``; ``t == 0`` is input frame ``index`` itself, copied bit-exact.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from fractions import Fraction

import torch
import torch.nn.functional as F

__all__ = [
    "MAX_MULTIPLIER",
    "MIN_MULTIPLIER",
    "OutputFrame",
    "Timeline",
    "check_scene_cut_threshold",
    "detect_scene_cuts",
    "frame_differences",
    "multiplier_timeline",
    "scene_cuts",
    "streamed_frame_differences",
    "target_fps_timeline",
]

MIN_MULTIPLIER = 2
MAX_MULTIPLIER = 16
CUT_WINDOW = 8
"""Pairs on each side whose differences make a pair's typical difference."""
MIN_TYPICAL_DIFFERENCE = 0.02
"""The typical difference never counts below this (mean absolute difference on 0..1), so the noise of a still
clip is not a cut."""
_DIFFERENCE_SIZE = 64
"""Frames are averaged down to at most this many pixels a side before they are compared."""
_DIFFERENCE_CHUNK = 32
"""Frames averaged down at a time."""


@dataclass(frozen=True)
class OutputFrame:
    """One output frame: ``t`` of the way from input frame ``index`` to ``index + 1``; ``t == 0`` copies input frame
    ``index``."""

    index: int
    t: float

    @property
    def is_original(self) -> bool:
        return self.t == 0.0


@dataclass(frozen=True)
class Timeline:
    """The frames to output (in order) for a clip of ``source_frames`` input frames, and their frame rate."""

    frames: tuple[OutputFrame, ...]
    fps: float
    source_frames: int

    def with_scene_cuts(self, cuts: Iterable[int]) -> Timeline:
        """This timeline with no frame made across the pairs ``cuts`` (``i`` is the pair of frames ``i``, ``i+1``):
        a frame between them copies the nearer original instead (``t < 0.5``: frame ``i``; else frame ``i + 1``)."""
        cut_pairs = frozenset(cuts)
        frames = tuple(
            _nearest_original(frame) if frame.index in cut_pairs and not frame.is_original else frame
            for frame in self.frames
        )
        return replace(self, frames=frames)

    @property
    def made_frames(self) -> int:
        """How many output frames are made between originals (not copied)."""
        return sum(not frame.is_original for frame in self.frames)


def _nearest_original(frame: OutputFrame) -> OutputFrame:
    return OutputFrame(frame.index if frame.t < 0.5 else frame.index + 1, 0.0)


def multiplier_timeline(frame_count: int, fps: float, multiplier: int) -> Timeline:
    """``multiplier - 1`` evenly spaced frames between each pair: ``(frame_count - 1) * multiplier + 1`` frames at
    ``fps * multiplier``."""
    _check_clip(frame_count, fps)
    if isinstance(multiplier, bool) or not isinstance(multiplier, int):
        raise ValueError(f"multiplier must be a whole number, got {multiplier!r}")
    if not MIN_MULTIPLIER <= multiplier <= MAX_MULTIPLIER:
        raise ValueError(f"multiplier must be {MIN_MULTIPLIER}..{MAX_MULTIPLIER}, got {multiplier}")
    frames = tuple(
        OutputFrame(position // multiplier, (position % multiplier) / multiplier)
        for position in range((frame_count - 1) * multiplier + 1)
    )
    return Timeline(frames, fps * multiplier, frame_count)


def target_fps_timeline(frame_count: int, fps: float, target_fps: float) -> Timeline:
    """The frames at times ``k / target_fps`` seconds for ``k`` in ``0..floor((frame_count - 1) / fps *
    target_fps)``: the clip's span resampled to ``target_fps`` (an output time that falls on an input frame
    copies it). Times are computed exactly (rates as fractions), so 24 -> 60 fps copies every second input frame."""
    _check_clip(frame_count, fps)
    if not math.isfinite(target_fps) or target_fps <= 0:
        raise ValueError(f"target_fps must be above 0, got {target_fps}")
    source = _exact(fps)
    target = _exact(target_fps)
    last = math.floor((frame_count - 1) * target / source)
    frames = []
    for k in range(last + 1):
        position = k * source / target
        index = math.floor(position)
        frames.append(OutputFrame(index, float(position - index)))
    return Timeline(tuple(frames), float(target_fps), frame_count)


def _exact(rate: float) -> Fraction:
    """A rate as the fraction it was meant to be (29.97 -> 2997/100, not its binary float)."""
    return Fraction(rate).limit_denominator(1_000_000)


def _check_clip(frame_count: int, fps: float) -> None:
    if frame_count < 1:
        raise ValueError(f"the clip has no frames ({frame_count})")
    if not math.isfinite(fps) or fps <= 0:
        raise ValueError(f"fps must be above 0, got {fps}")


def frame_differences(frames: torch.Tensor) -> torch.Tensor:
    """``[N - 1]``: the mean absolute difference (0..1) of each pair of consecutive frames (``[N, H, W, C]``),
    compared after averaging them down to at most ``_DIFFERENCE_SIZE`` pixels a side (motion of fine detail and noise
    count less than a change of scene)."""
    if frames.ndim != 4:
        raise ValueError(f"frames must be [frames, height, width, channels], got {tuple(frames.shape)}")
    return streamed_frame_differences(frames.split(_DIFFERENCE_CHUNK))


def streamed_frame_differences(batches: Iterable[torch.Tensor]) -> torch.Tensor:
    """``frame_differences`` of the clip the frame ``batches`` (``[n, H, W, C]`` each, in order) make up, holding
    one batch at a time."""
    differences: list[torch.Tensor] = []
    previous: torch.Tensor | None = None
    for batch in batches:
        if batch.ndim != 4:
            raise ValueError(f"frames must be [frames, height, width, channels], got {tuple(batch.shape)}")
        if not batch.shape[0]:
            continue
        size = (min(batch.shape[1], _DIFFERENCE_SIZE), min(batch.shape[2], _DIFFERENCE_SIZE))
        small = F.adaptive_avg_pool2d(batch.permute(0, 3, 1, 2).float(), size)
        joined = small if previous is None else torch.cat((previous, small))
        differences.append((joined[1:] - joined[:-1]).abs().mean(dim=(1, 2, 3)))
        previous = small[-1:]
    return torch.cat(differences) if differences else torch.zeros(0)


def detect_scene_cuts(frames: torch.Tensor, threshold: float) -> tuple[int, ...]:
    """The pairs (``i``: frames ``i``, ``i + 1``) of ``frames`` (``[N, H, W, C]``) that change scene
    (``scene_cuts`` of their ``frame_differences``)."""
    check_scene_cut_threshold(threshold)
    if threshold == 0 or frames.shape[0] < 2:
        return ()
    return scene_cuts(frame_differences(frames), threshold)


def check_scene_cut_threshold(threshold: float) -> None:
    """``ValueError`` unless ``threshold`` is 0 (off) or above."""
    if not math.isfinite(threshold) or threshold < 0:
        raise ValueError(f"scene cut threshold must be 0 (off) or above, got {threshold}")


def scene_cuts(differences: torch.Tensor, threshold: float) -> tuple[int, ...]:
    """The pairs whose difference (of ``differences``, one per pair) is more than ``threshold`` times the typical
    difference around it: the median over up to ``CUT_WINDOW`` pairs on each side, leaving the pair itself out, and
    at least ``MIN_TYPICAL_DIFFERENCE`` (so a lone pair is measured against that). ``threshold`` 0 finds none."""
    check_scene_cut_threshold(threshold)
    if threshold == 0:
        return ()
    cuts = []
    for pair, difference in enumerate(differences.tolist()):
        around = torch.cat(
            (differences[max(0, pair - CUT_WINDOW) : pair], differences[pair + 1 : pair + 1 + CUT_WINDOW])
        )
        typical = max(float(around.median()) if around.numel() else 0.0, MIN_TYPICAL_DIFFERENCE)
        if difference > threshold * typical:
            cuts.append(pair)
    return tuple(cuts)
