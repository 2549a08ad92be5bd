"""Probing and selective frame decoding on real files written with ``synthetic``."""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
import torch
from PIL import Image

from nodes.media import decode
from nodes.media.decode import (
    FrameSelection,
    VideoInfo,
    iter_video_frames,
    load_video_frames,
    probe_video,
    selected_time_span,
)
from nodes.media.errors import MediaError
from tests.nodes.media.synthetic import frame_index_of, indexed_frames, psnr, sine_audio, write_audio, write_video

FRAMES = 30
SOURCE = indexed_frames(FRAMES)
VFR_PTS_MS = [0, 100, 150, 200, 400, 450, 500, 700, 750, 800]


def _write_timed(path: Path, frames: np.ndarray, pts_ms: list[int]) -> Path:
    """Encode ``frames`` with explicit millisecond timestamps (variable rate, or a stream not starting at 0)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        for pixels, pts in zip(frames, pts_ms, strict=True):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="rgb24")
            frame.pts, frame.time_base = pts, Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def _faststart_copy(source: Path, target: Path) -> Path:
    """Remux an mp4 with its index first, so a truncated copy still opens."""
    with av.open(str(source)) as reader, av.open(str(target), "w", options={"movflags": "faststart"}) as writer:
        streams = {stream.index: writer.add_stream_from_template(stream) for stream in reader.streams}
        for packet in reader.demux():
            if packet.dts is not None:
                packet.stream = streams[packet.stream.index]
                writer.mux(packet)
    return target


def _cut(source: Path, target: Path, size: int) -> Path:
    target.write_bytes(source.read_bytes()[:size])
    return target


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("videos")
    audio = sine_audio(FRAMES / 24)
    files = {
        "mp4": write_video(folder / "a.mp4", SOURCE, 24, audio=audio),
        "webm": write_video(folder / "b.webm", SOURCE, 24, audio=audio),
        "mkv": write_video(folder / "c.mkv", SOURCE, Fraction(30000, 1001), audio=sine_audio(1.001)),
        "ntsc": write_video(folder / "d.mp4", SOURCE, Fraction(30000, 1001)),
        "long": write_video(folder / "long.mp4", indexed_frames(60), 24),
        "vfr_mkv": _write_timed(folder / "vfr.mkv", SOURCE[:10], VFR_PTS_MS),
        "vfr_mp4": _write_timed(folder / "vfr.mp4", SOURCE[:10], VFR_PTS_MS),
        "late_mkv": _write_timed(folder / "late.mkv", SOURCE[:10], [1000 + 40 * i for i in range(10)]),
        "late_mp4": _write_timed(folder / "late.mp4", SOURCE[:10], [1000 + 40 * i for i in range(10)]),
        "wav": write_audio(folder / "tone.wav", sine_audio(0.5)),
    }
    files["faststart"] = _faststart_copy(files["mp4"], folder / "faststart.mp4")
    return files


def _indices(frames: torch.Tensor | np.ndarray) -> list[int]:
    return [frame_index_of(frame) for frame in np.asarray(frames)]


# --- probing ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "rate", "codec", "container", "exact", "audio"),
    [
        ("mp4", Fraction(24), "h264", "mp4", True, (44100, 2)),
        ("webm", Fraction(24), "vp9", "webm", False, (48000, 2)),
        ("mkv", Fraction(30000, 1001), "h264", "matroska", False, (44100, 2)),
        ("ntsc", Fraction(30000, 1001), "h264", "mp4", True, None),
    ],
)
def test_probe_reports_stream_fields(
    files: dict[str, Path], key: str, rate: Fraction, codec: str, container: str, exact: bool, audio: Any
) -> None:
    info = probe_video(files[key])
    assert isinstance(info, VideoInfo)
    assert (info.path, info.width, info.height) == (files[key], 96, 64)
    assert info.frame_rate == rate and isinstance(info.frame_rate, Fraction)
    assert info.frame_count == FRAMES
    assert info.frame_count_exact is exact
    assert info.duration == pytest.approx(FRAMES / rate, abs=0.002)
    assert (info.codec, info.container) == (codec, container)
    assert info.has_audio is (audio is not None)
    assert (info.audio_sample_rate, info.audio_channels) == (audio or (None, None))


def test_probe_reads_container_tags(files: dict[str, Path]) -> None:
    assert probe_video(files["mp4"]).metadata["major_brand"] == "isom"
    assert "ENCODER" in probe_video(files["mkv"]).metadata


def test_probe_duration_ignores_a_late_start(files: dict[str, Path]) -> None:
    for key in ("late_mkv", "late_mp4"):
        info = probe_video(files[key])
        assert info.duration == pytest.approx(0.4, abs=0.002)
        assert info.frame_count == 10


# --- selection ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["mp4", "webm", "mkv"])
def test_loads_every_frame_faithfully(files: dict[str, Path], key: str) -> None:
    frames = load_video_frames(files[key])
    assert frames.shape == (FRAMES, 64, 96, 3) and frames.dtype == torch.float32
    assert 0.0 <= frames.min() and frames.max() <= 1.0
    assert _indices(frames) == list(range(FRAMES))
    assert psnr(frames.numpy(), SOURCE / 255.0) > 30


@pytest.mark.parametrize("key", ["mp4", "webm", "mkv"])
@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"skip_first_frames": 5}, list(range(5, FRAMES))),
        ({"select_every_nth": 3}, list(range(0, FRAMES, 3))),
        ({"frame_load_cap": 4}, [0, 1, 2, 3]),
        ({"skip_first_frames": 5, "select_every_nth": 3, "frame_load_cap": 4}, [5, 8, 11, 14]),
        ({"skip_first_frames": 29}, [29]),
        ({"frame_load_cap": 100}, list(range(FRAMES))),
    ],
)
def test_selection_options(files: dict[str, Path], key: str, options: dict[str, int], expected: list[int]) -> None:
    assert _indices(load_video_frames(files[key], FrameSelection(**options))) == expected


@pytest.mark.parametrize("key", ["mp4", "webm"])
@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"force_rate": 12}, list(range(0, FRAMES, 2))),
        ({"force_rate": 48}, [i // 2 for i in range(2 * FRAMES)]),
        ({"force_rate": 8}, list(range(0, FRAMES, 3))),
        ({"force_rate": 24}, list(range(FRAMES))),
        # resample first (0, 2, 4, ...), then skip 2, every 2nd, cap 3
        ({"force_rate": 12, "skip_first_frames": 2, "select_every_nth": 2, "frame_load_cap": 3}, [4, 8, 12]),
        ({"force_rate": 48, "skip_first_frames": 3, "frame_load_cap": 4}, [1, 2, 2, 3]),
    ],
)
def test_force_rate_resamples_by_timestamp(
    files: dict[str, Path], key: str, options: dict[str, Any], expected: list[int]
) -> None:
    assert _indices(load_video_frames(files[key], FrameSelection(**options))) == expected


@pytest.mark.parametrize("key", ["vfr_mkv", "vfr_mp4"])
def test_force_rate_on_variable_frame_rate(files: dict[str, Path], key: str) -> None:
    assert _indices(load_video_frames(files[key])) == list(range(10))
    # frames start at 0, 100, 150, 200, 400, 450, 500, 700, 750, 800 ms; each 100 ms tick shows the latest one
    assert _indices(load_video_frames(files[key], FrameSelection(force_rate=10))) == [0, 1, 3, 3, 4, 6, 6, 7, 9]


@pytest.mark.parametrize("key", ["late_mkv", "late_mp4"])
def test_force_rate_counts_from_the_first_frame(files: dict[str, Path], key: str) -> None:
    # frames every 40 ms from 1.0 s: ticks at +0, +100, +200, +300 ms show frames 0, 2, 5, 7
    assert _indices(load_video_frames(files[key], FrameSelection(force_rate=10))) == [0, 2, 5, 7]


@pytest.mark.parametrize(
    ("width", "height", "size"), [(48, 0, (48, 32)), (0, 32, (48, 32)), (50, 20, (50, 20)), (0, 0, (96, 64))]
)
def test_resize_keeps_aspect_when_one_side_is_zero(
    files: dict[str, Path], width: int, height: int, size: tuple[int, int]
) -> None:
    frames = load_video_frames(files["mp4"], FrameSelection(frame_load_cap=3, width=width, height=height))
    assert frames.shape == (3, size[1], size[0], 3)
    reference = np.stack(
        [np.asarray(Image.fromarray(frame).resize(size, Image.Resampling.BICUBIC)) for frame in SOURCE[:3]]
    )
    assert psnr(frames.numpy(), reference / 255.0) > 25


def test_output_rate_and_time_span() -> None:
    ntsc = Fraction(30000, 1001)
    assert FrameSelection().output_rate(ntsc) == ntsc
    assert FrameSelection(select_every_nth=2).output_rate(ntsc) == Fraction(15000, 1001)
    assert FrameSelection(force_rate=12, select_every_nth=3).output_rate(ntsc) == 4
    assert FrameSelection(force_rate=29.97).output_rate(Fraction(24)) == Fraction(2997, 100)
    info = VideoInfo(Path("x.mp4"), 96, 64, Fraction(24), 30, 1.25, "h264", "mp4", False, None, None, {})
    assert selected_time_span(info, FrameSelection(skip_first_frames=6, select_every_nth=2), 5) == (0.25, 10 / 24)
    assert selected_time_span(info, FrameSelection(force_rate=12, skip_first_frames=3), 6) == (0.25, 0.5)
    with pytest.raises(ValueError, match="frame_count"):
        selected_time_span(info, FrameSelection(), -1)


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"force_rate": -1}, "force_rate"),
        ({"force_rate": float("nan")}, "force_rate"),
        ({"skip_first_frames": -1}, "skip_first_frames"),
        ({"select_every_nth": 0}, "select_every_nth"),
        ({"frame_load_cap": -2}, "frame_load_cap"),
        ({"width": -8}, "width"),
        ({"height": 1.5}, "height"),
    ],
)
def test_selection_rejects_bad_values(options: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        FrameSelection(**options)


# --- decoding only what is needed -----------------------------------------------------------------------------


class _CountingContainer:
    """Wraps an input container, counting demuxed packets and noting when it is closed."""

    def __init__(self, container: Any) -> None:
        self.container, self.packets, self.closed = container, 0, False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.container, name)

    def __enter__(self) -> _CountingContainer:
        return self

    def __exit__(self, *_: object) -> None:
        self.closed = True
        self.container.close()

    def demux(self, *args: Any, **kwargs: Any) -> Any:
        for packet in self.container.demux(*args, **kwargs):
            self.packets += 1
            yield packet


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[_CountingContainer]:
    containers: list[_CountingContainer] = []
    real_open = av.open

    def counting_open(*args: Any, **kwargs: Any) -> _CountingContainer:
        containers.append(_CountingContainer(real_open(*args, **kwargs)))
        return containers[-1]

    monkeypatch.setattr(decode.av, "open", counting_open)
    return containers


def test_cap_stops_demuxing_early(files: dict[str, Path], opened: list[_CountingContainer]) -> None:
    assert _indices(load_video_frames(files["long"])) == list(range(60))
    assert opened[-1].packets >= 60
    assert _indices(load_video_frames(files["long"], FrameSelection(frame_load_cap=2))) == [0, 1]
    assert opened[-1].packets < 30  # a few packets of decoder delay, not the whole file
    batches = iter_video_frames(files["long"], FrameSelection(force_rate=12, frame_load_cap=2), batch_size=1)
    assert [_indices(batch) for batch in batches] == [[0], [2]]
    assert opened[-1].packets < 30 and opened[-1].closed


def test_only_selected_frames_are_converted(files: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    converted: list[int] = []
    real_to_rgb = decode.to_rgb

    def counting_to_rgb(frame: av.VideoFrame, width: int, height: int, turns: int = 0) -> np.ndarray:
        pixels = real_to_rgb(frame, width, height, turns)
        converted.append(frame_index_of(pixels))
        return pixels

    monkeypatch.setattr(decode, "to_rgb", counting_to_rgb)
    load_video_frames(files["mp4"], FrameSelection(skip_first_frames=5, select_every_nth=3, frame_load_cap=4))
    assert converted == [5, 8, 11, 14]
    converted.clear()
    assert len(load_video_frames(files["mp4"], FrameSelection(force_rate=48))) == 2 * FRAMES
    assert converted == list(range(FRAMES))  # each duplicated frame converted once


def test_on_frame_reports_progress(files: dict[str, Path]) -> None:
    calls: list[tuple[int, int | None]] = []
    selection = FrameSelection(select_every_nth=3, frame_load_cap=4)
    frames = load_video_frames(files["mp4"], selection, lambda done, total: calls.append((done, total)))
    assert len(frames) == 4
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]


def test_on_frame_can_interrupt(files: dict[str, Path], opened: list[_CountingContainer]) -> None:
    class Interrupted(Exception):
        pass

    def stop_at_three(done: int, total: int | None) -> None:
        if done == 3:
            raise Interrupted

    with pytest.raises(Interrupted):
        load_video_frames(files["long"], on_frame=stop_at_three)
    assert opened[-1].closed and opened[-1].packets < 30


def test_exact_count_is_preallocated_without_waste(files: dict[str, Path]) -> None:
    frames = load_video_frames(files["mp4"], FrameSelection(skip_first_frames=2, select_every_nth=4))
    assert _indices(frames) == list(range(2, FRAMES, 4))
    assert frames.untyped_storage().nbytes() == frames.numel() * 4


def test_iter_video_frames_batches_uint8(files: dict[str, Path]) -> None:
    batches = list(iter_video_frames(files["webm"], batch_size=16))
    assert [batch.shape for batch in batches] == [(16, 64, 96, 3), (14, 64, 96, 3)]
    assert all(batch.dtype == np.uint8 for batch in batches)
    stacked = np.concatenate(batches)
    assert _indices(stacked) == list(range(FRAMES))
    assert np.abs(stacked / 255.0 - load_video_frames(files["webm"]).numpy()).max() < 1e-6
    with pytest.raises(ValueError, match="batch_size"):
        next(iter_video_frames(files["webm"], batch_size=0))


# --- errors -------------------------------------------------------------------------------------------------------


def _load_error(path: Path, selection: FrameSelection = decode.DEFAULT_SELECTION) -> str:
    with pytest.raises(MediaError) as caught:
        load_video_frames(path, selection)
    assert type(caught.value) is MediaError and caught.value.path == path
    with pytest.raises(MediaError):
        list(iter_video_frames(path, selection))
    return caught.value.reason


def test_missing_file_and_directory(tmp_path: Path) -> None:
    assert "not found" in _load_error(tmp_path / "missing.mp4")
    with pytest.raises(MediaError, match="not found"):
        probe_video(tmp_path / "missing.mp4")
    assert "not a file" in _load_error(tmp_path)


def test_garbage_bytes(tmp_path: Path) -> None:
    path = tmp_path / "garbage.mp4"
    path.write_bytes(bytes(range(256)) * 40)
    assert "not a media file" in _load_error(path)
    with pytest.raises(MediaError, match="not a media file"):
        probe_video(path)


def test_audio_file_as_video(files: dict[str, Path]) -> None:
    assert "has no video stream; it is an audio file?" in _load_error(files["wav"])
    with pytest.raises(MediaError, match="no video stream"):
        probe_video(files["wav"])


def test_selection_that_leaves_no_frames(files: dict[str, Path]) -> None:
    reason = _load_error(files["mp4"], FrameSelection(skip_first_frames=100))
    assert reason == "skip_first_frames=100 but the video has 30 frames"
    reason = _load_error(files["mp4"], FrameSelection(force_rate=12, skip_first_frames=15))
    assert reason == "skip_first_frames=15 but the video has 15 frames at force_rate=12"


def test_mp4_cut_in_half_without_index_is_unreadable(files: dict[str, Path], tmp_path: Path) -> None:
    half = _cut(files["mp4"], tmp_path / "half.mp4", files["mp4"].stat().st_size // 2)
    assert "truncated or corrupt" in _load_error(half)


@pytest.mark.parametrize("key", ["faststart", "mkv", "webm"])
def test_truncated_file_returns_readable_frames_with_warning(
    files: dict[str, Path], tmp_path: Path, key: str, caplog: pytest.LogCaptureFixture
) -> None:
    source = files[key]
    half = _cut(source, tmp_path / f"half{source.suffix}", source.stat().st_size // 2)
    with caplog.at_level(logging.WARNING, logger=decode.__name__):
        frames = load_video_frames(half)
    indices = _indices(frames)
    assert 0 < len(frames) < FRAMES
    assert indices[0] == 0 and indices == sorted(set(indices))  # in order; a frame whose data is cut may be missing
    assert any("truncated" in record.getMessage() and half.name in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize("key", ["mp4", "mkv"])
def test_file_cut_to_one_kilobyte(files: dict[str, Path], tmp_path: Path, key: str) -> None:
    stub = _cut(files[key], tmp_path / f"stub{files[key].suffix}", 1024)
    reason = _load_error(stub)
    assert "truncated" in reason


def rotated_clip(path: Path, rotation: int) -> Path:
    """A 96x64 h264 clip whose display matrix turns it ``rotation`` degrees counter-clockwise (as phones write);
    its top-left 16x16 corner is white."""
    pixels = np.zeros((64, 96, 3), np.uint8)
    pixels[:16, :16] = 255
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
        stream.set_display_rotation(rotation)
        for _ in range(3):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        container.mux(stream.encode())
    return path


@pytest.mark.parametrize(
    ("rotation", "shape", "white_corner"),
    [(90, (96, 64), "bottom_left"), (-90, (96, 64), "top_right"), (180, (64, 96), "bottom_right")],
)
def test_display_rotation_is_applied(tmp_path: Path, rotation: int, shape: tuple[int, int], white_corner: str) -> None:
    path = rotated_clip(tmp_path / "phone.mp4", rotation)
    info = probe_video(path)
    assert (info.height, info.width) == shape and info.rotation % 360 == rotation % 360
    frames = load_video_frames(path)
    assert tuple(frames.shape[1:3]) == shape
    corners = {
        "top_left": frames[0, :8, :8],
        "top_right": frames[0, :8, -8:],
        "bottom_left": frames[0, -8:, :8],
        "bottom_right": frames[0, -8:, -8:],
    }
    assert {name for name, corner in corners.items() if corner.mean() > 0.9} == {white_corner}
    resized = load_video_frames(path, FrameSelection(width=32))  # the aspect kept is the upright one
    expected = (48, 32) if rotation % 180 else (21, 32)
    assert tuple(resized.shape[1:3]) == expected
