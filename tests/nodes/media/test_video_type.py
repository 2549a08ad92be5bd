"""The VIDEO value: exact frame rates, dimensions and counts for frames in memory and for (selected) files."""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import pytest
import torch

from nodes.media.decode import FrameSelection
from nodes.media.errors import MediaError
from nodes.media.video import VideoFromComponents, VideoFromFile, as_frame_rate
from tests.nodes.media.synthetic import frame_index_of, indexed_frames, sine_audio, write_video


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (24.0, Fraction(24)),
        (29.97, Fraction(30000, 1001)),
        (23.976, Fraction(24000, 1001)),
        (59.94, Fraction(60000, 1001)),
        (12.5, Fraction(25, 2)),
        (Fraction(30000, 1001), Fraction(30000, 1001)),
    ],
)
def test_frame_rates_are_exact_fractions(given: float | Fraction, expected: Fraction) -> None:
    assert as_frame_rate(given) == expected


def test_frame_rate_must_be_positive() -> None:
    with pytest.raises(ValueError, match="above 0"):
        as_frame_rate(0.0)


def test_video_from_components() -> None:
    images = torch.rand(5, 8, 10, 3)
    video = VideoFromComponents(images, 29.97, {"waveform": torch.zeros(1, 1, 100), "sample_rate": 100})
    assert video.get_dimensions() == (10, 8) and video.get_frame_count() == 5
    assert video.get_frame_rate() == Fraction(30000, 1001)
    assert video.get_duration() == pytest.approx(5 / (30000 / 1001))
    assert torch.equal(torch.cat(list(video.frame_batches(2)())), images)
    with pytest.raises(ValueError, match="frames"):
        VideoFromComponents(torch.rand(0, 8, 10, 3), 24)
    with pytest.raises(ValueError, match="audio"):
        VideoFromComponents(images, 24, {"waveform": "not a tensor", "sample_rate": 100})


def test_video_from_file_with_a_selection(tmp_path: Path) -> None:
    path = write_video(tmp_path / "clip.mp4", indexed_frames(24), fps=24, audio=sine_audio(1.0))
    whole = VideoFromFile.probed(path)
    assert whole.get_frame_count() == 24 and whole.get_dimensions() == (96, 64)
    assert VideoFromFile(path, FrameSelection(width=48)).get_dimensions() == (48, 32)
    selected = VideoFromFile(path, FrameSelection(skip_first_frames=4, select_every_nth=2))
    assert selected.get_frame_rate() == 12
    assert selected.get_frame_count() == 10
    batches = list(selected.frame_batches(4)())
    assert [len(batch) for batch in batches] == [4, 4, 2]
    assert [frame_index_of(frame.numpy()) for batch in batches for frame in batch] == list(range(4, 24, 2))
    audio = selected.get_audio()
    assert audio is not None and abs(audio["waveform"].shape[-1] / audio["sample_rate"] - 10 / 12) < 0.05


def test_probing_a_broken_file_fails_at_once(tmp_path: Path) -> None:
    (tmp_path / "bad.mp4").write_bytes(b"nope")
    with pytest.raises(MediaError, match=r"bad\.mp4"):
        VideoFromFile.probed(tmp_path / "bad.mp4")


def test_a_streamed_video_stops_between_batches_when_its_reader_is_interrupted() -> None:
    from graph.context import InterruptFlag, NodeContext, node_context
    from graph.errors import ExecutionInterrupted
    from nodes.media.video import VideoFromBatches

    made: list[int] = []

    def batches() -> Iterator[torch.Tensor]:
        for index in range(2):
            made.append(index)
            yield torch.full((2, 4, 4, 3), float(index))

    flag = InterruptFlag()
    video = VideoFromBatches("Producer", batches, (4, 4), 4, Fraction(24))
    reader = NodeContext(node_id="2", display_node_id="2", class_type="SaveVideo", prompt_id="p", interrupt=flag)
    read = []
    with node_context(reader), pytest.raises(ExecutionInterrupted):
        for batch in video.frame_batches()():
            read.append(batch)
            flag.set()  # the user stops the run while the first batch is encoded
    assert len(read) == 1 and made == [0]  # the second batch is never made
