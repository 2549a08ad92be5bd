"""The ``VIDEO`` socket value: frames in memory or a file decoded lazily, with its frame rate, audio and metadata.

Method names follow ComfyUI's ``VideoInput`` (``get_components``, ``get_dimensions``, ``get_frame_rate``, ...) so
custom node packs that take a ``VIDEO`` work with ours.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cached_property
from pathlib import Path
from typing import Any

import torch

from graph.context import optional_context
from graph.errors import GraphError
from nodes.media.audio import check_audio, load_audio_if_present
from nodes.media.decode import (
    FrameSelection,
    VideoInfo,
    iter_video_frames,
    load_video_frames,
    probe_video,
    selected_time_span,
)
from nodes.media.encode import FrameBatches, tensor_batches


def as_frame_rate(value: float | Fraction) -> Fraction:
    """An exact frame rate: NTSC-style floats (29.97, 23.976, 59.94) become their 1001-denominator fractions."""
    if isinstance(value, Fraction):
        rate = value
    else:
        rate = Fraction(value).limit_denominator(1001)
        ntsc = Fraction(round(value * 1.001 * 1000), 1001)
        if abs(float(ntsc) - value) < 1e-4 and ntsc.denominator == 1001 and rate.denominator != 1:
            rate = ntsc
    if rate <= 0:
        raise ValueError(f"frame rate must be above 0, not {value}")
    return rate


@dataclass(frozen=True)
class VideoComponents:
    """A video taken apart: frames ``[F, H, W, 3]`` in 0..1, the exact frame rate, optional AUDIO and metadata."""

    images: torch.Tensor
    frame_rate: Fraction
    audio: dict[str, Any] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


class Video(ABC):
    """What flows through a ``VIDEO`` socket."""

    @abstractmethod
    def get_components(self) -> VideoComponents:
        """All frames decoded, with the frame rate, audio and metadata."""

    @abstractmethod
    def get_dimensions(self) -> tuple[int, int]:
        """``(width, height)`` in pixels."""

    @abstractmethod
    def get_frame_rate(self) -> Fraction:
        """Frames per second, exactly."""

    @abstractmethod
    def get_frame_count(self) -> int:
        """How many frames the video has."""

    @abstractmethod
    def get_audio(self) -> dict[str, Any] | None:
        """The AUDIO carried with the video, if any."""

    @abstractmethod
    def frame_batches(self, batch_size: int = 16) -> FrameBatches:
        """A re-callable source of float frame batches, for streaming into an encoder without holding all frames."""

    def get_duration(self) -> float:
        """Length in seconds."""
        return self.get_frame_count() / float(self.get_frame_rate())

    @property
    def metadata(self) -> dict[str, Any]:
        """Free-form metadata (for a file: its container tags)."""
        return {}

    @property
    def nbytes(self) -> int:
        """Memory held in frames and audio (the output cache budgets by it); a file not yet decoded holds ~none."""
        return 0


class VideoFromComponents(Video):
    """A video made from frames in memory (``CreateVideo``, generated clips)."""

    def __init__(
        self,
        images: torch.Tensor,
        frame_rate: float | Fraction,
        audio: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        if images.ndim != 4 or images.shape[0] == 0:
            raise ValueError(
                f"a video needs frames shaped [frames, height, width, channels], got {tuple(images.shape)}"
            )
        self._components = VideoComponents(
            images=images,
            frame_rate=as_frame_rate(frame_rate),
            audio=None if audio is None else check_audio(audio),
            metadata=dict(metadata or {}),
        )

    def get_components(self) -> VideoComponents:
        return self._components

    def get_dimensions(self) -> tuple[int, int]:
        return int(self._components.images.shape[2]), int(self._components.images.shape[1])

    def get_frame_rate(self) -> Fraction:
        return self._components.frame_rate

    def get_frame_count(self) -> int:
        return int(self._components.images.shape[0])

    def get_audio(self) -> dict[str, Any] | None:
        return self._components.audio

    def frame_batches(self, batch_size: int = 16) -> FrameBatches:
        return tensor_batches(self._components.images, batch_size)

    @property
    def metadata(self) -> dict[str, Any]:
        return self._components.metadata

    @property
    def nbytes(self) -> int:
        audio = self._components.audio
        return self._components.images.nbytes + (0 if audio is None else audio["waveform"].nbytes)


class StreamedFramesError(RuntimeError):
    """A node whose frames are made as the next node reads them (``VideoFromBatches``) failed while making them;
    the message names that node, since the error surfaces in the reader."""


class VideoFromBatches(Video):
    """A video whose frames are made a batch at a time when they are read (a streaming node's output: frames
    decoded, transformed and encoded without all of them held at once). Every read makes them again;
    ``get_components`` makes them once and keeps them.

    ``frame_batches`` gives the batches as ``batches`` makes them, whatever ``batch_size`` is asked (encoders take
    any sizes), and stops between batches when the run reading them is interrupted. Errors while making them are
    raised as ``StreamedFramesError`` naming ``producer``; interruptions pass through.
    """

    def __init__(
        self,
        producer: str,
        batches: FrameBatches,
        size: tuple[int, int],
        frame_count: int,
        frame_rate: Fraction,
        audio: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        self.producer = producer
        self._batches = batches
        self._size = size
        self._frame_count = frame_count
        self._frame_rate = as_frame_rate(frame_rate)
        self._audio = None if audio is None else check_audio(audio)
        self._metadata = dict(metadata or {})

    def __repr__(self) -> str:
        width, height = self._size
        return f"VideoFromBatches({self.producer}, {self._frame_count} frames, {width}x{height})"

    @cached_property
    def _components(self) -> VideoComponents:
        images = joined_frames(self.frame_batches()(), self._frame_count)
        return VideoComponents(images, self._frame_rate, self._audio, self._metadata)

    def get_components(self) -> VideoComponents:
        return self._components

    def get_dimensions(self) -> tuple[int, int]:
        return self._size

    def get_frame_rate(self) -> Fraction:
        return self._frame_rate

    def get_frame_count(self) -> int:
        return self._frame_count

    def get_audio(self) -> dict[str, Any] | None:
        return self._audio

    def frame_batches(self, batch_size: int = 16) -> FrameBatches:
        if "_components" in self.__dict__:
            return tensor_batches(self._components.images, batch_size)

        def batches() -> Iterator[torch.Tensor]:
            try:
                for batch in self._batches():
                    yield batch
                    _stop_if_interrupted()
            except GraphError:
                raise
            except Exception as exc:
                raise StreamedFramesError(f"{self.producer} (making its frames as they are read): {exc}") from exc

        return batches

    @property
    def metadata(self) -> dict[str, Any]:
        return self._metadata

    @property
    def nbytes(self) -> int:
        held = self.__dict__.get("_components")
        audio = 0 if self._audio is None else self._audio["waveform"].nbytes
        return audio + (0 if held is None else held.images.nbytes)


def _stop_if_interrupted() -> None:
    """Raise ``ExecutionInterrupted`` when the running node's run (the reader of streamed frames) was interrupted."""
    context = optional_context()
    if context is not None:
        context.check_interrupt()


def joined_frames(batches: Iterable[torch.Tensor], frames: int) -> torch.Tensor:
    """Frame batches written into one ``[frames, ...]`` tensor as they come, so the frames never sit in RAM twice
    (as a list of batches and their concatenation); a source whose announced count was off still gives all its
    frames.

    Raises:
        ValueError: no frames came.
    """
    output: torch.Tensor | None = None
    filled = 0
    overflow: list[torch.Tensor] = []
    for batch in batches:
        if output is None:
            output = batch.new_empty((frames, *batch.shape[1:]))
        fits = max(0, min(batch.shape[0], frames - filled))
        output[filled : filled + fits] = batch[:fits]
        filled += fits
        if fits < batch.shape[0]:
            overflow.append(batch[fits:])
    if output is None:
        raise ValueError("no frames came in")
    return torch.cat([output, *overflow]) if overflow else output[:filled]


class VideoFromFile(Video):
    """A video file, probed on first use and decoded only when frames are asked for."""

    def __init__(self, path: Path, selection: FrameSelection | None = None, info: VideoInfo | None = None) -> None:
        self.path = Path(path)
        self.selection = selection or FrameSelection()
        self._info = info

    def __repr__(self) -> str:
        return f"VideoFromFile({str(self.path)!r})"

    @classmethod
    def probed(cls, path: Path, selection: FrameSelection | None = None) -> VideoFromFile:
        """A video whose file has been probed already, so a broken file raises ``MediaError`` now."""
        return cls(path, selection, probe_video(path))

    @property
    def info(self) -> VideoInfo:
        """The container's description of the video, probed once (raises ``MediaError`` for a bad file)."""
        if self._info is None:
            self._info = probe_video(self.path)
        return self._info

    def get_components(self) -> VideoComponents:
        images = load_video_frames(self.path, self.selection)
        return VideoComponents(
            images=images, frame_rate=self.get_frame_rate(), audio=self.get_audio(), metadata=self.metadata
        )

    def get_dimensions(self) -> tuple[int, int]:
        return self.selection.output_size(self.info.width, self.info.height)

    def get_frame_rate(self) -> Fraction:
        return self.selection.output_rate(self.info.frame_rate)

    def get_frame_count(self) -> int:
        if self.selection == FrameSelection():
            return self.info.frame_count
        return self._selected_frame_count

    @cached_property
    def _selected_frame_count(self) -> int:
        return sum(len(batch) for batch in iter_video_frames(self.path, self.selection))

    def get_audio(self) -> dict[str, Any] | None:
        if self.selection == FrameSelection():
            return load_audio_if_present(self.path)
        start, duration = selected_time_span(self.info, self.selection, self.get_frame_count())
        return load_audio_if_present(self.path, start, duration)

    def frame_batches(self, batch_size: int = 16) -> FrameBatches:
        def batches() -> Iterator[torch.Tensor]:
            for pixels in iter_video_frames(self.path, self.selection, batch_size):
                yield torch.from_numpy(pixels).to(torch.float32).div_(255.0)

        return batches

    @property
    def metadata(self) -> dict[str, Any]:
        return dict(self.info.metadata)
