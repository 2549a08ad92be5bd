"""Running an interpolator over a clip: the timeline's originals are copied, the frames between are made in batches
on the compute device (only the batch is ever there), under out-of-memory recovery when the method has a network."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from models.interpolation.base import FrameInterpolator
from models.interpolation.timing import Timeline
from models.memory import ModelManager
from models.oom import run_with_oom_recovery

__all__ = ["ProgressCallback", "interpolate_clip"]

ProgressCallback = Callable[[int, int], None]
"""Called after each batch with (frames made so far, frames to make)."""


@dataclass(frozen=True)
class _Job:
    """Output frame ``output`` is made ``t`` of the way from input frame ``index`` to ``index + 1``."""

    output: int
    index: int
    t: float


def interpolate_clip(
    manager: ModelManager,
    interpolator: FrameInterpolator,
    frames: torch.Tensor,
    timeline: Timeline,
    batch_size: int = 1,
    clear_cache_every: int = 0,
    on_progress: ProgressCallback | None = None,
) -> torch.Tensor:
    """The output frames ``[M, H, W, 3]`` (on the CPU, ``frames``' dtype) of ``timeline`` for ``frames``
    (``[N, H, W, 3]``, 0..1, on the CPU).

    Originals (``t == 0``) are copied bit-exact. The frames between are made ``batch_size`` at a time: each batch's
    frame pairs are padded (border replicated) to a multiple of ``interpolator.pad_multiple``, moved to
    ``manager.compute_device``, passed to ``interpolator.between`` and brought back cropped. Cached device memory is
    released after every ``clear_cache_every`` made frames (0: never).
    """
    _check_inputs(frames, timeline, batch_size, clear_cache_every)
    output = torch.empty((len(timeline.frames), *frames.shape[1:]), dtype=frames.dtype)
    jobs = []
    for position, frame in enumerate(timeline.frames):
        if frame.is_original:
            output[position] = frames[frame.index]
        else:
            jobs.append(_Job(position, frame.index, frame.t))
    made_since_clear = 0
    for start in range(0, len(jobs), batch_size):
        batch = jobs[start : start + batch_size]
        made = _make_batch(manager, interpolator, frames, batch)
        output[[job.output for job in batch]] = made.to(frames.dtype)
        made_since_clear += len(batch)
        if clear_cache_every and made_since_clear >= clear_cache_every:
            manager.probe.release_cached(manager.device)
            made_since_clear = 0
        if on_progress is not None:
            on_progress(start + len(batch), len(jobs))
    return output


def _check_inputs(frames: torch.Tensor, timeline: Timeline, batch_size: int, clear_cache_every: int) -> None:
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be [frames, height, width, 3], got {tuple(frames.shape)}")
    if frames.shape[0] != timeline.source_frames:
        raise ValueError(f"the timeline is for {timeline.source_frames} frames, the clip has {frames.shape[0]}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size!r}")
    if isinstance(clear_cache_every, bool) or not isinstance(clear_cache_every, int) or clear_cache_every < 0:
        raise ValueError(f"clear_cache_every must be 0 (never) or more, got {clear_cache_every!r}")


def _make_batch(
    manager: ModelManager, interpolator: FrameInterpolator, frames: torch.Tensor, batch: list[_Job]
) -> torch.Tensor:
    """``[B, H, W, 3]`` on the CPU: the batch's frames, made on the compute device."""
    height, width = frames.shape[1:3]
    device = manager.compute_device
    indices = torch.tensor([job.index for job in batch])
    first = _to_device(frames[indices], interpolator.pad_multiple, device)
    second = _to_device(frames[indices + 1], interpolator.pad_multiple, device)
    times = torch.tensor([job.t for job in batch], dtype=torch.float32, device=device)

    def run(module: torch.nn.Module | None) -> torch.Tensor:
        made = interpolator.between(module, first, second, times)
        return made[:, :, :height, :width].permute(0, 2, 3, 1).to("cpu")

    if interpolator.handle is None:
        return run(None)
    work = interpolator.work_estimate(len(batch), first.shape[2], first.shape[3])
    return run_with_oom_recovery(manager, interpolator.handle, run, work)


def _to_device(images: torch.Tensor, multiple: int, device: torch.device) -> torch.Tensor:
    """``[B, H, W, 3]`` as ``[B, 3, H', W']`` float32 on ``device``, sides padded up to a multiple of ``multiple``
    by repeating the last row and column."""
    pictures = images.to(device=device, dtype=torch.float32).permute(0, 3, 1, 2)
    height, width = pictures.shape[2:]
    pad_bottom, pad_right = -height % multiple, -width % multiple
    if pad_bottom or pad_right:
        pictures = F.pad(pictures, (0, pad_right, 0, pad_bottom), mode="replicate")
    return pictures.contiguous()
