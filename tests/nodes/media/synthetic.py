"""Real media files for tests, written with raw PyAV: frames that say their own index, and sine-wave audio.

Each frame is a smooth moving gradient (so lossy codecs keep it well) with the frame index written as a row of
black/white blocks along the top edge; ``frame_index_of`` reads it back, so tests can check which frames a
loader or a frame operation kept.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

MARKER_BITS = 10
MARKER_BLOCK = 8
CONTAINER_CODECS = {".mp4": "libx264", ".mkv": "libx264", ".mov": "libx264", ".webm": "libvpx-vp9"}
AUDIO_CODECS = {".mp4": "aac", ".mkv": "aac", ".mov": "aac", ".webm": "libopus"}


def indexed_frames(count: int, width: int = 96, height: int = 64, start: int = 0) -> np.ndarray:
    """``count`` RGB frames ``[F, H, W, 3]`` uint8, each showing its index (``start + i``) in the top marker row."""
    if width < MARKER_BITS * MARKER_BLOCK or height < 2 * MARKER_BLOCK:
        raise ValueError(f"frames must be at least {MARKER_BITS * MARKER_BLOCK}x{2 * MARKER_BLOCK} to hold the marker")
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    frames = np.empty((count, height, width, 3), dtype=np.uint8)
    for i in range(count):
        index = start + i
        phase = index * 0.15
        frames[i, ..., 0] = 128 + 90 * np.sin(xs / width * 2 * np.pi + phase)
        frames[i, ..., 1] = 128 + 90 * np.cos(ys / height * 2 * np.pi + phase)
        frames[i, ..., 2] = (xs + ys) / (width + height) * 200 + 28
        frames[i, :MARKER_BLOCK] = 128
        for bit in range(MARKER_BITS):
            value = 255 if (index >> bit) & 1 else 0
            frames[i, :MARKER_BLOCK, bit * MARKER_BLOCK : (bit + 1) * MARKER_BLOCK] = value
    return frames


def frame_index_of(frame: np.ndarray) -> int:
    """The index written into ``frame`` (``[H, W, 3]``, uint8 or float in 0..1) by ``indexed_frames``."""
    pixels = np.asarray(frame, dtype=np.float32)
    if pixels.max() <= 1.0:
        pixels = pixels * 255.0
    index = 0
    for bit in range(MARKER_BITS):
        block = pixels[1 : MARKER_BLOCK - 1, bit * MARKER_BLOCK + 1 : (bit + 1) * MARKER_BLOCK - 1]
        if block.mean() > 128:
            index |= 1 << bit
    return index


def sine_audio(seconds: float, sample_rate: int = 44100, channels: int = 2, frequency: float = 440.0) -> np.ndarray:
    """A sine tone ``[C, T]`` float32 in -0.5..0.5; channel ``c`` is shifted up by ``c * 110`` Hz."""
    t = np.arange(round(seconds * sample_rate), dtype=np.float32) / sample_rate
    return np.stack([0.5 * np.sin(2 * np.pi * (frequency + 110 * c) * t) for c in range(channels)]).astype(np.float32)


def write_video(
    path: Path,
    frames: np.ndarray,
    fps: Fraction | int = 24,
    audio: np.ndarray | None = None,
    sample_rate: int = 44100,
    crf: int = 12,
) -> Path:
    """Encode ``frames`` ``[F, H, W, 3]`` uint8 to ``path`` (container by suffix), with ``audio`` ``[C, T]`` if any."""
    suffix = path.suffix.lower()
    with av.open(str(path), "w") as container:
        stream = container.add_stream(CONTAINER_CODECS[suffix], rate=Fraction(fps))
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf)}
        audio_stream = None
        if audio is not None:
            rate = 48000 if suffix == ".webm" else sample_rate
            audio_stream = container.add_stream(AUDIO_CODECS[suffix], rate=rate)
            audio_stream.layout = "stereo" if audio.shape[0] == 2 else "mono"
        for pixels in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="rgb24")))
        container.mux(stream.encode())
        if audio_stream is not None and audio is not None:
            _encode_audio(container, audio_stream, audio, sample_rate)
    return path


def _encode_audio(
    container: av.container.OutputContainer, stream: av.audio.stream.AudioStream, audio: np.ndarray, sample_rate: int
) -> None:
    layout = "stereo" if audio.shape[0] == 2 else "mono"
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(audio, dtype=np.float32), format="fltp", layout=layout)
    frame.sample_rate = sample_rate
    resampler = av.AudioResampler(
        format=stream.format.name, layout=layout, rate=stream.rate, frame_size=stream.frame_size or None
    )
    for chunk in resampler.resample(frame) + resampler.resample(None):
        container.mux(stream.encode(chunk))
    container.mux(stream.encode())


def write_audio(path: Path, audio: np.ndarray, sample_rate: int = 44100) -> Path:
    """Write ``audio`` ``[C, T]`` to an audio-only file (``.wav`` as pcm_s16le, ``.flac``, ``.mp3``, ``.m4a``/aac)."""
    codecs = {".wav": "pcm_s16le", ".flac": "flac", ".mp3": "libmp3lame", ".m4a": "aac", ".ogg": "libopus"}
    suffix = path.suffix.lower()
    with av.open(str(path), "w") as container:
        rate = 48000 if suffix == ".ogg" else sample_rate
        stream = container.add_stream(codecs[suffix], rate=rate)
        stream.layout = "stereo" if audio.shape[0] == 2 else "mono"
        _encode_audio(container, stream, audio, sample_rate)
    return path


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB between two images: integer arrays are 0..255, float arrays 0..1."""
    x, y = (np.asarray(v, dtype=np.float64) * (255.0 if np.asarray(v).dtype.kind == "f" else 1.0) for v in (a, b))
    mse = float(np.mean((x - y) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0**2 / mse)
