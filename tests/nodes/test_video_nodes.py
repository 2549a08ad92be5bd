"""Video nodes on real files: load with every option, save in every format, decode back and read the workflow back."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
import torch
from PIL import Image

from graph.cache import estimate_nbytes
from graph.errors import ExecutionInterrupted
from nodes.folders import Folders
from nodes.frames import FramePingPong, FrameReverse
from nodes.media.audio import audio_duration
from nodes.media.provenance import read_embedded_workflow
from nodes.media.video import Video, VideoFromFile
from nodes.video import CreateVideo, GetVideoComponents, LoadVideo, LoadVideoFrames
from nodes.video_save import (
    PreviewVideo,
    SaveAnimatedPNG,
    SaveAnimatedWEBP,
    SaveVideo,
    SaveVideoAs,
    SaveWEBM,
)
from tests.nodes.media.synthetic import frame_index_of, indexed_frames, psnr, sine_audio, write_video
from tests.nodes.node_runner import PROMPT, WORKFLOW, NodeRunner

FRAMES = 24
WIDTH, HEIGHT = 96, 64
AUDIO_SECONDS = FRAMES / 24


@pytest.fixture
def folders(tmp_path: Path) -> Folders:
    folders = Folders.under(tmp_path)
    for folder in (folders.input_dir, folders.output_dir, folders.temp_dir):
        folder.mkdir(parents=True)
    return folders


@pytest.fixture
def runner(folders: Folders) -> NodeRunner:
    return NodeRunner(folders)


@pytest.fixture
def source(folders: Folders) -> np.ndarray:
    """24 indexed frames at 24 fps with a 1 s stereo tone, written as input/clip.mp4."""
    frames = indexed_frames(FRAMES, WIDTH, HEIGHT)
    write_video(folders.input_dir / "clip.mp4", frames, fps=24, audio=sine_audio(AUDIO_SECONDS))
    return frames


def as_tensor(frames: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(frames).float() / 255.0


def decode_file(path: Path) -> tuple[np.ndarray, Fraction, float | None]:
    """Frames (rgb24), the average frame rate and the audio duration in seconds (None without audio)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate
        frames = np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(stream)])
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return frames, rate, None
        samples = sum(frame.samples for frame in container.decode(container.streams.audio[0]))
        return frames, rate, samples / container.streams.audio[0].rate


def saved_path(folders: Folders, entry: dict[str, str]) -> Path:
    return folders.by_type(entry["type"]) / entry["subfolder"] / entry["filename"]


def assert_workflow_embedded(path: Path) -> None:
    found = read_embedded_workflow(path)
    assert found.prompt == PROMPT and found.workflow == WORKFLOW


def test_loaders_list_the_input_folders_videos(runner: NodeRunner, folders: Folders, source: np.ndarray) -> None:
    (folders.input_dir / "still.png").write_bytes(b"")
    (folders.input_dir / "shots").mkdir()
    write_video(folders.input_dir / "shots" / "b.webm", indexed_frames(3, WIDTH, HEIGHT))
    choices = runner.bind(LoadVideo).INPUT_TYPES()["required"]["file"]
    assert choices[0] == ["clip.mp4", "shots/b.webm"] and choices[1]["video_upload"] is True
    assert runner.bind(LoadVideoFrames).INPUT_TYPES()["required"]["video"][0] == ["clip.mp4", "shots/b.webm"]
    assert LoadVideo.INPUT_TYPES()["required"]["file"][0] == []  # unbound: no folders, no choices


def test_load_video_and_get_components(runner: NodeRunner, source: np.ndarray) -> None:
    (video,) = runner.call(LoadVideo, file="clip.mp4")
    assert isinstance(video, VideoFromFile)
    assert video.get_dimensions() == (WIDTH, HEIGHT) and video.get_frame_rate() == 24
    assert video.get_frame_count() == FRAMES
    images, audio, fps = runner.call(GetVideoComponents, video=video)
    assert images.shape == (FRAMES, HEIGHT, WIDTH, 3) and images.dtype == torch.float32 and fps == 24.0
    assert [frame_index_of(frame.numpy()) for frame in images] == list(range(FRAMES))
    assert psnr(images.numpy(), source) > 35
    assert audio["waveform"].shape[:2] == (1, 2) and abs(audio_duration(audio) - AUDIO_SECONDS) < 0.05


def test_load_video_refuses_bad_files_naming_them(runner: NodeRunner, folders: Folders, source: np.ndarray) -> None:
    clip = (folders.input_dir / "clip.mp4").read_bytes()
    (folders.input_dir / "cut.mp4").write_bytes(clip[:400])
    (folders.input_dir / "notes.mp4").write_bytes(b"just some text, not a video")
    for name in ("cut.mp4", "notes.mp4"):
        with pytest.raises(ValueError, match=name.replace(".", r"\.")):
            runner.call(LoadVideo, file=name)
    with pytest.raises(ValueError, match="does not exist"):
        runner.call(LoadVideo, file="missing.mp4")
    with pytest.raises(ValueError, match=r"\.\."):
        runner.call(LoadVideo, file="../clip.mp4")


def test_load_video_frames_applies_every_option_and_cuts_the_audio(runner: NodeRunner, source: np.ndarray) -> None:
    images, count, audio, fps = runner.call(
        LoadVideoFrames, video="clip.mp4", skip_first_frames=2, select_every_nth=3, frame_load_cap=5
    )
    assert [frame_index_of(frame.numpy()) for frame in images] == [2, 5, 8, 11, 14] and count == 5
    assert fps == 8.0  # 24 fps, every 3rd frame
    assert abs(audio_duration(audio) - 5 / 8) < 0.05
    assert runner.progress and runner.progress[-1][0] == 5
    halved, count, _audio, fps = runner.call(LoadVideoFrames, video="clip.mp4", force_rate=12.0, custom_width=48)
    assert fps == 12.0 and count == FRAMES // 2 and halved.shape[1:] == (32, 48, 3)


def test_create_video_then_save_video_round_trips_frames_audio_and_workflow(
    runner: NodeRunner, folders: Folders, source: np.ndarray
) -> None:
    tone = {"waveform": torch.from_numpy(sine_audio(AUDIO_SECONDS))[None], "sample_rate": 44100}
    (video,) = runner.call(CreateVideo, images=as_tensor(source), fps=24.0, audio=tone)
    ui = runner.save(SaveVideo, video=video, filename_prefix="video/take", format="auto", codec="auto")
    assert ui["animated"] == (True,)
    (entry,) = ui["images"]
    assert entry == {"filename": "take_00001_.mp4", "subfolder": "video", "type": "output"}
    frames, rate, audio_seconds = decode_file(saved_path(folders, entry))
    assert frames.shape == source.shape and rate == 24
    assert [frame_index_of(frame) for frame in frames] == list(range(FRAMES))
    assert psnr(frames, source) > 32
    assert audio_seconds is not None and abs(audio_seconds - AUDIO_SECONDS) < 0.05
    assert_workflow_embedded(saved_path(folders, entry))
    assert max(value for value, _ in runner.progress) == FRAMES


def test_videos_report_their_memory_to_the_output_cache(runner: NodeRunner, source: np.ndarray) -> None:
    images = as_tensor(source)
    tone = {"waveform": torch.zeros((1, 2, 4410)), "sample_rate": 44100}
    (video,) = runner.call(CreateVideo, images=images, fps=24.0, audio=tone)
    assert estimate_nbytes((video,)) == images.nbytes + tone["waveform"].nbytes
    (from_file,) = runner.call(LoadVideo, file="clip.mp4")
    assert estimate_nbytes((from_file,)) == 0  # nothing decoded is held


def test_frame_ops_between_loading_and_saving(runner: NodeRunner, folders: Folders, source: np.ndarray) -> None:
    images, _count, audio, fps = runner.call(LoadVideoFrames, video="clip.mp4", frame_load_cap=10)
    (reversed_frames,) = runner.call(FrameReverse, images=images)
    (bounced,) = runner.call(FramePingPong, images=reversed_frames, drop_turn_frames=True)
    ui = runner.save(
        SaveVideoAs,
        images=bounced,
        filename_prefix="ops",
        format="webm (vp9)",
        fps=fps,
        crf=18,
        pixel_format="auto",
        save_output=True,
        audio=audio,
    )
    frames, rate, audio_seconds = decode_file(saved_path(folders, ui["images"][0]))
    expected = [*range(9, -1, -1), *range(1, 9)]
    assert [frame_index_of(frame) for frame in frames] == expected and rate == 24
    assert audio_seconds is not None and abs(audio_seconds - 10 / 24) < 0.05  # the loaded frames' sound


def test_save_video_streams_a_loaded_file(runner: NodeRunner, folders: Folders, source: np.ndarray) -> None:
    (video,) = runner.call(LoadVideo, file="clip.mp4")
    (entry,) = runner.save(SaveVideo, video=video, filename_prefix="again", format="mp4", codec="h264")["images"]
    frames, rate, audio_seconds = decode_file(saved_path(folders, entry))
    assert len(frames) == FRAMES and rate == 24 and audio_seconds is not None
    assert psnr(frames, source) > 30  # two generations of h264


@pytest.mark.parametrize(("codec", "bound"), [("vp9", 28.0), ("av1", 28.0)])
def test_save_webm(runner: NodeRunner, folders: Folders, source: np.ndarray, codec: str, bound: float) -> None:
    ui = runner.save(SaveWEBM, images=as_tensor(source), filename_prefix="web", codec=codec, fps=12.0, crf=30.0)
    (entry,) = ui["images"]
    assert entry["filename"].endswith(".webm") and ui["animated"] == (True,)
    frames, rate, _audio = decode_file(saved_path(folders, entry))
    assert len(frames) == FRAMES and rate == 12 and psnr(frames, source) > bound
    assert_workflow_embedded(saved_path(folders, entry))


def pillow_frames(path: Path) -> tuple[list[np.ndarray], list[int | None]]:
    """Every frame (Pillow reads animated WebP, which FFmpeg cannot) and its duration in ms."""
    frames, durations = [], []
    with Image.open(path) as image:
        for index in range(getattr(image, "n_frames", 1)):
            image.seek(index)
            frames.append(np.asarray(image.convert("RGB")))
            durations.append(image.info.get("duration"))
    return frames, durations


def test_save_animated_webp_lossless_and_lossy(runner: NodeRunner, folders: Folders, source: np.ndarray) -> None:
    clip = as_tensor(source[:8])
    for lossless, bound in ((True, 60.0), (False, 28.0)):
        ui = runner.save(
            SaveAnimatedWEBP,
            images=clip,
            filename_prefix="anim",
            fps=8.0,
            lossless=lossless,
            quality=90,
            method="fastest",
        )
        (entry,) = ui["images"]
        assert ui["animated"] == (True,) and entry["filename"].endswith(".webp")
        frames, durations = pillow_frames(saved_path(folders, entry))
        assert len(frames) == 8 and durations[0] == 125
        assert psnr(np.stack(frames), source[:8]) > bound
        assert_workflow_embedded(saved_path(folders, entry))


def test_save_animated_png(runner: NodeRunner, folders: Folders, source: np.ndarray) -> None:
    ui = runner.save(SaveAnimatedPNG, images=as_tensor(source[:6]), filename_prefix="apng", fps=6.0, compress_level=1)
    (entry,) = ui["images"]
    frames, _durations = pillow_frames(saved_path(folders, entry))
    assert len(frames) == 6 and psnr(np.stack(frames), source[:6]) == float("inf")  # lossless
    assert_workflow_embedded(saved_path(folders, entry))


@pytest.mark.parametrize(
    ("video_format", "extension", "bound", "has_audio"),
    [
        ("mp4 (h264)", "mp4", 32.0, True),
        ("mp4 (h265)", "mp4", 30.0, True),
        ("webm (vp9)", "webm", 30.0, True),
        ("gif", "gif", 24.0, False),
    ],
)
def test_save_video_as_each_format(
    runner: NodeRunner,
    folders: Folders,
    source: np.ndarray,
    video_format: str,
    extension: str,
    bound: float,
    has_audio: bool,
) -> None:
    tone = {"waveform": torch.from_numpy(sine_audio(AUDIO_SECONDS))[None], "sample_rate": 44100}
    ui = runner.save(
        SaveVideoAs,
        images=as_tensor(source),
        filename_prefix="as/clip",
        format=video_format,
        fps=24.0,
        crf=18,
        pixel_format="yuv444p" if extension == "gif" else "auto",  # ignored where it means nothing
        save_output=True,
        audio=tone,
    )
    (entry,) = ui["images"]
    path = saved_path(folders, entry)
    assert path.suffix == f".{extension}" and ui["animated"] == (True,)
    if extension == "gif":
        frames = np.stack(pillow_frames(path)[0])
        audio_seconds = None
    else:
        frames, rate, audio_seconds = decode_file(path)
        assert rate == 24
    assert len(frames) == FRAMES and psnr(frames, source) > bound
    assert (audio_seconds is not None) == has_audio
    if audio_seconds is not None:
        assert abs(audio_seconds - AUDIO_SECONDS) < 0.05
    assert_workflow_embedded(path)


def test_save_video_as_png_sequence_and_preview_to_temp(
    runner: NodeRunner, folders: Folders, source: np.ndarray
) -> None:
    common: dict[str, Any] = {"fps": 24.0, "crf": 18, "pixel_format": "auto"}
    ui = runner.save(
        SaveVideoAs,
        images=as_tensor(source[:3]),
        filename_prefix="seq/f",
        format="png sequence",
        save_output=True,
        **common,
    )
    assert [entry["filename"] for entry in ui["images"]] == ["f_00001_.png", "f_00002_.png", "f_00003_.png"]
    assert "animated" not in ui
    with Image.open(saved_path(folders, ui["images"][1])) as image:
        assert frame_index_of(np.asarray(image.convert("RGB"))) == 1
    assert_workflow_embedded(saved_path(folders, ui["images"][0]))
    preview = runner.save(
        SaveVideoAs, images=as_tensor(source[:3]), filename_prefix="p", format="mp4 (h264)", save_output=False, **common
    )
    assert preview["images"][0]["type"] == "temp" and saved_path(folders, preview["images"][0]).is_file()


def test_odd_sizes_are_padded_for_420_codecs(runner: NodeRunner, folders: Folders) -> None:
    odd = indexed_frames(4, 95, 63)
    ui = runner.save(
        SaveVideoAs,
        images=as_tensor(odd),
        filename_prefix="odd",
        format="mp4 (h264)",
        fps=24.0,
        crf=18,
        pixel_format="auto",
        save_output=True,
    )
    frames, _rate, _audio = decode_file(saved_path(folders, ui["images"][0]))
    assert frames.shape == (4, 64, 96, 3)
    assert psnr(frames[:, :63, :95], odd) > 30


def test_preview_video_writes_a_playable_temp_file(runner: NodeRunner, folders: Folders, source: np.ndarray) -> None:
    (video,) = runner.call(LoadVideo, file="clip.mp4")
    ui = runner.save(PreviewVideo, video=video)
    (entry,) = ui["images"]
    assert entry["type"] == "temp" and ui["animated"] == (True,)
    frames, _rate, audio_seconds = decode_file(saved_path(folders, entry))
    assert len(frames) == FRAMES and audio_seconds is not None


def test_bad_frames_are_refused_clearly(runner: NodeRunner) -> None:
    with pytest.raises(ValueError, match="at least one frame"):
        runner.call(CreateVideo, images=torch.zeros((0, 8, 8, 3)), fps=24.0)
    with pytest.raises(ValueError, match="at least one frame"):
        runner.save(SaveWEBM, images=torch.zeros((0, 8, 8, 3)), filename_prefix="x", codec="vp9", fps=24.0, crf=30.0)


def test_an_interrupt_stops_a_save_and_leaves_no_file(runner: NodeRunner, folders: Folders, source: np.ndarray) -> None:
    runner.interrupt.set()
    (video,) = runner.call(CreateVideo, images=as_tensor(source), fps=24.0)
    assert isinstance(video, Video)
    with pytest.raises(ExecutionInterrupted):
        runner.save(SaveVideo, video=video, filename_prefix="stop", format="auto", codec="auto")
    assert list(folders.output_dir.rglob("*")) == []
