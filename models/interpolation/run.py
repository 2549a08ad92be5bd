"""Running an interpolator over a clip: the timeline's originals are copied, the frames between are made in batches
on the compute device (only the batch is ever there), under out-of-memory recovery when the method has a network.
``interpolate_clip`` takes the clip in memory; ``interpolate_stream`` takes it as frame batches and gives the output
a window of source frames at a time, so neither clip is ever held whole."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from models.interpolation.base import FrameInterpolator
from models.interpolation.timing import OutputFrame, Timeline
from models.memory import ModelManager
from models.oom import run_with_oom_recovery

__all__ = ["ProgressCallback", "check_run_settings", "interpolate_clip", "interpolate_stream"]

logger = logging.getLogger(__name__)

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
    _check_frames(frames)
    if frames.shape[0] != timeline.source_frames:
        raise ValueError(f"the timeline is for {timeline.source_frames} frames, the clip has {frames.shape[0]}")
    check_run_settings(batch_size, clear_cache_every)
    releaser = _CacheReleaser(manager, clear_cache_every)
    return _interpolated(manager, interpolator, frames, timeline.frames, batch_size, releaser, on_progress)


def interpolate_stream(
    manager: ModelManager,
    interpolator: FrameInterpolator,
    batches: Iterable[torch.Tensor],
    timeline: Timeline,
    batch_size: int = 1,
    clear_cache_every: int = 0,
    on_progress: ProgressCallback | None = None,
) -> Iterator[torch.Tensor]:
    """``interpolate_clip`` of the clip the frame ``batches`` (``[n, H, W, 3]`` each, in order, on the CPU) make up:
    the output frames in order, one ``[m, H, W, 3]`` chunk per source batch (the frames that batch and the last
    frame before it make). A clip that ends before ``timeline.source_frames`` ends the output early, with a
    warning (a container's frame count can be off); frames after it are not read."""
    check_run_settings(batch_size, clear_cache_every)
    releaser = _CacheReleaser(manager, clear_cache_every)
    frames = timeline.frames
    total = timeline.made_frames
    position = 0
    made = 0
    window_start = 0
    carried: torch.Tensor | None = None
    for batch in batches:
        if position == len(frames):
            return
        _check_frames(batch)
        if carried is not None and batch.shape[1:] != carried.shape[1:]:
            raise ValueError(f"frames changed size from {tuple(carried.shape[1:3])} to {tuple(batch.shape[1:3])}")
        window = batch if carried is None else torch.cat((carried, batch))
        window_end = window_start + window.shape[0]
        last_window = window_end >= timeline.source_frames
        end = position
        while end < len(frames) and (frames[end].index < window_end - 1 or last_window):
            end += 1
        chunk = tuple(OutputFrame(frame.index - window_start, frame.t) for frame in frames[position:end])

        def progress(done: int, _total: int, before: int = made) -> None:
            if on_progress is not None:
                on_progress(before + done, total)

        made += sum(not frame.is_original for frame in chunk)
        if chunk:
            yield _interpolated(manager, interpolator, window, chunk, batch_size, releaser, progress)
        position = end
        carried = window[-1:]
        window_start = window_end - 1
    if position < len(frames) and carried is not None:
        logger.warning(
            "the clip ended after %d of its %d frames; the output ends there", window_start + 1, timeline.source_frames
        )
        if frames[position] == OutputFrame(window_start, 0.0):
            yield carried.clone()


class _CacheReleaser:
    """Releases the device's cached memory after every ``every`` made frames (0: never)."""

    def __init__(self, manager: ModelManager, every: int) -> None:
        self.manager = manager
        self.every = every
        self.since_release = 0

    def made(self, count: int) -> None:
        self.since_release += count
        if self.every and self.since_release >= self.every:
            self.manager.probe.release_cached(self.manager.device)
            self.since_release = 0


def _interpolated(
    manager: ModelManager,
    interpolator: FrameInterpolator,
    frames: torch.Tensor,
    wanted: tuple[OutputFrame, ...],
    batch_size: int,
    releaser: _CacheReleaser,
    on_progress: ProgressCallback | None,
) -> torch.Tensor:
    """The ``wanted`` output frames (indices into ``frames``) of ``frames``: originals copied, the others made
    ``batch_size`` at a time."""
    output = torch.empty((len(wanted), *frames.shape[1:]), dtype=frames.dtype)
    jobs = []
    for position, frame in enumerate(wanted):
        if frame.is_original:
            output[position] = frames[frame.index]
        else:
            jobs.append(_Job(position, frame.index, frame.t))
    for start in range(0, len(jobs), batch_size):
        batch = jobs[start : start + batch_size]
        made = _make_batch(manager, interpolator, frames, batch)
        output[[job.output for job in batch]] = made.to(frames.dtype)
        releaser.made(len(batch))
        if on_progress is not None:
            on_progress(start + len(batch), len(jobs))
    return output


def _check_frames(frames: torch.Tensor) -> None:
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be [frames, height, width, 3], got {tuple(frames.shape)}")


def check_run_settings(batch_size: int, clear_cache_every: int) -> None:
    """``ValueError`` for a batch size below 1 or a negative cache-release period."""
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
