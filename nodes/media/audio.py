"""AUDIO values, ComfyUI's ``{"waveform": [B, C, T] float32 in -1..1, "sample_rate": int}``: load, trim, check.

Times are seconds from the first sample of the audio stream, so a file's own start offset (encoder priming, a
stream that starts at 10 s) does not shift them.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Mapping
from fractions import Fraction
from numbers import Integral
from pathlib import Path
from typing import Any

import av
import numpy as np
import torch
from av.audio.frame import AudioFrame
from av.audio.stream import AudioStream
from av.container import InputContainer

from nodes.media.decode import AV_ERRORS, describe_av_error, open_media
from nodes.media.errors import MediaError

logger = logging.getLogger(__name__)

SEEK_PREROLL = 1.0
"""Seconds decoded (and discarded) before ``start`` after seeking, so codecs with pre-roll (Opus, AAC) settle."""


def check_audio(audio: Any, what: str = "audio") -> dict[str, Any]:
    """Validate an AUDIO value and return it as a plain dict; ``ValueError`` naming ``what`` is wrong."""
    if not isinstance(audio, Mapping):
        raise ValueError(f"{what} must be a dict with 'waveform' and 'sample_rate', got {type(audio).__name__}")
    for key in ("waveform", "sample_rate"):
        if key not in audio:
            raise ValueError(f"{what} has no '{key}'")
    waveform, rate = audio["waveform"], audio["sample_rate"]
    if not isinstance(waveform, torch.Tensor):
        raise ValueError(f"{what} waveform must be a torch.Tensor, got {type(waveform).__name__}")
    if waveform.ndim != 3:
        raise ValueError(f"{what} waveform must be [batch, channels, samples], got shape {tuple(waveform.shape)}")
    if not waveform.is_floating_point():
        raise ValueError(f"{what} waveform must be floating point, got {waveform.dtype}")
    if waveform.shape[0] < 1 or waveform.shape[1] < 1:
        raise ValueError(f"{what} waveform needs at least one batch item and one channel, got {tuple(waveform.shape)}")
    if isinstance(rate, bool) or not isinstance(rate, Integral) or rate <= 0:
        raise ValueError(f"{what} sample_rate must be a positive integer, got {rate!r}")
    return {"waveform": waveform, "sample_rate": int(rate)}


def audio_duration(audio: Mapping[str, Any]) -> float:
    """Length of an AUDIO value in seconds."""
    checked = check_audio(audio)
    return checked["waveform"].shape[-1] / checked["sample_rate"]


def _check_range(start: float, duration: float | None, negative_start: bool) -> None:
    """Reject a non-finite start (or a negative one unless allowed) and a non-positive or non-finite duration."""
    if not math.isfinite(start) or (start < 0 and not negative_start):
        raise ValueError(f"start must be a finite number of seconds >= 0, got {start!r}")
    if duration is not None and (not math.isfinite(duration) or duration <= 0):
        raise ValueError(f"duration must be a positive number of seconds (or None for the rest), got {duration!r}")


def trim_audio(audio: Mapping[str, Any], start: float, duration: float | None) -> dict[str, Any]:
    """The part of ``audio`` from ``start`` seconds lasting ``duration`` (None: to the end; clipped at the end).

    A negative ``start`` counts from the end, like ComfyUI's TrimAudioDuration. An empty range is a ``ValueError``.
    """
    checked = check_audio(audio)
    _check_range(start, duration, negative_start=True)
    waveform, rate = checked["waveform"], checked["sample_rate"]
    total = waveform.shape[-1]
    first = round(start * rate)
    if first < 0:
        first = max(0, total + first)
    if first >= total:
        raise ValueError(f"start={start:g}s is at or past the end of the audio ({total / rate:.3f}s)")
    last = total if duration is None else min(total, first + round(duration * rate))
    if last <= first:
        raise ValueError(f"duration={duration:g}s is shorter than one sample at {rate} Hz")
    return {"waveform": waveform[..., first:last].contiguous(), "sample_rate": rate}


def _audio_stream(container: InputContainer, path: Path) -> AudioStream | None:
    """The first audio stream, or None; ``MediaError`` when its codec cannot be decoded."""
    if not container.streams.audio:
        return None
    stream = container.streams.audio[0]
    if stream.codec_context is None:
        raise MediaError(path, "its audio codec cannot be decoded by this FFmpeg build")
    return stream


def _seconds(stream: AudioStream, ticks: int | None) -> Fraction | None:
    """``ticks`` of the stream's time base in seconds, or None."""
    return None if ticks is None or not stream.time_base else ticks * stream.time_base


def _seek_before(container: InputContainer, stream: AudioStream, start: float) -> None:
    """Seek to a little before ``start`` (seconds from the stream's first sample); a failed seek reads on from 0."""
    target = start - SEEK_PREROLL
    if target <= 0 or not stream.time_base:
        return
    origin = _seconds(stream, stream.start_time) or Fraction(0)
    try:
        container.seek(int((origin + Fraction(target)) / stream.time_base), stream=stream, backward=True)
    except AV_ERRORS as error:
        logger.debug("seek in %s failed (%s); decoding from the start", container.name, describe_av_error(error))


def _frames(container: InputContainer, stream: AudioStream, path: Path) -> Iterator[AudioFrame]:
    """Decoded frames of ``stream``; a read error after some frames ends it with a warning."""
    count = 0
    try:
        for packet in container.demux(stream):
            for frame in packet.decode():
                count += 1
                yield frame
    except AV_ERRORS as error:
        if count == 0:
            raise MediaError(path, f"audio cannot be decoded: {describe_av_error(error)}") from error
        logger.warning("%s: audio after %d frames is unreadable (%s)", path.name, count, describe_av_error(error))


def _frame_position(frame: AudioFrame, stream: AudioStream, rate: int) -> int:
    """Index of ``frame``'s first sample counted from the stream's first sample (0 without timestamps)."""
    if frame.pts is None or not frame.time_base:
        return 0
    origin = _seconds(stream, stream.start_time) or 0
    return round((frame.pts * frame.time_base - origin) * rate)


class _Cutter:
    """Collects the samples ``[first, last)`` of a stream from consecutive float32 planar chunks."""

    def __init__(self, start: float, duration: float | None) -> None:
        self.start, self.duration = start, duration
        self.started = False
        self.rate = 0
        self.first = 0
        self.last: int | None = None
        self.position = 0
        self.chunks: list[np.ndarray] = []

    def begin(self, rate: int, position: int) -> None:
        """Fix the sample rate and the position of the first decoded sample."""
        self.started, self.rate, self.position = True, rate, position
        self.first = round(self.start * rate)
        self.last = None if self.duration is None else self.first + round(self.duration * rate)

    def add(self, samples: np.ndarray) -> None:
        """Take the part of ``samples`` (``[C, n]``, following the previous chunk) inside the range."""
        count = samples.shape[1]
        low = max(self.first - self.position, 0)
        high = count if self.last is None else min(count, self.last - self.position)
        if high > low:
            self.chunks.append(samples[:, low:high])
        self.position += count

    @property
    def done(self) -> bool:
        """Whether the range is complete."""
        return self.last is not None and self.position >= self.last

    def result(self, stream_end: int | None, last_frame: int) -> np.ndarray | None:
        """The collected samples ``[C, T]``, minus codec padding past ``stream_end`` inside the last frame."""
        if not self.chunks:
            return None
        samples = np.concatenate(self.chunks, axis=1)
        if stream_end is not None and self.position - last_frame < stream_end < self.position:
            end = self.position if self.last is None else min(self.position, self.last)
            samples = samples[:, : max(0, samples.shape[1] - max(0, end - stream_end))]
        return samples if samples.shape[1] else None


def _stream_end(stream: AudioStream, rate: int) -> int | None:
    """The stream's length in samples according to its header, or None."""
    seconds = _seconds(stream, stream.duration)
    return round(seconds * rate) if seconds else None


def _decode(
    container: InputContainer, stream: AudioStream, path: Path, start: float, duration: float | None
) -> dict[str, Any]:
    """Decode ``[start, start + duration)`` of ``stream`` to an AUDIO value at the file's rate and channels."""
    _seek_before(container, stream, start)
    resampler = av.AudioResampler(format="fltp")
    cutter = _Cutter(start, duration)
    last_frame = 0
    for frame in _frames(container, stream, path):
        if not cutter.started:
            cutter.begin(frame.sample_rate, _frame_position(frame, stream, frame.sample_rate))
        for converted in resampler.resample(frame):
            cutter.add(converted.to_ndarray())
        last_frame = frame.samples
        if cutter.done:
            break
    if not cutter.started:
        raise MediaError(path, "its audio stream has no decodable samples")
    samples = cutter.result(_stream_end(stream, cutter.rate), last_frame)
    if samples is None:
        length = min(cutter.position, _stream_end(stream, cutter.rate) or cutter.position) / cutter.rate
        raise MediaError(path, f"start={start:g}s is past the end of the audio ({length:.3f}s)")
    waveform = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32)).unsqueeze(0)
    return {"waveform": waveform, "sample_rate": cutter.rate}


def load_audio_if_present(path: Path, start: float = 0.0, duration: float | None = None) -> dict[str, Any] | None:
    """Like ``load_audio``, but None when the file has no audio stream."""
    _check_range(start, duration, negative_start=False)
    path = Path(path)
    with open_media(path) as container:
        stream = _audio_stream(container, path)
        return None if stream is None else _decode(container, stream, path, start, duration)


def load_audio(path: Path, start: float = 0.0, duration: float | None = None) -> dict[str, Any]:
    """The first audio stream of ``path`` (audio or video file) from ``start`` seconds for ``duration`` (None: all).

    The file's sample rate and channel count are kept; the cut is sample-exact. ``MediaError`` when the file is
    missing or not media, has no audio stream, or ``start`` is past the end.
    """
    audio = load_audio_if_present(path, start, duration)
    if audio is None:
        raise MediaError(path, "has no audio stream")
    return audio
