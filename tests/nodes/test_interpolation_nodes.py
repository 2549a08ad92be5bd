"""The frame interpolation nodes: the loader's choices, frame counts and rates, originals kept bit-exact, scene
cuts, the VIDEO variant keeping its audio, and a tiny RIFE checkpoint through the loader."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest
import torch

from models.folders import ModelFolders
from models.interpolation.classical import FlowBlendInterpolator
from models.memory import MODELS_SERVICE, ModelManager
from nodes.folders import Folders
from nodes.interpolation import (
    CLASSICAL_CHOICE,
    NODE_CLASS_MAPPINGS,
    NODE_DISPLAY_NAME_MAPPINGS,
    FrameInterpolate,
    FrameInterpolateVideo,
    FrameInterpolationModelLoader,
)
from nodes.media.video import VideoFromBatches, VideoFromComponents
from nodes.model_files import MODEL_FOLDERS_SERVICE
from tests.models.interpolation.synthetic import moving_square_clip, two_scene_clip
from tests.nodes.node_runner import NodeRunner

RIFE_FILE = "rife46.pth"
RUN_OPTIONS = {"scene_cut_threshold": 4.0, "batch_size": 2, "clear_cache_after_n_frames": 10}


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    """A models folder holding the tiny interpolation files (RIFE 4.6 / 4.7 layouts, a FILM export)."""
    from models.tiny.interpolation import write_tiny_interpolation_files

    root = tmp_path / "models"
    write_tiny_interpolation_files(root)
    return root


@pytest.fixture
def runner(tmp_path: Path, models_dir: Path, manager: ModelManager) -> NodeRunner:
    services = {MODELS_SERVICE: manager, MODEL_FOLDERS_SERVICE: ModelFolders(models_dir)}
    return NodeRunner(Folders.under(tmp_path), services=services)


def classical(runner: NodeRunner) -> FlowBlendInterpolator:
    (model,) = runner.result(FrameInterpolationModelLoader, model_name=CLASSICAL_CHOICE)
    return model


def test_every_node_has_a_display_name() -> None:
    assert set(NODE_CLASS_MAPPINGS) == set(NODE_DISPLAY_NAME_MAPPINGS)
    assert all(NODE_CLASS_MAPPINGS[name].__name__ == name for name in NODE_CLASS_MAPPINGS)


def test_the_loader_offers_the_classical_method_first_then_the_folders_files(models_dir: Path) -> None:
    bound = FrameInterpolationModelLoader.bound_to_models(ModelFolders(models_dir))
    choices, options = bound.INPUT_TYPES()["required"]["model_name"]

    assert choices[0] == CLASSICAL_CHOICE
    assert RIFE_FILE in choices
    assert options["model_folder"] == "frame_interpolation"


def test_multiplier_makes_the_frames_and_keeps_the_originals(runner: NodeRunner) -> None:
    frames = moving_square_clip(5, size=32)

    images, fps = runner.result(
        FrameInterpolate,
        frames=frames,
        interpolation_model=classical(runner),
        multiplier=3,
        target_fps=0.0,
        fps=16.0,
        **RUN_OPTIONS,
    )

    assert images.shape == (13, 32, 32, 3)
    assert fps == 48.0
    assert torch.equal(images[::3], frames)
    assert runner.progress[-1] == (8, 8)


def test_target_fps_24_to_60(runner: NodeRunner) -> None:
    frames = moving_square_clip(9, size=16)

    images, fps = runner.result(
        FrameInterpolate,
        frames=frames,
        interpolation_model=classical(runner),
        multiplier=2,
        target_fps=60.0,
        fps=24.0,
        **RUN_OPTIONS,
    )

    assert images.shape[0] == 21  # 8 / 24 s at 60 fps: frames at k / 60 for k = 0..20
    assert fps == 60.0
    assert torch.equal(images[::5], frames[::2])


def test_no_frame_is_blended_across_a_scene_cut(runner: NodeRunner) -> None:
    frames = two_scene_clip(4)

    images, _ = runner.result(
        FrameInterpolate,
        frames=frames,
        interpolation_model=classical(runner),
        multiplier=2,
        target_fps=0.0,
        fps=16.0,
        **RUN_OPTIONS,
    )

    assert torch.equal(images[7], frames[4])  # halfway across the cut: the later scene's first frame
    assert not torch.equal(images[5], frames[2]) and not torch.equal(images[5], frames[3])  # made within a scene


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"frames": torch.rand(3, 8, 8, 4)}, "FrameInterpolate: frames must be an IMAGE"),
        ({"multiplier": 1}, "FrameInterpolate: multiplier must be 2..16"),
        ({"interpolation_model": "rife"}, "FrameInterpolate: interpolation_model must come from"),
        ({"scene_cut_threshold": -1.0}, "FrameInterpolate: scene cut threshold"),
    ],
)
def test_bad_inputs_name_the_node(runner: NodeRunner, change: dict, message: str) -> None:
    inputs = {
        "frames": torch.rand(3, 8, 8, 3),
        "interpolation_model": classical(runner),
        "multiplier": 2,
        "target_fps": 0.0,
        "fps": 16.0,
        **RUN_OPTIONS,
        **change,
    }
    with pytest.raises(ValueError, match=message):
        runner.result(FrameInterpolate, **inputs)


def test_a_video_keeps_its_audio_and_gets_the_new_rate(runner: NodeRunner) -> None:
    frames = moving_square_clip(4, size=16)
    audio = {"waveform": torch.rand(1, 2, 8000), "sample_rate": 32000}
    video = VideoFromComponents(frames, 23.976, audio)

    (made,) = runner.result(
        FrameInterpolateVideo,
        video=video,
        interpolation_model=classical(runner),
        multiplier=2,
        target_fps=0.0,
        **RUN_OPTIONS,
    )

    assert made.get_frame_rate() == Fraction(48000, 1001)
    assert made.get_frame_count() == 7
    assert torch.equal(made.get_components().images[::2], frames)
    assert made.get_audio() is not None and torch.equal(made.get_audio()["waveform"], audio["waveform"])


def test_a_tiny_rife_checkpoint_interpolates_through_the_nodes(runner: NodeRunner) -> None:
    (model,) = runner.result(FrameInterpolationModelLoader, model_name=RIFE_FILE)
    frames = moving_square_clip(3, size=32)

    images, fps = runner.result(
        FrameInterpolate, frames=frames, interpolation_model=model, multiplier=4, target_fps=0.0, fps=8.0, **RUN_OPTIONS
    )

    assert images.shape == (9, 32, 32, 3)
    assert fps == 32.0
    assert torch.equal(images[::4], frames)
    assert torch.isfinite(images).all() and float(images.min()) >= 0.0 and float(images.max()) <= 1.0


def test_a_missing_model_file_is_named(runner: NodeRunner) -> None:
    with pytest.raises(ValueError, match=r"model_name: 'rife49\.pth' is not in the frame_interpolation folder"):
        runner.result(FrameInterpolationModelLoader, model_name="rife49.pth")


def test_the_scale_factor_reaches_rife_and_film_refuses_one(runner: NodeRunner) -> None:
    (model,) = runner.result(FrameInterpolationModelLoader, model_name=RIFE_FILE, scale_factor=0.5)
    assert model.pad_multiple == 64  # the flow at half size needs twice the padding
    with pytest.raises(ValueError, match=r"film_net_fp32\.pt: FILM has no scale_factor"):
        runner.result(FrameInterpolationModelLoader, model_name="film_net_fp32.pt", scale_factor=0.5)


def test_ensemble_reaches_rife_and_the_others_refuse_it(runner: NodeRunner) -> None:
    (model,) = runner.result(FrameInterpolationModelLoader, model_name=RIFE_FILE, ensemble=True)
    assert model.describe().endswith("ensemble)")
    with pytest.raises(ValueError, match=r"film_net_fp32\.pt: FILM has no ensemble mode"):
        runner.result(FrameInterpolationModelLoader, model_name="film_net_fp32.pt", ensemble=True)
    with pytest.raises(ValueError, match=r"'classical \(no model\)' has no scale_factor nor ensemble"):
        runner.result(FrameInterpolationModelLoader, model_name=CLASSICAL_CHOICE, ensemble=True)


def test_a_streamed_video_gives_the_frames_kept_in_memory(runner: NodeRunner) -> None:
    frames = two_scene_clip(20)  # 40 frames: more than one streamed window; a cut between 19 and 20
    audio = {"waveform": torch.rand(1, 2, 8000), "sample_rate": 32000}
    video = VideoFromComponents(frames, 16, audio, {"title": "take 3"})
    inputs = {"video": video, "interpolation_model": classical(runner), "multiplier": 3, "target_fps": 0.0}

    (streamed,) = runner.result(FrameInterpolateVideo, **inputs, **RUN_OPTIONS, output="streamed")
    assert isinstance(streamed, VideoFromBatches) and runner.progress == []  # nothing made yet
    (in_memory,) = runner.result(FrameInterpolateVideo, **inputs, **RUN_OPTIONS, output="in memory")

    assert isinstance(in_memory, VideoFromComponents)
    assert streamed.get_frame_count() == in_memory.get_frame_count() == 118
    assert streamed.get_frame_rate() == in_memory.get_frame_rate() == 48
    assert streamed.metadata == in_memory.metadata == {"title": "take 3"}
    made = torch.cat(list(streamed.frame_batches()()))
    assert torch.equal(made, in_memory.get_components().images)
    assert torch.equal(made[58], frames[19]) and torch.equal(made[59], frames[20])  # no blend across the cut


def test_a_bad_output_choice_is_named(runner: NodeRunner) -> None:
    video = VideoFromComponents(moving_square_clip(3, size=16), 16)
    with pytest.raises(ValueError, match="FrameInterpolateVideo: output must be one of auto, in memory, streamed"):
        runner.result(
            FrameInterpolateVideo,
            video=video,
            interpolation_model=classical(runner),
            multiplier=2,
            target_fps=0.0,
            **RUN_OPTIONS,
            output="lazy",
        )
