"""Timing for benchmarks that compare runs on a device: wall and CPU seconds of a block, marks inside it (e.g. each
sampling step), and the figures of one timed run."""

from __future__ import annotations

import gc
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch


class Stopwatch:
    """Wall and CPU seconds (all of the process's threads) of a ``with`` block; garbage is collected before it and
    the device synchronized at both ends. ``mark()`` notes a moment (seconds from the start)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.started = self.cpu_started = 0.0
        self.wall_s = self.cpu_s = 0.0
        self.marks: list[float] = []

    def mark(self) -> None:
        self.marks.append(time.perf_counter() - self.started)

    def __enter__(self) -> Stopwatch:
        gc.collect()
        _synchronize(self.device)
        self.marks = []
        self.started, self.cpu_started = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *_exc: object) -> None:
        _synchronize(self.device)
        self.wall_s = time.perf_counter() - self.started
        self.cpu_s = time.process_time() - self.cpu_started


@dataclass
class Timed:
    """One timed run: wall and CPU seconds, the step marks (seconds from the start), and the frames it made."""

    total_s: float
    cpu_s: float
    step_marks_s: list[float]
    frames: np.ndarray = field(repr=False)

    @classmethod
    def of(cls, watch: Stopwatch, frames: np.ndarray) -> Timed:
        return cls(watch.wall_s, watch.cpu_s, list(watch.marks), frames)

    def figures(self) -> dict[str, Any]:
        """Total, CPU, first step (queueing and set-up included), step intervals, and the tail (decode, output)."""
        marks = self.step_marks_s
        intervals = [b - a for a, b in zip([0.0, *marks[:-1]], marks, strict=True)]
        return {
            "total_s": self.total_s,
            "cpu_s": self.cpu_s,
            "first_step_s": intervals[0] if intervals else None,
            "step_intervals_s": intervals,
            "step_s": statistics.median(intervals[1:]) if len(intervals) > 1 else None,
            "tail_s": self.total_s - marks[-1] if marks else None,
        }


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
