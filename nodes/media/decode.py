"""Probe videos and decode a selection of their frames (VideoHelperSuite's Load Video options) with PyAV.

Frame selection is applied in VideoHelperSuite's order: ``force_rate`` resamples the timeline, then
``skip_first_frames``, then ``select_every_nth``, then ``frame_load_cap``. Decoding stops as soon as the cap is
reached, and only the frames that are kept are converted to RGB (with the decoder's scaler, which also resizes).
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

import av
import av.error
import numpy as np
import torch
from av.container import InputContainer
from av.stream import Disposition
from av.video.frame import VideoFrame
from av.video.stream import VideoStream

from nodes.media.errors import MediaError

logger = logging.getLogger(__name__)

AV_ERRORS = (av.error.FFmpegError, OSError)
"""What PyAV raises for unreadable input; always turned into ``MediaError``."""

RESIZE_INTERPOLATION = "BICUBIC"  # ffmpeg's default scaler, as VideoHelperSuite's ffmpeg loader gets
FRAME_COUNT_TAGS = ("NUMBER_OF_FRAMES", "NUMBER_OF_FRAMES-eng")  # mkvmerge's statistics tags
DURATION_TAG = re.compile(r"^(\d+):(\d{2}):(\d{2}(?:\.\d+)?)$")  # Matroska's per-stream DURATION tag


@dataclass(frozen=True)
class VideoInfo:
    """What ``probe_video`` learns from a file's headers without decoding frames.

    ``frame_count`` is exact when ``frame_count_exact`` is true (the stream header or an mkvmerge tag states it);
    otherwise it is estimated as ``round(duration * frame_rate)`` (typical for WebM/MKV written by ffmpeg).
    ``frame_rate`` is the stream's average rate as an exact fraction (NTSC stays ``30000/1001``).
    ``width`` and ``height`` are as displayed: a phone video whose display matrix turns it (``rotation``, degrees
    counter-clockwise, a multiple of 90) reports, and loads, upright.
    """

    path: Path
    width: int
    height: int
    frame_rate: Fraction
    frame_count: int
    duration: float
    codec: str
    container: str
    has_audio: bool
    audio_sample_rate: int | None
    audio_channels: int | None
    metadata: dict[str, str]
    frame_count_exact: bool = False
    rotation: int = 0


@dataclass(frozen=True)
class FrameSelection:
    """VideoHelperSuite's Load Video options, applied in field order (resize last); defaults load every frame."""

    force_rate: float = 0.0
    skip_first_frames: int = 0
    select_every_nth: int = 1
    frame_load_cap: int = 0
    width: int = 0
    height: int = 0

    def __post_init__(self) -> None:
        """Reject values VideoHelperSuite's widgets would not allow, naming the field."""
        rate = self.force_rate
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not math.isfinite(rate) or rate < 0:
            raise ValueError(f"force_rate must be a finite number >= 0 (0 = source rate), got {rate!r}")
        minimums = {"skip_first_frames": 0, "select_every_nth": 1, "frame_load_cap": 0, "width": 0, "height": 0}
        for name, minimum in minimums.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")

    @property
    def forced_rate(self) -> Fraction | None:
        """``force_rate`` as a fraction (29.97 becomes 2997/100), or None when the source rate is kept."""
        return Fraction(self.force_rate).limit_denominator(1_000_000) if self.force_rate else None

    def output_rate(self, source_rate: Fraction) -> Fraction:
        """Frames per second of the selected frames: ``(force_rate or source_rate) / select_every_nth``."""
        return (self.forced_rate or Fraction(source_rate)) / self.select_every_nth

    def output_size(self, width: int, height: int) -> tuple[int, int]:
        """The loaded frame size for a ``width`` x ``height`` source; 0 on one side keeps the aspect ratio."""
        if self.width and self.height:
            return self.width, self.height
        if self.width:
            return self.width, max(1, round(height * self.width / width))
        if self.height:
            return max(1, round(width * self.height / height)), self.height
        return width, height

    def expected_count(self, source_frames: int, source_rate: Fraction) -> int:
        """How many frames this selection keeps from ``source_frames`` frames at ``source_rate`` (CFR)."""
        count = source_frames
        if self.forced_rate is not None:
            count = math.ceil(Fraction(source_frames) / Fraction(source_rate) * self.forced_rate)
        count = max(0, count - self.skip_first_frames)
        count = -(-count // self.select_every_nth)
        return min(count, self.frame_load_cap) if self.frame_load_cap else count


DEFAULT_SELECTION = FrameSelection()


def describe_av_error(error: BaseException) -> str:
    """A short reason for a PyAV/OS error, without the file path PyAV appends."""
    reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
    return str(reason).rstrip(".")


def open_media(path: Path) -> InputContainer:
    """Open ``path`` for reading, or raise ``MediaError`` saying why it cannot be (missing, not media, ...)."""
    path = Path(path)
    if not path.exists():
        raise MediaError(path, "file not found")
    if not path.is_file():
        raise MediaError(path, "is not a file")
    try:
        return av.open(str(path), mode="r", metadata_errors="replace")
    except av.error.InvalidDataError as error:
        raise MediaError(path, "is not a media file or is unreadable (truncated or corrupt?)") from error
    except AV_ERRORS as error:
        raise MediaError(path, f"cannot be opened as media: {describe_av_error(error)}") from error


def _video_stream(container: InputContainer, path: Path) -> VideoStream:
    """The first real video stream (cover art in audio files does not count)."""
    for stream in container.streams.video:
        if stream.disposition & Disposition.attached_pic:
            continue
        if stream.codec_context is None:
            raise MediaError(path, "its video codec cannot be decoded by this FFmpeg build")
        return stream
    if container.streams.audio:
        raise MediaError(path, "has no video stream; it is an audio file?")
    raise MediaError(path, "has no video stream")


def _frame_rate(stream: VideoStream, path: Path) -> Fraction:
    """The stream's average frame rate, falling back to the rate FFmpeg guesses."""
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate:
            return Fraction(rate)
    raise MediaError(path, "video stream has no frame rate")


def _tag_seconds(value: str | None) -> Fraction | None:
    """Seconds from a Matroska ``HH:MM:SS.fraction`` duration tag, or None."""
    match = DURATION_TAG.match(value.strip()) if value else None
    if match is None:
        return None
    hours, minutes, seconds = match.groups()
    return int(hours) * 3600 + int(minutes) * 60 + Fraction(seconds)


def _stream_duration(container: InputContainer, stream: VideoStream) -> float:
    """Seconds of video: the stream's own duration, its Matroska tag, else the container's duration."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    tagged = _tag_seconds(stream.metadata.get("DURATION") or stream.metadata.get("duration"))
    if tagged is not None:  # the tag holds the end time; the stream may start later than 0
        start = stream.start_time * stream.time_base if stream.start_time and stream.time_base else 0
        return float(max(Fraction(0), tagged - start))
    return container.duration / av.time_base if container.duration else 0.0


def _frame_count(stream: VideoStream, duration: float, rate: Fraction) -> tuple[int, bool]:
    """``(frame_count, exact)``: from the header or a tag when present, else ``round(duration * rate)``."""
    if stream.frames:
        return int(stream.frames), True
    for tag in FRAME_COUNT_TAGS:
        value = stream.metadata.get(tag, "")
        if value.isdigit():
            return int(value), True
    return round(duration * rate), False


def _container_name(container: InputContainer, path: Path) -> str:
    """The demuxer name matching the file's suffix ("mp4" from "mov,mp4,m4a,..."), else its first name."""
    names = container.format.name.split(",")
    suffix = path.suffix.lower().lstrip(".")
    return suffix if suffix in names else names[0]


def _video_info(container: InputContainer, stream: VideoStream, path: Path) -> VideoInfo:
    """Build a ``VideoInfo`` from an open container and its video stream."""
    rate = _frame_rate(stream, path)
    duration = _stream_duration(container, stream)
    frame_count, exact = _frame_count(stream, duration, rate)
    audio = container.streams.audio[0] if container.streams.audio else None
    audio_context = audio.codec_context if audio is not None else None
    context = stream.codec_context
    return VideoInfo(
        path=path,
        width=context.width,
        height=context.height,
        frame_rate=rate,
        frame_count=frame_count,
        duration=duration,
        codec=context.name,
        container=_container_name(container, path),
        has_audio=audio is not None,
        audio_sample_rate=(audio_context.sample_rate or None) if audio_context is not None else None,
        audio_channels=(audio_context.channels or None) if audio_context is not None else None,
        metadata={str(key): str(value) for key, value in container.metadata.items()},
        frame_count_exact=exact,
    )


def probe_video(path: Path) -> VideoInfo:
    """Size, rate, frame count, duration, codecs and tags of the video at ``path``, without decoding frames."""
    path = Path(path)
    with open_media(path) as container:
        stream = _video_stream(container, path)
        info = _video_info(container, stream, path)
        rotation = _first_frame_rotation(container, stream)
    if rotation % 180:
        return replace(info, width=info.height, height=info.width, rotation=rotation)
    return replace(info, rotation=rotation)


def _first_frame_rotation(container: InputContainer, stream: VideoStream) -> int:
    """The display rotation of the first frame (the display matrix is stream side data PyAV shows only on
    frames); 0 when there is none or nothing decodes."""
    try:
        for frame in container.decode(stream):
            return quarter_turns(frame) * 90
    except AV_ERRORS:
        return 0
    return 0


def quarter_turns(frame: VideoFrame) -> int:
    """How many quarter turns counter-clockwise (0..3) show ``frame`` upright, from its display matrix."""
    return round(frame.rotation / 90) % 4


def _warn_if_short(info: VideoInfo, decoded: int, covered: float) -> None:
    """Log a warning when the decoded frames fall short of the headers (a truncated file, most likely).

    ``covered`` is the seconds from the first decoded frame to the end of the last one.
    """
    if decoded == 0:
        return  # nothing decoded at all is an error, raised by the caller
    if info.frame_count_exact and decoded < info.frame_count:
        found = f"{decoded} of the {info.frame_count} frames its header promises"
    elif not info.frame_count_exact and covered < 0.9 * info.duration - 1 / info.frame_rate:
        found = f"{decoded} frames covering {covered:.2f}s of its {info.duration:.2f}s"
    else:
        return
    logger.warning("%s: decoded only %s (truncated?)", info.path.name, found)


def _frame_end(frame: VideoFrame) -> float | None:
    """Seconds at which ``frame`` stops showing, or None without timestamps."""
    if frame.pts is None or not frame.time_base:
        return None
    return float((frame.pts + (frame.duration or 0)) * frame.time_base)


def _decoded_frames(container: InputContainer, stream: VideoStream, info: VideoInfo) -> Iterator[VideoFrame]:
    """Every frame of ``stream`` in presentation order; a read error after some frames ends it with a warning."""
    stream.thread_type = "AUTO"
    count = 0
    first: float | None = None
    last: float | None = None
    try:
        for packet in container.demux(stream):
            for frame in packet.decode():
                count += 1
                last = _frame_end(frame)
                first = first if first is not None or frame.pts is None else float(frame.pts * frame.time_base)
                yield frame
    except AV_ERRORS as error:
        if count == 0:
            raise MediaError(info.path, f"no frame could be decoded: {describe_av_error(error)}") from error
        reason = describe_av_error(error)
        logger.warning("%s: frames after the first %d are unreadable (%s)", info.path.name, count, reason)
        return
    covered = last - first if first is not None and last is not None else info.duration
    _warn_if_short(info, count, covered)


def _timed_frames(frames: Iterator[VideoFrame], rate: Fraction) -> Iterator[tuple[Fraction, Fraction, VideoFrame]]:
    """``(start, duration, frame)`` in seconds relative to the first frame; missing or backward pts are patched."""
    origin: Fraction | None = None
    previous: Fraction | None = None
    interval = 1 / rate
    for frame in frames:
        base = frame.time_base
        stamp = frame.pts * base if frame.pts is not None and base else None
        if origin is None:
            origin = stamp if stamp is not None else Fraction(0)
        if stamp is None:
            time = previous + interval if previous is not None else Fraction(0)
        else:
            time = stamp - origin
        if previous is not None:
            time = max(time, previous)
            interval = time - previous or interval
        length = frame.duration * base if frame.duration and base else interval
        previous = time
        yield time, length, frame


def _resampled(timed: Iterator[tuple[Fraction, Fraction, VideoFrame]], rate: Fraction) -> Iterator[VideoFrame]:
    """Sample-and-hold ``timed`` onto a grid of ``1/rate`` seconds: each tick shows the latest frame started by then.

    Dropping and duplicating frames this way works for variable frame rate too. A tolerance of one timestamp tick
    absorbs container rounding (WebM stores milliseconds, so 24 fps frames land at 42, 83, 125, ... ms).
    """
    tick = 0
    held: tuple[Fraction, Fraction, VideoFrame] | None = None
    tolerance = Fraction(0)
    for time, length, frame in timed:
        tolerance = frame.time_base or tolerance
        while held is not None and tick / rate < time - tolerance:
            yield held[2]
            tick += 1
        held = (time, length, frame)
    if held is not None:
        end = held[0] + held[1]
        while tick / rate < end - tolerance:
            yield held[2]
            tick += 1


def to_rgb(frame: VideoFrame, width: int, height: int, turns: int = 0) -> np.ndarray:
    """``frame`` as an ``[H, W, 3]`` uint8 rgb24 array shown ``width`` x ``height`` after ``turns`` quarter turns
    counter-clockwise; scaled by the decoder's scaler."""
    coded_width, coded_height = (height, width) if turns % 2 else (width, height)
    resize = (frame.width, frame.height) != (coded_width, coded_height)
    pixels = frame.to_ndarray(
        format="rgb24",
        width=coded_width,
        height=coded_height,
        interpolation=RESIZE_INTERPOLATION if resize else None,
    )
    return np.ascontiguousarray(np.rot90(pixels, turns)) if turns else pixels


def _empty_selection_reason(info: VideoInfo, selection: FrameSelection, available: int, decoded: int) -> str:
    """Why no frame was selected, given ``available`` frames after ``force_rate`` out of ``decoded`` decoded."""
    if decoded == 0:
        return "has no decodable video frames" + (" (truncated?)" if info.frame_count else "")
    at_rate = f" at force_rate={selection.force_rate:g}" if selection.forced_rate else ""
    return f"skip_first_frames={selection.skip_first_frames} but the video has {available} frames{at_rate}"


def _selected_frames(
    container: InputContainer, stream: VideoStream, info: VideoInfo, selection: FrameSelection
) -> Iterator[np.ndarray]:
    """The selected frames as ``[H, W, 3]`` uint8 arrays; stops demuxing as soon as the cap is reached."""
    decoded = 0

    def counted() -> Iterator[VideoFrame]:
        nonlocal decoded
        for frame in _decoded_frames(container, stream, info):
            decoded += 1
            yield frame

    frames: Iterator[VideoFrame] = counted()
    forced = selection.forced_rate
    if forced is not None:
        frames = _resampled(_timed_frames(frames, info.frame_rate), forced)
    kept = 0
    index = -1
    size: tuple[int, int] | None = None
    turns = 0
    last: tuple[VideoFrame, np.ndarray] | None = None
    with closing(frames):
        for index, frame in enumerate(frames):
            offset = index - selection.skip_first_frames
            if offset < 0 or offset % selection.select_every_nth:
                continue
            if size is None:
                turns = quarter_turns(frame)
                upright = (frame.height, frame.width) if turns % 2 else (frame.width, frame.height)
                size = selection.output_size(*upright)
            if last is None or last[0] is not frame:  # force_rate duplicates: convert once
                last = (frame, to_rgb(frame, *size, turns))
            yield last[1]
            kept += 1
            if kept == selection.frame_load_cap:
                return
    if kept == 0:
        raise MediaError(info.path, _empty_selection_reason(info, selection, index + 1, decoded))


def _source_count(info: VideoInfo) -> int | None:
    """The source frame count to plan with, or None when the headers give nothing usable."""
    return info.frame_count if info.frame_count > 0 else None


def iter_video_frames(
    path: Path, selection: FrameSelection = DEFAULT_SELECTION, batch_size: int = 16
) -> Iterator[np.ndarray]:
    """The selected frames of the video at ``path`` as uint8 rgb24 batches ``[n, H, W, 3]`` of ``batch_size``."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    path = Path(path)
    with open_media(path) as container:
        stream = _video_stream(container, path)
        info = _video_info(container, stream, path)
        batch: list[np.ndarray] = []
        with closing(_selected_frames(container, stream, info, selection)) as frames:
            for pixels in frames:
                batch.append(pixels)
                if len(batch) == batch_size:
                    yield np.stack(batch)
                    batch = []
        if batch:
            yield np.stack(batch)


class _FrameBuffer:
    """Float32 frames written in place into a tensor preallocated for the expected count (grown if it is short).

    Frames arrive as uint8 and are converted a chunk at a time: one vectorised copy per chunk is much faster than
    one per frame, and the chunk is all the extra memory it costs.
    """

    CHUNK = 32

    def __init__(self, capacity: int | None) -> None:
        self.capacity = max(1, capacity or 16)
        self.stored = 0
        self.pending: list[np.ndarray] = []
        self.data: torch.Tensor | None = None

    @property
    def count(self) -> int:
        """Frames received so far."""
        return self.stored + len(self.pending)

    def append(self, pixels: np.ndarray) -> None:
        """Take one ``[H, W, 3]`` uint8 frame."""
        self.pending.append(pixels)
        if len(self.pending) == self.CHUNK:
            self._flush()

    def _flush(self) -> None:
        if not self.pending:
            return
        needed = self.stored + len(self.pending)
        if self.data is None:
            self.data = torch.empty((max(self.capacity, needed), *self.pending[0].shape), dtype=torch.float32)
        elif needed > self.data.shape[0]:
            grown = torch.empty((max(needed, self.stored * 2), *self.data.shape[1:]), dtype=torch.float32)
            grown[: self.stored] = self.data[: self.stored]
            self.data = grown
        chunk = torch.from_numpy(np.stack(self.pending))
        self.data[self.stored : needed].copy_(chunk).div_(255.0)
        self.stored = needed
        self.pending = []

    def result(self) -> torch.Tensor:
        """The frames stored so far as ``[F, H, W, 3]``; copied only when the preallocation was far too large."""
        self._flush()
        if self.data is None:
            raise RuntimeError("no frames were stored")
        frames = self.data[: self.stored]
        return frames if self.stored * 16 >= self.data.shape[0] * 15 else frames.clone()


def load_video_frames(
    path: Path,
    selection: FrameSelection = DEFAULT_SELECTION,
    on_frame: Callable[[int, int | None], None] | None = None,
) -> torch.Tensor:
    """The selected frames of the video at ``path`` as a float32 IMAGE ``[F, H, W, 3]`` in 0..1.

    ``on_frame(done, expected)`` runs after each frame (``expected`` is None when unknown or exceeded); if it
    raises, decoding stops, the file is closed and the exception propagates.
    """
    path = Path(path)
    with open_media(path) as container:
        stream = _video_stream(container, path)
        info = _video_info(container, stream, path)
        source = _source_count(info)
        expected = selection.expected_count(source, info.frame_rate) if source else None
        buffer = _FrameBuffer(expected)
        with closing(_selected_frames(container, stream, info, selection)) as frames:
            for pixels in frames:
                buffer.append(pixels)
                if on_frame is not None:
                    on_frame(buffer.count, expected if expected and buffer.count <= expected else None)
    return buffer.result()


def selected_time_span(info: VideoInfo, selection: FrameSelection, frame_count: int) -> tuple[float, float]:
    """``(start, duration)`` in seconds, from the first frame, of ``frame_count`` frames loaded with ``selection``.

    Matches VideoHelperSuite: the span starts at the first kept frame and lasts ``frame_count`` output frames.
    """
    if frame_count < 0:
        raise ValueError(f"frame_count must be >= 0, got {frame_count}")
    rate = selection.forced_rate or info.frame_rate
    start = selection.skip_first_frames / rate
    return float(start), float(frame_count / selection.output_rate(info.frame_rate))
