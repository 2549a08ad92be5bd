"""A clip finished without ever being held whole: a video file streamed through FrameInterpolateVideo and
VideoUpscaleWithModel (both ``output: streamed``) into Save Video, decoded back with PyAV."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import pytest

from models.folders import ModelFolders
from models.memory import MODELS_SERVICE, ModelManager
from models.tiny.interpolation import write_tiny_interpolation_files
from models.tiny.upscale import write_tiny_upscale_models
from nodes.folders import Folders
from nodes.interpolation import CLASSICAL_CHOICE, FrameInterpolateVideo, FrameInterpolationModelLoader
from nodes.media.decode import FrameSelection
from nodes.media.video import VideoFromBatches, VideoFromFile
from nodes.model_files import MODEL_FOLDERS_SERVICE
from nodes.upscale import UpscaleModelLoader, VideoUpscaleWithModel
from nodes.video_save import SaveVideo
from tests.nodes.node_runner import NodeRunner

SAMPLE_VIDEO = Path(__file__).resolve().parents[2] / "input" / "reelgraph_sample.mp4"
FRAMES = 9


@pytest.fixture
def runner(tmp_path: Path, manager: ModelManager) -> NodeRunner:
    models_dir = tmp_path / "models"
    write_tiny_interpolation_files(models_dir)
    write_tiny_upscale_models(models_dir)
    services = {MODELS_SERVICE: manager, MODEL_FOLDERS_SERVICE: ModelFolders(models_dir)}
    return NodeRunner(Folders.under(tmp_path), services=services)


@pytest.mark.parametrize("interpolator", [CLASSICAL_CHOICE, "rife46.pth"])
def test_a_file_streams_through_interpolation_and_upscaling_into_an_mp4(runner: NodeRunner, interpolator: str) -> None:
    video = VideoFromFile.probed(SAMPLE_VIDEO, FrameSelection(frame_load_cap=FRAMES, width=40, height=24))
    (interpolation_model,) = runner.result(FrameInterpolationModelLoader, model_name=interpolator)
    (smoother,) = runner.result(
        FrameInterpolateVideo,
        video=video,
        interpolation_model=interpolation_model,
        multiplier=2,
        target_fps=0.0,
        scene_cut_threshold=4.0,
        batch_size=2,
        clear_cache_after_n_frames=10,
        output="streamed",
    )
    (upscale_model,) = runner.result(UpscaleModelLoader, model_name="RealESRGAN_x2plus.pth")
    (sharper,) = runner.result(
        VideoUpscaleWithModel,
        upscale_model=upscale_model,
        video=smoother,
        tile_size=0,
        overlap=16,
        frame_batch_size=4,
        output="streamed",
    )
    assert isinstance(smoother, VideoFromBatches) and isinstance(sharper, VideoFromBatches)
    assert runner.progress == []  # no frame decoded, made or upscaled before Save Video reads them

    ui = runner.save(SaveVideo, video=sharper, filename_prefix="finished", format="mp4", codec="h264")
    (entry,) = ui["images"]
    path = runner.folders.by_type(entry["type"]) / entry["subfolder"] / entry["filename"]
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
        rate = stream.average_rate
        has_audio = bool(container.streams.audio)
    assert len(frames) == 2 * FRAMES - 1 and frames[0].shape == (48, 80, 3)
    assert rate == 2 * Fraction(video.get_frame_rate()) and has_audio
    assert max(value for value, _ in runner.progress) == 2 * FRAMES - 1  # Save Video's bar counted every frame
