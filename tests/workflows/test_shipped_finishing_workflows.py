"""The shipped finishing workflows: Wan 2.1 text to video then RIFE 2x and Real-ESRGAN 2x
(``wan2.1_t2v_interpolate_upscale``), and a loaded video made smoother and sharper (``video_smoother_sharper``).
Each keeps its real-use settings, lists the models its loaders name, and runs headless on the tiny stand-ins to an
mp4 with twice the frame rate, 2n - 1 frames and twice the size (and, for the loaded video, its audio)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

import main
from graph.registry import NodeRegistry
from graph.workflow_file import load_workflow
from models.requirements import required_models

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO / "workflows"
GENERATE = "wan2.1_t2v_interpolate_upscale"
FINISH = "video_smoother_sharper"
FINISHING = {
    "interpolation": {"model_name": "rife47.pth", "multiplier": 2, "scene_cut_threshold": 4.0},
    "upscale": {"model_name": "RealESRGAN_x2plus.pth"},
}
CLIP_FRAMES, CLIP_FPS, CLIP_SIZE = 7, 12, (64, 48)


@pytest.mark.parametrize("name", [GENERATE, FINISH])
def test_the_workflow_keeps_its_settings_and_lists_its_models(
    registry: NodeRegistry, tiny_models_dir: Path, name: str
) -> None:
    loaded = load_workflow(WORKFLOWS / f"{name}.json", registry)
    by_class = {body["class_type"]: body["inputs"] for body in loaded.api.values()}
    interpolate = by_class.get("FrameInterpolate") or by_class["FrameInterpolateVideo"]
    expected = FINISHING["interpolation"]
    assert by_class["FrameInterpolationModelLoader"]["model_name"] == expected["model_name"]
    assert {key: interpolate[key] for key in ("multiplier", "scene_cut_threshold")} == {
        "multiplier": expected["multiplier"],
        "scene_cut_threshold": expected["scene_cut_threshold"],
    }
    assert by_class["UpscaleModelLoader"]["model_name"] == FINISHING["upscale"]["model_name"]
    listed = required_models(loaded.ui)
    named = {
        value
        for body in loaded.api.values()
        for key, value in body["inputs"].items()
        if key.endswith("_name") and key != "sampler_name"
    }
    assert {entry.name for entry in listed} == named
    assert all(entry.url for entry in listed)
    assert all((tiny_models_dir / entry.folder / entry.name).is_file() for entry in listed)


def _run(tiny_models_dir: Path, tmp_path: Path, name: str, input_dir: Path, *overrides: str) -> Path:
    args = [str(WORKFLOWS / f"{name}.json"), "--models-dir", str(tiny_models_dir)]
    args += ["--output-dir", str(tmp_path / "out"), "--temp-dir", str(tmp_path / "temp")]
    args += ["--input-dir", str(input_dir), "--no-progress", "--cpu", *overrides]
    assert main.main(["run", *args]) == 0
    (mp4,) = (tmp_path / "out" / "video").glob("*.mp4")
    return mp4


def _video_facts(path: Path) -> tuple[int, int, Fraction, int, int]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        return stream.width, stream.height, Fraction(stream.average_rate), frames, len(container.streams.audio)


def test_generate_interpolate_upscale_runs_headless(tiny_models_dir: Path, tmp_path: Path) -> None:
    overrides = ("--set=40.width=64", "--set=40.height=48", "--set=40.length=5", "--set=3.steps=2")
    mp4 = _run(tiny_models_dir, tmp_path, GENERATE, REPO / "input", *overrides)
    assert _video_facts(mp4) == (128, 96, Fraction(32), 9, 0)


def _write_clip(path: Path) -> None:
    """A short clip with a moving bar and a stereo tone, as a user's video would have."""
    width, height = CLIP_SIZE
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=CLIP_FPS)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        audio = container.add_stream("aac", rate=44100)
        audio.layout = "stereo"
        for index in range(CLIP_FRAMES):
            pixels = np.full((height, width, 3), 40, dtype=np.uint8)
            pixels[:, index * 8 : index * 8 + 8] = 220
            container.mux(video.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        seconds = CLIP_FRAMES / CLIP_FPS
        tone = np.sin(np.linspace(0, 440 * 2 * np.pi * seconds, int(44100 * seconds), dtype=np.float32))
        samples = av.AudioFrame.from_ndarray(np.stack([tone, tone])[None].reshape(1, -1), format="flt", layout="stereo")
        samples.sample_rate = 44100
        container.mux(audio.encode(samples))
        container.mux(video.encode())
        container.mux(audio.encode())


def test_a_loaded_video_comes_out_smoother_and_sharper(tiny_models_dir: Path, tmp_path: Path) -> None:
    inputs = tmp_path / "input"
    inputs.mkdir()
    _write_clip(inputs / "clip.mp4")
    mp4 = _run(tiny_models_dir, tmp_path, FINISH, inputs, "--set=1.file=clip.mp4")
    width, height = CLIP_SIZE
    assert _video_facts(mp4) == (2 * width, 2 * height, Fraction(2 * CLIP_FPS), 2 * CLIP_FRAMES - 1, 1)
