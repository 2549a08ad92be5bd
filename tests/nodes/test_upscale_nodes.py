"""The upscale nodes: ComfyUI's UpscaleModelLoader and ImageUpscaleWithModel sockets, and VideoUpscaleWithModel
streaming a VIDEO (from memory and from a file) while keeping its frame rate and audio."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import pytest
import torch

from graph.spec import NodeSpec
from models.folders import ModelFolders
from models.memory import MODELS_SERVICE, ModelManager
from models.tiny.upscale import TINY_UPSCALE_NAMES, write_tiny_upscale_models
from models.upscale.tiling import TileOptions, upscale_batches
from nodes import upscale
from nodes.folders import Folders
from nodes.media.decode import FrameSelection
from nodes.media.streaming import keeps_in_memory
from nodes.media.video import (
    StreamedFramesError,
    VideoFromBatches,
    VideoFromComponents,
    VideoFromFile,
    joined_frames,
)
from nodes.model_files import MODEL_FOLDERS_SERVICE
from nodes.upscale import ImageUpscaleWithModel, UpscaleModelLoader, VideoUpscaleWithModel
from nodes.video_save import SaveVideo
from tests.nodes.node_runner import NodeRunner

SAMPLE_VIDEO = Path(__file__).resolve().parents[2] / "input" / "reelgraph_sample.mp4"


@pytest.fixture(scope="module")
def upscale_models(tmp_path_factory: pytest.TempPathFactory) -> ModelFolders:
    models_dir = tmp_path_factory.mktemp("upscale_node_weights")
    write_tiny_upscale_models(models_dir)
    return ModelFolders(models_dir)


@pytest.fixture
def runner(tmp_path: Path, upscale_models: ModelFolders, manager: ModelManager) -> NodeRunner:
    services = {MODELS_SERVICE: manager, MODEL_FOLDERS_SERVICE: upscale_models}
    return NodeRunner(Folders.under(tmp_path), services=services)


def test_sockets_match_comfyui(upscale_models: ModelFolders) -> None:
    loader = UpscaleModelLoader.bound_to_models(upscale_models)
    NodeSpec.from_class("UpscaleModelLoader", loader)  # registers as the registry checks it
    assert list(loader.INPUT_TYPES()) == ["required"]
    (name, (choices, _options)), *rest = loader.INPUT_TYPES()["required"].items()
    assert (name, rest) == ("model_name", [])
    assert sorted(choices) == sorted(TINY_UPSCALE_NAMES)
    assert loader.RETURN_TYPES == ("UPSCALE_MODEL",)
    inputs = ImageUpscaleWithModel.INPUT_TYPES()
    assert list(inputs) == ["required"]
    assert [(name, kind) for name, (kind, _options) in inputs["required"].items()] == [
        ("upscale_model", "UPSCALE_MODEL"),
        ("image", "IMAGE"),
    ]
    assert ImageUpscaleWithModel.RETURN_TYPES == ("IMAGE",)
    assert set(upscale.NODE_CLASS_MAPPINGS) == {"UpscaleModelLoader", "ImageUpscaleWithModel", "VideoUpscaleWithModel"}


def test_image_upscale_with_model(runner: NodeRunner) -> None:
    (model,) = runner.result(UpscaleModelLoader, model_name="RealESRGAN_x2plus.pth")
    image = torch.rand(3, 24, 36, 3, generator=torch.Generator().manual_seed(0))
    (upscaled,) = runner.result(ImageUpscaleWithModel, upscale_model=model, image=image)
    assert upscaled.shape == (3, 48, 72, 3) and upscaled.dtype == torch.float32
    assert runner.progress[-1] == (3, 3)


def test_a_missing_file_and_a_bad_image_are_named(runner: NodeRunner) -> None:
    with pytest.raises(ValueError, match=r"model_name: 'nope\.pth' is not in the upscale_models folder"):
        runner.result(UpscaleModelLoader, model_name="nope.pth")
    (model,) = runner.result(UpscaleModelLoader, model_name="realesr-general-x4v3.pth")
    with pytest.raises(ValueError, match="ImageUpscaleWithModel: image must be an IMAGE"):
        runner.result(ImageUpscaleWithModel, upscale_model=model, image=torch.rand(8, 8, 3))


def test_video_upscale_keeps_rate_and_audio(runner: NodeRunner, manager: ModelManager) -> None:
    (model,) = runner.result(UpscaleModelLoader, model_name="4x-ClearRealityV1.safetensors")
    frames = torch.rand(5, 20, 28, 3, generator=torch.Generator().manual_seed(1))
    audio = {"waveform": torch.zeros(1, 2, 4800), "sample_rate": 48000}
    video = VideoFromComponents(frames, 24, audio)
    (upscaled,) = runner.result(
        VideoUpscaleWithModel, upscale_model=model, video=video, tile_size=32, overlap=8, frame_batch_size=2
    )
    assert upscaled.get_frame_rate() == Fraction(24) and upscaled.get_audio() is not None
    assert upscaled.get_dimensions() == (112, 80) and upscaled.get_frame_count() == 5
    expected = torch.cat(list(upscale_batches(manager, model, [frames], TileOptions(32, 8, 1))))
    assert float((upscaled.get_components().images - expected).abs().max()) < 1e-5
    assert [value for value, _ in runner.progress[-3:]] == [2, 4, 5]


def test_video_file_is_decoded_in_batches(runner: NodeRunner) -> None:
    (model,) = runner.result(UpscaleModelLoader, model_name="realesr-general-x4v3.pth")
    video = VideoFromFile.probed(SAMPLE_VIDEO, FrameSelection(frame_load_cap=6, width=40, height=24))
    (upscaled,) = runner.result(
        VideoUpscaleWithModel, upscale_model=model, video=video, tile_size=0, overlap=16, frame_batch_size=4
    )
    assert upscaled.get_frame_count() == 6 and upscaled.get_dimensions() == (160, 96)
    assert upscaled.get_frame_rate() == video.get_frame_rate()
    assert upscaled.get_audio() is not None


def test_bad_tile_options_name_the_node(runner: NodeRunner) -> None:
    (model,) = runner.result(UpscaleModelLoader, model_name="realesr-general-x4v3.pth")
    video = VideoFromComponents(torch.rand(1, 8, 8, 3), 24)
    with pytest.raises(ValueError, match="VideoUpscaleWithModel: overlap must be"):
        runner.result(
            VideoUpscaleWithModel, upscale_model=model, video=video, tile_size=64, overlap=32, frame_batch_size=1
        )


@pytest.mark.parametrize("probed", [4, 6, 8])  # a video's probed frame count may be off either way
def test_upscaled_batches_join_into_one_output_whatever_the_probed_count(probed: int) -> None:
    batches = [torch.full((2, 4, 4, 3), float(index)) for index in range(3)]
    assert torch.equal(joined_frames(iter(batches), probed), torch.cat(batches))


def _upscale_sample(runner: NodeRunner, video_path: Path, output: str) -> tuple[VideoFromFile, object]:
    (model,) = runner.result(UpscaleModelLoader, model_name="realesr-general-x4v3.pth")
    video = VideoFromFile.probed(video_path, FrameSelection(frame_load_cap=7, width=40, height=24))
    (upscaled,) = runner.result(
        VideoUpscaleWithModel,
        upscale_model=model,
        video=video,
        tile_size=0,
        overlap=16,
        frame_batch_size=3,
        output=output,
    )
    return video, upscaled


def test_a_streamed_video_is_upscaled_as_save_video_reads_it(runner: NodeRunner) -> None:
    video, streamed = _upscale_sample(runner, SAMPLE_VIDEO, "streamed")
    assert isinstance(streamed, VideoFromBatches) and runner.progress == []  # nothing upscaled yet
    assert streamed.get_dimensions() == (160, 96) and streamed.get_frame_count() == 7
    assert streamed.get_frame_rate() == video.get_frame_rate() and streamed.get_audio() is not None
    assert streamed.nbytes == streamed.get_audio()["waveform"].nbytes  # no frames held
    _, in_memory = _upscale_sample(runner, SAMPLE_VIDEO, "in memory")
    assert isinstance(in_memory, VideoFromComponents)
    batches = list(streamed.frame_batches()())
    assert [len(batch) for batch in batches] == [3, 3, 1]  # made a batch at a time
    assert torch.equal(torch.cat(batches), in_memory.get_components().images)

    (entry,) = runner.save(SaveVideo, video=streamed, filename_prefix="sharper", format="mp4", codec="h264")["images"]
    with av.open(str(runner.folders.by_type(entry["type"]) / entry["subfolder"] / entry["filename"])) as container:
        stream = container.streams.video[0]
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
        has_audio = bool(container.streams.audio)
    assert len(frames) == 7 and frames[0].shape == (96, 160, 3) and has_audio


def test_auto_keeps_small_outputs_in_memory() -> None:
    assert keeps_in_memory(1_000, 4_000) and not keeps_in_memory(1_001, 4_000)
    four_k_minute = 1000 * 3840 * 2160 * 3 * 4
    assert not keeps_in_memory(four_k_minute, 128 * 2**30)  # 99 GB of float frames: streamed even with 128 GiB free


def test_auto_upscales_a_small_clip_now(runner: NodeRunner) -> None:
    _, upscaled = _upscale_sample(runner, SAMPLE_VIDEO, "auto")
    assert isinstance(upscaled, VideoFromComponents) and runner.progress[-1][0] == 7


def test_a_streamed_video_that_fails_names_the_upscale_node(runner: NodeRunner, tmp_path: Path) -> None:
    copy = tmp_path / "clip.mp4"
    copy.write_bytes(SAMPLE_VIDEO.read_bytes())
    _, streamed = _upscale_sample(runner, copy, "streamed")
    copy.unlink()  # the file goes away between the upscale node and its reader
    with pytest.raises(StreamedFramesError, match=r"^VideoUpscaleWithModel \(making its frames as they are read\): "):
        list(streamed.frame_batches()())


def test_a_streamed_video_read_whole_is_made_once() -> None:
    made: list[int] = []

    def batches() -> list[torch.Tensor]:
        made.append(1)
        return [torch.full((2, 4, 6, 3), 0.25), torch.full((1, 4, 6, 3), 0.75)]

    video = VideoFromBatches("Test", batches, (6, 4), 3, Fraction(24))
    assert video.get_components().images.shape == (3, 4, 6, 3) and video.nbytes == 3 * 4 * 6 * 3 * 4
    assert [len(batch) for batch in video.frame_batches(2)()] == [2, 1] and made == [1]
