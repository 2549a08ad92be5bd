"""AUDIO values: loading from audio and video files written with ``synthetic``, trimming and validation."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from nodes.media.audio import audio_duration, check_audio, load_audio, load_audio_if_present, trim_audio
from nodes.media.errors import MediaError
from tests.nodes.media.synthetic import indexed_frames, sine_audio, write_audio, write_video

SECONDS = 2.5
RATE = 44100
TONE = sine_audio(SECONDS, RATE, 2)
# samples per codec frame: how far a lossy file's length may drift from the source (priming / padding)
CODEC_FRAME = {".wav": 0, ".flac": 0, ".mp3": 1152, ".m4a": 1024, ".ogg": 960, ".mp4": 1024, ".mkv": 1024, ".webm": 960}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("audio")
    files = {
        suffix: write_audio(folder / f"tone{suffix}", TONE, RATE)
        for suffix in (".wav", ".flac", ".mp3", ".m4a", ".ogg")
    }
    files["mono"] = write_audio(folder / "mono.wav", sine_audio(1.0, 22050, 1), 22050)
    frames = indexed_frames(30)
    for suffix in (".mp4", ".mkv", ".webm"):
        files[suffix] = write_video(folder / f"clip{suffix}", frames, 24, audio=sine_audio(1.25, RATE, 2))
    files["silent"] = write_video(folder / "silent.mp4", frames[:5], Fraction(30000, 1001))
    return files


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    length = min(a.shape[-1], b.shape[-1])
    return float(np.corrcoef(a[..., :length].ravel(), b[..., :length].ravel())[0, 1])


def _assert_audio(audio: Any, rate: int, channels: int) -> np.ndarray:
    assert set(audio) == {"waveform", "sample_rate"}
    waveform = audio["waveform"]
    assert isinstance(waveform, torch.Tensor) and waveform.dtype == torch.float32 and waveform.is_contiguous()
    assert waveform.shape[:2] == (1, channels) and audio["sample_rate"] == rate
    assert float(waveform.abs().max()) <= 1.0
    return waveform[0].numpy()


@pytest.mark.parametrize(
    ("key", "rate", "seconds"),
    [
        (".wav", RATE, SECONDS),
        (".flac", RATE, SECONDS),
        (".mp3", RATE, SECONDS),
        (".m4a", RATE, SECONDS),
        (".ogg", 48000, SECONDS),
        (".mp4", RATE, 1.25),
        (".mkv", RATE, 1.25),
        (".webm", 48000, 1.25),
    ],
)
def test_loads_rate_channels_and_length(files: dict[str, Path], key: str, rate: int, seconds: float) -> None:
    audio = load_audio(files[key])
    samples = _assert_audio(audio, rate, 2)
    assert abs(samples.shape[1] - round(seconds * rate)) <= CODEC_FRAME[key]
    assert audio_duration(audio) == pytest.approx(seconds, abs=CODEC_FRAME[key] / rate + 1e-9)
    assert float(np.abs(samples).max()) > 0.3  # the tone, not silence


@pytest.mark.parametrize("key", [".wav", ".flac"])
def test_lossless_content_matches_the_tone(files: dict[str, Path], key: str) -> None:
    samples = _assert_audio(load_audio(files[key]), RATE, 2)
    assert samples.shape == TONE.shape
    assert np.abs(samples - TONE).max() < 1e-4  # 16-bit quantisation only
    assert _correlation(samples[1], TONE[1]) > 0.9999  # the channels stay in order


def test_mono_keeps_one_channel_and_its_rate(files: dict[str, Path]) -> None:
    samples = _assert_audio(load_audio(files["mono"]), 22050, 1)
    assert samples.shape == (1, 22050)
    assert np.abs(samples - sine_audio(1.0, 22050, 1)).max() < 1e-4


@pytest.mark.parametrize("key", [".wav", ".flac"])
@pytest.mark.parametrize(("start", "duration"), [(0.25, 0.5), (1.6, 0.5), (2.2, None), (1.9, 5.0)])
def test_start_and_duration_cut_exactly(files: dict[str, Path], key: str, start: float, duration: float | None) -> None:
    samples = _assert_audio(load_audio(files[key], start, duration), RATE, 2)
    first = round(start * RATE)
    last = TONE.shape[1] if duration is None else min(TONE.shape[1], first + round(duration * RATE))
    assert samples.shape == (2, last - first)
    assert np.abs(samples - TONE[:, first:last]).max() < 1e-4


@pytest.mark.parametrize("key", [".mp3", ".ogg"])
def test_lossy_cut_lines_up_with_the_tone(files: dict[str, Path], key: str) -> None:
    # mp3 and opus report their encoder delay, so the decoded tone starts at sample 0 (the aac written by
    # synthetic does not, hence no alignment check for m4a)
    audio = load_audio(files[key], 1.5, 0.5)
    rate = audio["sample_rate"]
    samples = _assert_audio(audio, rate, 2)
    assert samples.shape == (2, rate // 2)
    reference = sine_audio(SECONDS, rate, 2)[:, round(1.5 * rate) : round(2.0 * rate)]
    assert _correlation(samples, reference) > 0.95


def test_audio_from_video_with_start(files: dict[str, Path]) -> None:
    audio = load_audio(files[".mp4"], 0.5, 0.25)
    assert _assert_audio(audio, RATE, 2).shape == (2, round(0.25 * RATE))


def test_start_past_the_end(files: dict[str, Path]) -> None:
    with pytest.raises(MediaError, match=r"start=3s is past the end of the audio \(2\.500s\)"):
        load_audio(files[".wav"], 3.0)
    with pytest.raises(MediaError, match="past the end"):
        load_audio(files[".mp3"], 10.0)


def test_video_without_audio(files: dict[str, Path]) -> None:
    assert load_audio_if_present(files["silent"]) is None
    with pytest.raises(MediaError, match="has no audio stream") as caught:
        load_audio(files["silent"])
    assert caught.value.path == files["silent"]
    assert load_audio_if_present(files[".mkv"]) is not None


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="not found"):
        load_audio(tmp_path / "missing.wav")
    with pytest.raises(MediaError, match="not found"):
        load_audio_if_present(tmp_path / "missing.wav")
    garbage = tmp_path / "noise.mp3"
    garbage.write_bytes(b"\x13\x37" * 3000)
    with pytest.raises(MediaError) as caught:
        load_audio(garbage)
    assert type(caught.value) is MediaError and "noise.mp3" in str(caught.value)


@pytest.mark.parametrize(("start", "duration"), [(-1.0, None), (0.0, 0.0), (0.0, -1.0), (float("nan"), None)])
def test_load_rejects_bad_ranges(files: dict[str, Path], start: float, duration: float | None) -> None:
    with pytest.raises(ValueError, match=r"start|duration"):
        load_audio(files[".wav"], start, duration)


# --- trim / duration / check -----------------------------------------------------------------------------------


def _ramp(samples: int = 100, rate: int = 10) -> dict[str, Any]:
    """Audio whose sample values are their indices (channel 1 negated), so cuts are easy to read."""
    ramp = torch.arange(samples, dtype=torch.float32)
    return {"waveform": torch.stack([ramp, -ramp])[None], "sample_rate": rate}


@pytest.mark.parametrize(
    ("start", "duration", "first", "last"),
    [
        (0.0, None, 0, 100),
        (2.0, 3.0, 20, 50),
        (2.0, None, 20, 100),
        (8.0, 5.0, 80, 100),  # clipped at the end
        (-3.0, None, 70, 100),  # counts from the end
        (-3.0, 1.0, 70, 80),
        (-30.0, 1.0, 0, 10),  # before the beginning: from the start
        (0.04, 0.5, 0, 5),  # rounded to whole samples
    ],
)
def test_trim_audio(start: float, duration: float | None, first: int, last: int) -> None:
    trimmed = trim_audio(_ramp(), start, duration)
    assert trimmed["sample_rate"] == 10
    assert trimmed["waveform"].shape == (1, 2, last - first) and trimmed["waveform"].is_contiguous()
    assert trimmed["waveform"][0, 0].tolist() == list(range(first, last))
    assert trimmed["waveform"][0, 1].tolist() == [-float(i) for i in range(first, last)]


@pytest.mark.parametrize(
    ("start", "duration", "reason"),
    [
        (10.0, None, "past the end"),
        (12.0, 1.0, "past the end"),
        (1.0, 0.01, "shorter than one sample"),
        (1.0, 0.0, "duration"),
        (1.0, -2.0, "duration"),
        (float("inf"), None, "start"),
    ],
)
def test_trim_audio_rejects_empty_ranges(start: float, duration: float | None, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        trim_audio(_ramp(), start, duration)


def test_audio_duration() -> None:
    assert audio_duration(_ramp(100, 10)) == 10.0
    assert audio_duration({"waveform": torch.zeros(2, 1, 22050), "sample_rate": 44100}) == 0.5


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "must be a dict"),
        ({"sample_rate": 44100}, "no 'waveform'"),
        ({"waveform": torch.zeros(1, 1, 4)}, "no 'sample_rate'"),
        ({"waveform": np.zeros((1, 1, 4)), "sample_rate": 8000}, "torch.Tensor"),
        ({"waveform": torch.zeros(1, 4), "sample_rate": 8000}, r"\[batch, channels, samples\]"),
        ({"waveform": torch.zeros(1, 1, 4, dtype=torch.int16), "sample_rate": 8000}, "floating point"),
        ({"waveform": torch.zeros(1, 0, 4), "sample_rate": 8000}, "one channel"),
        ({"waveform": torch.zeros(1, 1, 4), "sample_rate": 0}, "positive integer"),
        ({"waveform": torch.zeros(1, 1, 4), "sample_rate": 44100.0}, "positive integer"),
        ({"waveform": torch.zeros(1, 1, 4), "sample_rate": True}, "positive integer"),
    ],
)
def test_check_audio_names_the_problem(value: Any, reason: str) -> None:
    with pytest.raises(ValueError, match=reason) as caught:
        check_audio(value, "the input")
    assert str(caught.value).startswith("the input")


def test_check_audio_normalises_the_rate() -> None:
    waveform = torch.zeros(1, 2, 8)
    checked = check_audio({"waveform": waveform, "sample_rate": np.int64(16000)})
    assert checked["waveform"] is waveform
    assert checked["sample_rate"] == 16000 and type(checked["sample_rate"]) is int
