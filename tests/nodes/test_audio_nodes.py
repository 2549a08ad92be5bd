"""LoadAudio and TrimAudioDuration on real audio and video files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from nodes.audio import LoadAudio, TrimAudioDuration
from nodes.folders import Folders
from nodes.media.audio import audio_duration
from tests.nodes.media.synthetic import indexed_frames, sine_audio, write_audio, write_video
from tests.nodes.node_runner import NodeRunner


@pytest.fixture
def runner(tmp_path: Path) -> NodeRunner:
    folders = Folders.under(tmp_path)
    folders.input_dir.mkdir(parents=True)
    return NodeRunner(folders)


def test_load_audio_lists_audio_and_video_files_and_loads_either(runner: NodeRunner) -> None:
    tone = sine_audio(0.5, sample_rate=22050, channels=1)
    write_audio(runner.folders.input_dir / "tone.wav", tone, sample_rate=22050)
    write_video(runner.folders.input_dir / "clip.mp4", indexed_frames(12), fps=24, audio=sine_audio(0.5))
    (runner.folders.input_dir / "pic.png").write_bytes(b"")
    choices, options = runner.bind(LoadAudio).INPUT_TYPES()["required"]["audio"]
    assert choices == ["clip.mp4", "tone.wav"] and options["audio_upload"] is True
    (audio,) = runner.call(LoadAudio, audio="tone.wav")
    assert audio["sample_rate"] == 22050 and audio["waveform"].shape == (1, 1, 11025)
    assert np.allclose(audio["waveform"][0].numpy(), tone, atol=1e-3)  # 16-bit wav is near-exact
    (from_video,) = runner.call(LoadAudio, audio="clip.mp4")
    assert from_video["waveform"].shape[1] == 2 and abs(audio_duration(from_video) - 0.5) < 0.05


def test_load_audio_refuses_a_silent_video(runner: NodeRunner) -> None:
    write_video(runner.folders.input_dir / "mute.mp4", indexed_frames(4))
    with pytest.raises(ValueError, match=r"mute\.mp4"):
        runner.call(LoadAudio, audio="mute.mp4")


def test_trim_audio_duration_counts_seconds_and_negative_starts(runner: NodeRunner) -> None:
    waveform = torch.arange(1000, dtype=torch.float32).reshape(1, 1, 1000) / 1000
    audio = {"waveform": waveform, "sample_rate": 100}  # 10 s
    (cut,) = runner.call(TrimAudioDuration, audio=audio, start_index=2.0, duration=3.0)
    assert cut["waveform"].shape == (1, 1, 300) and float(cut["waveform"][0, 0, 0]) == pytest.approx(0.2)
    (tail,) = runner.call(TrimAudioDuration, audio=audio, start_index=-1.0, duration=60.0)
    assert tail["waveform"].shape == (1, 1, 100) and float(tail["waveform"][0, 0, 0]) == pytest.approx(0.9)
    with pytest.raises(ValueError):
        runner.call(TrimAudioDuration, audio=audio, start_index=20.0, duration=1.0)
