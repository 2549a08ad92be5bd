"""Streaming video encoding through PyAV: IMAGE batches in, an mp4/webm/gif/webp/apng file out.

Frames are converted to uint8 one batch at a time, so a long video never exists in memory as 8-bit pixels. The file
is written next to its destination as a hidden part file and renamed into place only when it is complete.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import torch
from av.video.reformatter import ColorPrimaries, ColorRange, Colorspace, ColorTrc

from nodes.media import provenance
from nodes.media.audio_mux import AudioTrack, audio_samples
from nodes.media.encode_settings import (
    CODECS_BY_CONTAINER,
    DEFAULT_PIXEL_FORMAT,
    FILE_EXTENSIONS,
    VIDEO_CONTAINERS,
    EncodeSettings,
)
from nodes.media.errors import MediaError
from nodes.media.palette import PaletteMapper, build_palette

__all__ = [
    "CODECS_BY_CONTAINER",
    "FILE_EXTENSIONS",
    "EncodeSettings",
    "EncodedVideo",
    "FrameBatches",
    "encode_video",
    "tensor_batches",
]

logger = logging.getLogger(__name__)

FrameBatches = Callable[[], Iterable[torch.Tensor]]
ALPHA_CONTAINERS = ("webp", "apng")


def tensor_batches(images: torch.Tensor, batch_size: int = 16) -> FrameBatches:
    """Frame batches that are slices (views, no copies) of an IMAGE tensor ``[F, H, W, C]``."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1; got {batch_size}")
    return lambda: (images[start : start + batch_size] for start in range(0, images.shape[0], batch_size))


@dataclass(frozen=True)
class EncodedVideo:
    """The written file: its path, frame count, encoded size (after padding), frame rate and whether it has audio."""

    path: Path
    frame_count: int
    width: int
    height: int
    frame_rate: Fraction
    has_audio: bool


def encode_video(
    path: Path,
    frames: FrameBatches,
    settings: EncodeSettings,
    audio: Mapping[str, Any] | None = None,
    on_frame: Callable[[int], None] | None = None,
) -> EncodedVideo:
    """Encode ``frames`` (float ``[n, H, W, C]`` batches in 0..1) to ``path``, muxing ``audio`` into mp4/webm.

    ``on_frame(frames_done)`` runs after each frame is sent to the encoder (for gif also with 0 during the palette
    pass); whatever it raises aborts the encode. The file appears at ``path`` only when complete; on any error the
    part file is removed and the error propagates (``MediaError`` for media problems).
    """
    path = Path(path)
    part = path.with_name(f".{path.name}.part")
    try:
        encoded = _write(part, path, frames, settings, audio, on_frame or (lambda done: None))
        if settings.metadata and settings.container not in VIDEO_CONTAINERS:
            _embed(part, settings)
        os.replace(part, path)
    except BaseException as error:
        part.unlink(missing_ok=True)
        if isinstance(error, av.FFmpegError):
            raise MediaError(path, f"FFmpeg could not encode the {settings.container} file: {error}") from error
        raise
    return encoded


def _embed(part: Path, settings: EncodeSettings) -> None:
    """Embed ``settings.metadata`` into a finished gif/webp/apng part file."""
    embedders = {"gif": provenance.embed_in_gif, "webp": provenance.embed_in_webp, "apng": provenance.embed_in_png}
    embedders[settings.container](part, settings.metadata)


def _write(
    part: Path,
    path: Path,
    frames: FrameBatches,
    settings: EncodeSettings,
    audio: Mapping[str, Any] | None,
    on_frame: Callable[[int], None],
) -> EncodedVideo:
    """Encode everything into ``part``; errors name ``path``."""
    mapper = _gif_mapper(path, frames, settings, on_frame) if settings.container == "gif" else None
    batches = _uint8_batches(path, frames, keep_alpha=settings.container in ALPHA_CONTAINERS)
    first = _first_batch(path, batches)
    height, width = _encoded_size(path, settings, first.shape[1], first.shape[2])
    samples = _audio_for(path, settings, audio)
    container = av.open(str(part), "w", format=settings.container, options=settings.container_options())
    try:
        container.metadata.update(settings.metadata if settings.container in VIDEO_CONTAINERS else {})
        stream = _add_video_stream(container, settings, width, height, alpha=first.shape[3] == 4)
        track = AudioTrack(container, settings.container, *samples) if samples is not None else None
        send = _frame_sender(container, stream, mapper)
        done = 0
        for batch in itertools.chain([first], batches):
            for pixels in _padded(batch, height, width):
                send(_video_frame(pixels, done, settings))
                done += 1
                on_frame(done)
            if track:
                track.write_until(done / settings.frame_rate)
        send(None)
        if track:
            track.finish(done / settings.frame_rate)
    except BaseException:
        with contextlib.suppress(Exception):
            container.close()
        raise
    container.close()
    return EncodedVideo(path, done, width, height, settings.frame_rate, track is not None)


def _frame_sender(
    container: av.container.OutputContainer, stream: av.video.stream.VideoStream, mapper: PaletteMapper | None
) -> Callable[[av.VideoFrame | None], None]:
    """A function that encodes and muxes one frame (through the gif palette mapper, if any); ``None`` flushes."""

    def send(frame: av.VideoFrame | None) -> None:
        if mapper is None:
            container.mux(stream.encode(frame))
            return
        for ready in mapper.map(frame):
            container.mux(stream.encode(ready))
        if frame is None:
            container.mux(stream.encode(None))

    return send


def _uint8_batches(path: Path, frames: FrameBatches, keep_alpha: bool) -> Iterator[np.ndarray]:
    """Each non-empty batch as uint8 ``[n, H, W, 3]`` (or 4 with alpha); checks shape and size against frame 0."""
    seen = 0
    channels = 0
    first_size: tuple[int, int] | None = None
    for batch in frames():
        tensor = torch.as_tensor(batch)
        if tensor.ndim != 4:
            raise MediaError(
                path, f"frame batches must be [n, H, W, C]; batch at frame {seen} has shape {tuple(tensor.shape)}"
            )
        if tensor.shape[0] == 0:
            continue
        size = (int(tensor.shape[2]), int(tensor.shape[1]))
        if first_size is None:
            first_size = size
            channels = 4 if keep_alpha and tensor.shape[3] == 4 else 3
        elif size != first_size:
            raise MediaError(
                path,
                f"frame {seen} is {size[0]}x{size[1]} but the video's first frame is {first_size[0]}x{first_size[1]}",
            )
        yield _with_channels(path, _to_uint8(tensor), channels, seen)
        seen += int(tensor.shape[0])


def _to_uint8(batch: torch.Tensor) -> np.ndarray:
    """Float pixels in 0..1 to uint8 (nan -> 0, clamped, rounded); only this batch is copied."""
    values = torch.nan_to_num(batch.detach().to(device="cpu", dtype=torch.float32), nan=0.0, posinf=1.0, neginf=0.0)
    return values.clamp_(0.0, 1.0).mul_(255.0).round_().to(torch.uint8).numpy()


def _with_channels(path: Path, pixels: np.ndarray, channels: int, first_index: int) -> np.ndarray:
    """``pixels`` with 1 (gray), 3 or 4 channels turned into ``channels`` (3: alpha dropped, 4: opaque alpha added)."""
    count = pixels.shape[3]
    if count not in (1, 3, 4):
        raise MediaError(path, f"frame {first_index} has {count} channels; expected 1 (gray), 3 (RGB) or 4 (RGBA)")
    if count == 1:
        pixels = np.repeat(pixels, 3, axis=3)
    if channels == 3:
        return pixels[..., :3]
    if pixels.shape[3] == 3:
        return np.concatenate([pixels, np.full((*pixels.shape[:3], 1), 255, np.uint8)], axis=3)
    return pixels


def _encoded_size(path: Path, settings: EncodeSettings, height: int, width: int) -> tuple[int, int]:
    """The (height, width) to encode: padded up to even where the pixel format subsamples chroma."""
    pixel_format = settings.output_pixel_format
    if pixel_format is None:
        return height, width
    components = av.VideoFormat(pixel_format, 3, 3).components
    even_w = len(components) > 1 and components[1].width < 3
    even_h = len(components) > 1 and components[1].height < 3
    padded = (height + (height % 2 if even_h else 0), width + (width % 2 if even_w else 0))
    if padded != (height, width) and not settings.pad_odd:
        raise MediaError(
            path,
            f"the frames are {width}x{height}, but {settings.codec} in {pixel_format} needs an even "
            f"{'width and height' if even_w and even_h else 'width' if even_w else 'height'}; "
            "resize the frames or allow padding",
        )
    return padded


def _padded(batch: np.ndarray, height: int, width: int) -> Iterator[np.ndarray]:
    """Each frame of ``batch``, contiguous, padded to ``height`` x ``width`` by repeating the last row/column."""
    pad = ((0, height - batch.shape[1]), (0, width - batch.shape[2]), (0, 0))
    for pixels in batch:
        yield np.pad(pixels, pad, mode="edge") if any(pad[0] + pad[1]) else np.ascontiguousarray(pixels)


def _audio_for(path: Path, settings: EncodeSettings, audio: Mapping[str, Any] | None) -> tuple[np.ndarray, int] | None:
    """The audio samples and rate to mux, or ``None`` (no audio, or a container without audio)."""
    if audio is None:
        return None
    if settings.container not in VIDEO_CONTAINERS:
        logger.warning("%s: %s files cannot hold audio; the audio is left out", path.name, settings.container)
        return None
    samples, rate = audio_samples(path, audio)
    if samples.shape[1] == 0:
        logger.warning("%s: the audio is empty; writing the video without it", path.name)
        return None
    return samples, rate


def _first_batch(path: Path, batches: Iterator[np.ndarray]) -> np.ndarray:
    """The first batch; ``MediaError`` when there is none."""
    first = next(batches, None)
    if first is None:
        raise MediaError(path, "there are no frames to encode")
    return first


def _gif_mapper(
    path: Path, frames: FrameBatches, settings: EncodeSettings, on_frame: Callable[[int], None]
) -> PaletteMapper:
    """Pass 1 of a gif: build the palette from every frame, then a mapper applying it in pass 2."""
    time_base = 1 / settings.frame_rate
    batches = _uint8_batches(path, frames, keep_alpha=False)
    first = _first_batch(path, batches)
    height, width = first.shape[1:3]

    def rgb_frames() -> Iterator[np.ndarray]:
        for batch in itertools.chain([first], batches):
            yield from batch
            on_frame(0)

    palette = build_palette(rgb_frames(), width, height, time_base)
    return PaletteMapper(palette, width, height, time_base)


def _add_video_stream(
    container: av.container.OutputContainer, settings: EncodeSettings, width: int, height: int, alpha: bool
) -> av.video.stream.VideoStream:
    """Add the video stream with exact rate and time base, pixel format, options and (for YUV) BT.709 tags."""
    stream = container.add_stream(settings.encoder, rate=settings.frame_rate)
    stream.width, stream.height = width, height
    stream.codec_context.time_base = 1 / settings.frame_rate
    stream.time_base = 1 / settings.frame_rate
    stream.pix_fmt = _stream_pixel_format(settings, alpha)
    stream.options = settings.codec_options()
    if settings.codec == "h265":
        stream.codec_context.codec_tag = "hvc1"
    if _is_yuv(stream.pix_fmt):
        context = stream.codec_context
        context.colorspace = Colorspace.ITU709
        context.color_primaries = ColorPrimaries.BT709
        context.color_trc = ColorTrc.BT709
        context.color_range = ColorRange.MPEG
    return stream


def _stream_pixel_format(settings: EncodeSettings, alpha: bool) -> str:
    """The encoder's input pixel format."""
    if settings.container == "gif":
        return "pal8"
    if settings.container == "webp":
        return "bgra"
    if settings.container == "apng":
        return "rgba" if alpha else "rgb24"
    return settings.output_pixel_format or DEFAULT_PIXEL_FORMAT


def _is_yuv(pixel_format: str) -> bool:
    return pixel_format.startswith(("yuv", "nv"))


def _video_frame(pixels: np.ndarray, index: int, settings: EncodeSettings) -> av.VideoFrame:
    """One uint8 frame as an ``av.VideoFrame`` with pts ``index``; YUV targets are converted here as BT.709."""
    frame = av.VideoFrame.from_ndarray(pixels, format="rgba" if pixels.shape[2] == 4 else "rgb24")
    pixel_format = settings.output_pixel_format
    if pixel_format is not None and _is_yuv(pixel_format):
        frame = frame.reformat(format=pixel_format, dst_colorspace="ITU709", dst_color_range="MPEG")
    frame.pts = index
    frame.time_base = 1 / settings.frame_rate
    return frame
