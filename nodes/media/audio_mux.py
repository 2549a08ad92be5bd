"""An AUDIO waveform muxed next to a video while it is encoded: aac in mp4, opus in webm, trimmed to the video."""

from __future__ import annotations

import math
from collections.abc import Mapping
from fractions import Fraction
from pathlib import Path
from types import MappingProxyType
from typing import Any

import av
import numpy as np
import torch

from nodes.media.errors import MediaError

AUDIO_CODECS: Mapping[str, str] = MappingProxyType({"mp4": "aac", "webm": "libopus"})
# Samples per encoded audio frame; the encoders reject other sizes, and PyAV only knows them once the codec is open.
FRAME_SIZES: Mapping[str, int] = MappingProxyType({"aac": 1024, "libopus": 960})
OPUS_RATE = 48000
FALLBACK_RATE = 48000
# Layouts for inputs that carry only a channel count; more than two channels are downmixed to stereo.
INPUT_LAYOUTS: Mapping[int, str] = MappingProxyType(
    {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}
)


def audio_samples(path: Path, audio: Mapping[str, Any]) -> tuple[np.ndarray, int]:
    """Batch item 0 of an AUDIO dict as float32 ``[C, T]`` in -1..1 (nan -> 0), and its sample rate.

    Raises ``MediaError`` naming ``path`` when the dict is not a usable AUDIO value.
    """
    waveform = audio.get("waveform") if isinstance(audio, Mapping) else None
    sample_rate = audio.get("sample_rate") if isinstance(audio, Mapping) else None
    if waveform is None or not isinstance(sample_rate, int) or isinstance(sample_rate, bool) or sample_rate <= 0:
        raise MediaError(
            path, "audio must be a dict with a 'waveform' tensor [B, C, T] and a positive int 'sample_rate'"
        )
    tensor = torch.as_tensor(waveform)
    if tensor.ndim != 3:
        raise MediaError(
            path, f"the audio waveform must be [batch, channels, samples]; got shape {tuple(tensor.shape)}"
        )
    if tensor.shape[0] == 0:
        raise MediaError(path, "the audio waveform has an empty batch")
    channels = int(tensor.shape[1])
    if channels not in INPUT_LAYOUTS:
        raise MediaError(path, f"the audio has {channels} channels; 1 to {max(INPUT_LAYOUTS)} are supported")
    samples = tensor[0].detach().to(device="cpu", dtype=torch.float32)
    samples = torch.nan_to_num(samples, nan=0.0, posinf=1.0, neginf=-1.0).clamp_(-1.0, 1.0)
    return np.ascontiguousarray(samples.numpy()), sample_rate


class AudioTrack:
    """Encodes one waveform into an audio stream in step with the video, never past the video's end."""

    def __init__(self, container: av.container.OutputContainer, container_name: str, samples: np.ndarray, rate: int):
        """Add the audio stream to ``container`` (before anything is muxed) for ``samples`` ``[C, T]`` at ``rate``."""
        codec = AUDIO_CODECS[container_name]
        self._container = container
        self._samples = samples
        self._rate = rate
        self._written = 0
        self._in_layout = INPUT_LAYOUTS[samples.shape[0]]
        out_layout = "mono" if samples.shape[0] == 1 else "stereo"
        self._stream = container.add_stream(codec, rate=_output_rate(codec, rate))
        self._stream.layout = out_layout
        out_format = "fltp" if codec == "aac" else "flt"
        self._stream.format = out_format
        self._resampler = av.AudioResampler(
            format=out_format, layout=out_layout, rate=self._stream.rate, frame_size=FRAME_SIZES[codec]
        )

    def write_until(self, seconds: Fraction) -> None:
        """Encode the samples up to ``seconds`` into the video (or to the end of the audio, if sooner)."""
        end = min(self._samples.shape[1], math.floor(seconds * self._rate))
        if end <= self._written:
            return
        chunk = np.ascontiguousarray(self._samples[:, self._written : end])
        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=self._in_layout)
        frame.sample_rate = self._rate
        frame.pts = self._written
        frame.time_base = Fraction(1, self._rate)
        self._written = end
        self._encode(self._resampler.resample(frame))

    def finish(self, seconds: Fraction) -> None:
        """Encode what is left up to ``seconds`` (the video's duration) and flush the resampler and the encoder."""
        self.write_until(seconds)
        self._encode(self._resampler.resample(None))
        self._container.mux(self._stream.encode(None))

    def _encode(self, frames: list[av.AudioFrame]) -> None:
        for frame in frames:
            self._container.mux(self._stream.encode(frame))


def _output_rate(codec: str, rate: int) -> int:
    """The stream's sample rate: 48 kHz for opus; for aac the input rate when aac supports it, else 48 kHz."""
    if codec == "libopus":
        return OPUS_RATE
    supported = av.Codec(codec, "w").audio_rates or ()
    return rate if rate in supported else FALLBACK_RATE
