"""encode_video: real files written, then decoded back with PyAV or Pillow and compared with the source frames."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

from graph.errors import ExecutionInterrupted
from nodes.media.encode import (
    CODECS_BY_CONTAINER,
    FILE_EXTENSIONS,
    EncodedVideo,
    EncodeSettings,
    encode_video,
    tensor_batches,
)
from nodes.media.errors import MediaError
from tests.nodes.media.synthetic import frame_index_of, indexed_frames, psnr, sine_audio

NTSC = Fraction(30000, 1001)
# Lowest PSNR (dB) accepted per codec at its default quality on the synthetic gradient frames; measured about
# h264 37.7, h265 37.2, vp9 37.0, av1 36.8, webp 37.6.
PSNR_BOUNDS = {"h264": 34.0, "h265": 33.0, "vp9": 33.0, "av1": 33.0, "webp": 33.0}


def as_images(frames: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(frames).float() / 255.0


def decode_pyav(path: Path) -> tuple[np.ndarray, av.video.stream.VideoStream, dict[str, str]]:
    """All frames as rgb24, plus the stream (closed container; plain attributes only) and the container tags."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(stream)])
        return frames, stream, dict(container.metadata)


def decode_pillow(path: Path, mode: str = "RGB") -> tuple[np.ndarray, list[int], Image.Image]:
    """All frames via Pillow (which reads animated webp, unlike FFmpeg), their durations in ms, and the image."""
    image = Image.open(path)
    frames, durations = [], []
    for index in range(getattr(image, "n_frames", 1)):
        image.seek(index)
        frames.append(np.asarray(image.convert(mode)))
        durations.append(image.info.get("duration"))
    return np.stack(frames), durations, image


def audio_seconds(path: Path) -> tuple[float, av.audio.stream.AudioStream]:
    """Decoded audio duration in seconds and the audio stream."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        samples = sum(frame.samples for frame in container.decode(stream))
        return samples / stream.rate, stream


def audio_input(seconds: float, rate: int = 44100, channels: int = 2) -> dict[str, object]:
    return {"waveform": torch.from_numpy(sine_audio(seconds, rate, channels))[None], "sample_rate": rate}


@pytest.fixture(scope="module")
def source() -> np.ndarray:
    return indexed_frames(24)


@pytest.mark.parametrize(("container", "codec"), [("mp4", "h264"), ("mp4", "h265"), ("webm", "vp9"), ("webm", "av1")])
def test_video_codecs_round_trip(tmp_path: Path, source: np.ndarray, container: str, codec: str) -> None:
    path = tmp_path / f"clip.{FILE_EXTENSIONS[container]}"
    result = encode_video(path, tensor_batches(as_images(source), 5), EncodeSettings(container, codec, NTSC))
    decoded, stream, _ = decode_pyav(path)
    assert result == EncodedVideo(path, 24, 96, 64, NTSC, False)
    assert decoded.shape == source.shape
    assert [frame_index_of(frame) for frame in decoded] == list(range(24))
    assert psnr(decoded, source) > PSNR_BOUNDS[codec]
    assert stream.average_rate == NTSC
    assert stream.codec_context.pix_fmt == "yuv420p"
    if codec == "h265":
        assert stream.codec_context.codec_tag == "hvc1"
    assert not list(tmp_path.glob(".*"))


@pytest.mark.parametrize(("codec", "pixel_format"), [("h264", "yuv444p"), ("h265", "yuv420p10le")])
def test_pixel_format_is_used(tmp_path: Path, source: np.ndarray, codec: str, pixel_format: str) -> None:
    path = tmp_path / "clip.mp4"
    encode_video(
        path, tensor_batches(as_images(source[:8])), EncodeSettings("mp4", codec, 24, pixel_format=pixel_format)
    )
    decoded, stream, _ = decode_pyav(path)
    assert stream.codec_context.pix_fmt == pixel_format
    assert psnr(decoded, source[:8]) > PSNR_BOUNDS[codec]


def test_odd_size_is_padded_by_repeating_the_edge(tmp_path: Path) -> None:
    source = indexed_frames(6, 97, 65)
    path = tmp_path / "odd.mp4"
    result = encode_video(path, tensor_batches(as_images(source)), EncodeSettings("mp4", "h264", 24, crf=4))
    decoded, _, _ = decode_pyav(path)
    assert (result.width, result.height) == (98, 66)
    assert decoded.shape == (6, 66, 98, 3)
    assert psnr(decoded[:, :65, :97], source) > 36
    edge_error = np.abs(decoded[:, :, 97].astype(int) - decoded[:, :, 96]).mean()
    assert edge_error < np.abs(decoded[:, :, 90].astype(int) - decoded[:, :, 96]).mean()
    assert psnr(decoded[:, 65, :97], source[:, 64]) > 35


def test_odd_size_without_padding_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "odd.mp4"
    settings = EncodeSettings("mp4", "h264", 24, pad_odd=False)
    with pytest.raises(MediaError, match=r"odd\.mp4: the frames are 97x65.*even"):
        encode_video(path, tensor_batches(as_images(indexed_frames(2, 97, 65))), settings)
    assert not list(tmp_path.iterdir())


def test_full_chroma_keeps_an_odd_size(tmp_path: Path) -> None:
    path = tmp_path / "odd.mp4"
    settings = EncodeSettings("mp4", "h264", 24, pixel_format="yuv444p", pad_odd=False)
    result = encode_video(path, tensor_batches(as_images(indexed_frames(2, 97, 65))), settings)
    assert (result.width, result.height) == (97, 65)
    assert decode_pyav(path)[0].shape == (2, 65, 97, 3)


def test_mismatched_frame_size_names_the_frame(tmp_path: Path) -> None:
    path = tmp_path / "clip.mp4"
    path.touch()

    def batches() -> Iterator[torch.Tensor]:
        yield as_images(indexed_frames(12))
        yield as_images(indexed_frames(2, 80, 48))

    with pytest.raises(MediaError, match="frame 12 is 80x48 but the video's first frame is 96x64"):
        encode_video(path, batches, EncodeSettings("mp4", "h264", 24))
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"]
    assert path.stat().st_size == 0


@pytest.mark.parametrize(("container", "codec"), [("webm", "vp9"), ("gif", "gif")])
def test_no_frames_is_an_error(tmp_path: Path, container: str, codec: str) -> None:
    with pytest.raises(MediaError, match=rf"empty\.{container}: there are no frames"):
        encode_video(
            tmp_path / f"empty.{container}",
            lambda: iter([torch.zeros(0, 64, 96, 3)]),
            EncodeSettings(container, codec, 24),
        )
    assert not list(tmp_path.iterdir())


def test_an_existing_empty_file_is_replaced(tmp_path: Path, source: np.ndarray) -> None:
    path = tmp_path / "claimed.mp4"
    path.touch()
    encode_video(path, tensor_batches(as_images(source[:4])), EncodeSettings("mp4", "h264", 24))
    assert decode_pyav(path)[0].shape[0] == 4
    assert [p.name for p in tmp_path.iterdir()] == ["claimed.mp4"]


def test_pixels_are_clamped_rounded_and_nan_is_black(tmp_path: Path) -> None:
    values = torch.rand(3, 64, 96, 3) * 1.4 - 0.2
    values[0, :4, :4] = float("nan")
    path = tmp_path / "exact.png"
    encode_video(path, tensor_batches(values, 2), EncodeSettings("apng", "apng", 12))
    decoded, _, _ = decode_pyav(path)
    expected = np.round(np.clip(np.nan_to_num(values.numpy(), nan=0.0), 0, 1) * 255).astype(np.uint8)
    np.testing.assert_array_equal(decoded, expected)
    assert (decoded[0, :4, :4] == 0).all()


def test_gray_input_becomes_rgb_and_alpha_is_dropped_for_mp4(tmp_path: Path, source: np.ndarray) -> None:
    gray = as_images(source[:4]).mean(dim=3, keepdim=True)
    encode_video(tmp_path / "gray.png", tensor_batches(gray), EncodeSettings("apng", "apng", 12))
    decoded, _, _ = decode_pyav(tmp_path / "gray.png")
    np.testing.assert_array_equal(decoded[..., 0], decoded[..., 2])
    rgba = torch.cat([as_images(source[:4]), torch.zeros(4, 64, 96, 1)], dim=3)
    encode_video(tmp_path / "rgba.mp4", tensor_batches(rgba), EncodeSettings("mp4", "h264", 12))
    assert psnr(decode_pyav(tmp_path / "rgba.mp4")[0], source[:4]) > PSNR_BOUNDS["h264"]


def test_unsupported_channel_count_is_named(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="frame 0 has 2 channels"):
        encode_video(tmp_path / "x.mp4", tensor_batches(torch.zeros(2, 64, 96, 2)), EncodeSettings("mp4", "h264", 24))


def test_on_frame_counts_each_frame(tmp_path: Path, source: np.ndarray) -> None:
    seen: list[int] = []
    encode_video(
        tmp_path / "a.mp4",
        tensor_batches(as_images(source[:10]), 4),
        EncodeSettings("mp4", "h264", 24),
        None,
        seen.append,
    )
    assert seen == list(range(1, 11))


def test_batches_are_encoded_one_at_a_time(tmp_path: Path, source: np.ndarray) -> None:
    events: list[str] = []

    def batches() -> Iterator[torch.Tensor]:
        for start in range(0, 12, 4):
            events.append(f"batch {start}")
            yield as_images(source[start : start + 4])

    encode_video(tmp_path / "a.webm", batches, EncodeSettings("webm", "vp9", 24), None, lambda n: events.append(str(n)))
    assert events == [f"batch {start}" if i == 0 else str(start + i) for start in range(0, 12, 4) for i in range(5)]


def test_an_interrupt_from_on_frame_removes_the_part_file(tmp_path: Path, source: np.ndarray) -> None:
    def interrupt(done: int) -> None:
        if done == 5:
            raise ExecutionInterrupted("stop")

    with pytest.raises(ExecutionInterrupted):
        encode_video(
            tmp_path / "a.mp4", tensor_batches(as_images(source)), EncodeSettings("mp4", "h264", 24), None, interrupt
        )
    assert not list(tmp_path.iterdir())


def test_tensor_batches_are_views_and_repeatable() -> None:
    images = torch.rand(10, 4, 4, 3)
    batches = tensor_batches(images, 4)
    first = list(batches())
    assert [len(batch) for batch in first] == [4, 4, 2]
    assert all(batch.untyped_storage().data_ptr() == images.untyped_storage().data_ptr() for batch in first)
    assert [len(batch) for batch in batches()] == [4, 4, 2]
    with pytest.raises(ValueError, match="batch_size"):
        tensor_batches(images, 0)


def plain_rgb8_gif(path: Path, frames: np.ndarray, rate: int) -> None:
    """The same frames as a GIF with FFmpeg's fixed rgb8 palette (the baseline the generated palette must beat)."""
    with av.open(str(path), "w", format="gif") as container:
        stream = container.add_stream("gif", rate=rate)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "rgb8"
        for pixels in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        container.mux(stream.encode())


def test_gif_palette_beats_plain_rgb8(tmp_path: Path, source: np.ndarray) -> None:
    calls: list[int] = []

    def batches() -> Iterator[torch.Tensor]:
        calls.append(1)
        return tensor_batches(as_images(source), 8)()

    path = tmp_path / "anim.gif"
    result = encode_video(path, batches, EncodeSettings("gif", "gif", 20, loop=3))
    plain_rgb8_gif(tmp_path / "plain.gif", source, 20)
    decoded, durations, image = decode_pillow(path)
    baseline, _, _ = decode_pillow(tmp_path / "plain.gif")
    palette_error = np.abs(decoded.astype(int) - source).mean()
    plain_error = np.abs(baseline.astype(int) - source).mean()
    assert len(calls) == 2
    assert result.frame_count == decoded.shape[0] == 24
    assert palette_error < 0.6 * plain_error  # measured about 7 vs 14 (0..255 scale)
    assert [frame_index_of(frame) for frame in decoded] == list(range(24))
    assert set(durations) == {50}
    assert image.info["loop"] == 3


def test_webp_lossy_lossless_loop_and_alpha(tmp_path: Path, source: np.ndarray) -> None:
    images = as_images(source[:12])
    encode_video(tmp_path / "lossy.webp", tensor_batches(images), EncodeSettings("webp", "webp", 25, quality=90))
    lossy, durations, image = decode_pillow(tmp_path / "lossy.webp")
    assert psnr(lossy, source[:12]) > PSNR_BOUNDS["webp"]
    assert set(durations) == {40} and image.info["loop"] == 0
    encode_video(
        tmp_path / "exact.webp", tensor_batches(images), EncodeSettings("webp", "webp", 25, lossless=True, loop=2)
    )
    exact, _, image = decode_pillow(tmp_path / "exact.webp")
    np.testing.assert_array_equal(exact, source[:12])
    assert image.info["loop"] == 2
    rgba = torch.cat([images, torch.full((12, 64, 96, 1), 0.5)], dim=3)
    encode_video(tmp_path / "alpha.webp", tensor_batches(rgba), EncodeSettings("webp", "webp", 25, lossless=True))
    with_alpha, _, _ = decode_pillow(tmp_path / "alpha.webp", "RGBA")
    assert (with_alpha[..., 3] == 128).all()


def test_apng_is_lossless_with_loop_and_alpha(tmp_path: Path, source: np.ndarray) -> None:
    rgba = torch.cat([as_images(source[:6]), torch.full((6, 64, 96, 1), 0.25)], dim=3)
    settings = EncodeSettings("apng", "apng", Fraction(10), compress_level=9, loop=4)
    encode_video(tmp_path / "anim.png", tensor_batches(rgba), settings)
    decoded, durations, image = decode_pillow(tmp_path / "anim.png", "RGBA")
    np.testing.assert_array_equal(decoded[..., :3], source[:6])
    assert (decoded[..., 3] == 64).all()
    assert image.info["loop"] == 4 and set(durations) == {100}


@pytest.mark.parametrize(("container", "codec", "rate"), [("mp4", "h264", 44100), ("webm", "vp9", 48000)])
def test_audio_is_muxed_and_trimmed_to_the_video(
    tmp_path: Path, source: np.ndarray, container: str, codec: str, rate: int
) -> None:
    path = tmp_path / f"clip.{container}"
    result = encode_video(
        path, tensor_batches(as_images(source)), EncodeSettings(container, codec, 24), audio_input(3.0)
    )
    seconds, stream = audio_seconds(path)
    assert result.has_audio
    assert stream.rate == rate and stream.layout.name == "stereo"
    assert seconds == pytest.approx(1.0, abs=0.05)


def test_short_audio_ends_early_and_mono_stays_mono(tmp_path: Path, source: np.ndarray) -> None:
    path = tmp_path / "clip.webm"
    encode_video(path, tensor_batches(as_images(source)), EncodeSettings("webm", "av1", 24), audio_input(0.5, 22050, 1))
    seconds, stream = audio_seconds(path)
    assert stream.layout.name == "mono" and stream.rate == 48000
    assert seconds == pytest.approx(0.5, abs=0.05)


def test_surround_audio_is_downmixed_to_stereo(tmp_path: Path, source: np.ndarray) -> None:
    path = tmp_path / "clip.mp4"
    encode_video(path, tensor_batches(as_images(source)), EncodeSettings("mp4", "h265", 24), audio_input(1.0, 32000, 6))
    seconds, stream = audio_seconds(path)
    assert stream.layout.name == "stereo" and stream.rate == 32000
    assert seconds == pytest.approx(1.0, abs=0.05)


def test_audio_is_ignored_for_gif(tmp_path: Path, source: np.ndarray, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        result = encode_video(
            tmp_path / "a.gif",
            tensor_batches(as_images(source[:4])),
            EncodeSettings("gif", "gif", 10),
            audio_input(1.0),
        )
    assert not result.has_audio
    assert "cannot hold audio" in caplog.text


def test_bad_audio_is_a_media_error(tmp_path: Path, source: np.ndarray) -> None:
    with pytest.raises(MediaError, match=r"a\.mp4: .*audio"):
        encode_video(
            tmp_path / "a.mp4",
            tensor_batches(as_images(source[:4])),
            EncodeSettings("mp4", "h264", 10),
            {"waveform": torch.zeros(2, 10)},
        )
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(("container", "codec"), [("mp4", "h264"), ("webm", "vp9")])
def test_container_metadata_is_written(tmp_path: Path, source: np.ndarray, container: str, codec: str) -> None:
    path = tmp_path / f"clip.{container}"
    metadata = {"prompt": '{"1": {"class_type": "X"}}', "workflow": '{"nodes": []}'}
    encode_video(path, tensor_batches(as_images(source[:4])), EncodeSettings(container, codec, 24, metadata=metadata))
    tags = {key.lower(): value for key, value in decode_pyav(path)[2].items()}
    assert tags["prompt"] == metadata["prompt"] and tags["workflow"] == metadata["workflow"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"container": "avi"}, "container must be one of mp4, webm, gif, webp, apng"),
        ({"codec": "vp9"}, "codec for mp4 must be one of h264, h265"),
        ({"frame_rate": 0}, "frame_rate must be greater than 0"),
        ({"frame_rate": "24"}, "frame_rate must be a positive"),
        ({"crf": 52}, "crf for h264 must be a number from 0 to 51"),
        ({"preset": "fastest"}, "preset for h264 must be one of"),
        ({"pixel_format": "rgb24"}, "pixel_format for h264 must be one of"),
        ({"quality": 101}, "quality must be an integer from 0 to 100"),
        ({"method": 7}, "method must be an integer from 0 to 6"),
        ({"compress_level": 10}, "compress_level must be an integer from 0 to 9"),
        ({"loop": -1}, "loop must be an integer"),
        ({"lossless": 1}, "lossless must be True or False"),
        ({"metadata": {"prompt": 1}}, "metadata must map str keys to str values"),
    ],
)
def test_bad_settings_name_the_option(options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        EncodeSettings(**{"container": "mp4", "codec": "h264", "frame_rate": Fraction(24), **options})


def test_settings_per_container() -> None:
    with pytest.raises(ValueError, match="crf applies to mp4 and webm only"):
        EncodeSettings("gif", "gif", 10, crf=20)
    with pytest.raises(ValueError, match="frame_rate for gif must be at most 100"):
        EncodeSettings("gif", "gif", 120)
    with pytest.raises(ValueError, match="crf for vp9 must be a whole number from 0 to 63"):
        EncodeSettings("webm", "vp9", 24, crf=64)
    with pytest.raises(ValueError, match="crf for av1 must be a whole number"):
        EncodeSettings("webm", "av1", 24, crf=20.5)
    assert EncodeSettings("mp4", "h265", 24, crf=20.5).codec_options()["crf"] == "20.5"
    assert EncodeSettings("mp4", "h264", 24, metadata={"a": "b"}) == EncodeSettings(
        "mp4", "h264", 24, metadata={"a": "b"}
    )
    assert hash(EncodeSettings("gif", "gif", 10, metadata={"a": "b"}))
    assert EncodeSettings("webm", "av1", 24, crf=63, preset="13").crf == 63
    assert EncodeSettings("mp4", "h264", 29.97002997).frame_rate == NTSC
    assert EncodeSettings("mp4", "h264", 24).frame_rate == Fraction(24)
    assert set(FILE_EXTENSIONS) == set(CODECS_BY_CONTAINER)


def test_ffmpeg_failures_become_media_errors(tmp_path: Path, source: np.ndarray) -> None:
    with pytest.raises(MediaError, match=r"a\.mp4: FFmpeg could not encode the mp4 file"):
        encode_video(
            tmp_path / "missing" / "a.mp4", tensor_batches(as_images(source[:2])), EncodeSettings("mp4", "h264", 8)
        )
