"""Running an interpolator over a clip: originals copied bit-exact, batches the same as one at a time, padding,
progress, cache clearing, and the network path under out-of-memory recovery."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from models.interpolation.base import FrameInterpolator
from models.interpolation.classical import FlowBlendInterpolator
from models.interpolation.run import interpolate_clip, interpolate_stream
from models.interpolation.timing import multiplier_timeline, target_fps_timeline
from models.memory import MemoryConfig, ModelHandle, ModelManager
from models.memory_types import WorkEstimate
from models.oom import ModelOutOfMemoryError
from tests.models.interpolation.synthetic import moving_square_clip, two_scene_clip
from tests.models.test_memory import FakeProbe


class BlendNetwork(torch.nn.Module):
    """Plain blending as a network with a weight, failing the first ``failures`` calls as if memory ran out."""

    def __init__(self, failures: int = 0) -> None:
        super().__init__()
        self.gain = torch.nn.Parameter(torch.ones(()))
        self.failures = failures
        self.sizes: list[tuple[int, ...]] = []

    def forward(self, first: torch.Tensor, second: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
        self.sizes.append(tuple(first.shape))
        if self.failures:
            self.failures -= 1
            raise RuntimeError("CUDA out of memory (simulated)")
        t = times.view(-1, 1, 1, 1)
        return self.gain * ((1 - t) * first + t * second)


class BlendInterpolator(FrameInterpolator):
    """An interpolator whose network (plain blending) is held by the memory manager and wants sides of 8."""

    pad_multiple = 8

    def __init__(self, handle: ModelHandle) -> None:
        self.name = "blend"
        self.handle = handle

    def describe(self) -> str:
        return "plain blending"

    def between(
        self, module: torch.nn.Module | None, first: torch.Tensor, second: torch.Tensor, times: torch.Tensor
    ) -> torch.Tensor:
        assert module is not None
        return module(first, second, times)

    def work_estimate(self, pairs: int, height: int, width: int) -> WorkEstimate:
        return WorkEstimate(activation_bytes=pairs * height * width * 12)


def test_originals_are_copied_bit_exact_and_the_rest_is_made(manager: ModelManager) -> None:
    frames = moving_square_clip(5, size=24)
    timeline = multiplier_timeline(5, 16.0, 4)

    output = interpolate_clip(manager, FlowBlendInterpolator(), frames, timeline, batch_size=3)

    assert output.shape == (17, 24, 24, 3)
    assert output.dtype == frames.dtype
    assert torch.equal(output[::4], frames)
    for position in range(17):
        if position % 4:
            assert not torch.equal(output[position], frames[position // 4])


@pytest.mark.parametrize("batch_size", [2, 5, 64])
def test_batches_give_the_same_frames_as_one_at_a_time(manager: ModelManager, batch_size: int) -> None:
    frames = moving_square_clip(4, size=24)
    timeline = target_fps_timeline(4, 16.0, 40.0)
    one_at_a_time = interpolate_clip(manager, FlowBlendInterpolator(), frames, timeline, batch_size=1)

    batched = interpolate_clip(manager, FlowBlendInterpolator(), frames, timeline, batch_size=batch_size)

    assert torch.allclose(batched, one_at_a_time, atol=1e-6)


def test_progress_is_reported_after_each_batch(manager: ModelManager) -> None:
    frames = moving_square_clip(4, size=16)
    reports: list[tuple[int, int]] = []

    interpolate_clip(
        manager,
        FlowBlendInterpolator(),
        frames,
        multiplier_timeline(4, 8.0, 3),
        batch_size=4,
        on_progress=lambda done, total: reports.append((done, total)),
    )

    assert reports == [(4, 6), (6, 6)]


def test_frames_across_a_scene_cut_are_copies(manager: ModelManager) -> None:
    frames = two_scene_clip(3)
    timeline = multiplier_timeline(6, 16.0, 4).with_scene_cuts([2])

    output = interpolate_clip(manager, FlowBlendInterpolator(), frames, timeline, batch_size=4)

    assert [torch.equal(output[position], frames[2]) for position in (8, 9)] == [True, True]  # t 0, 0.25
    assert [torch.equal(output[position], frames[3]) for position in (10, 11, 12)] == [True] * 3  # t 0.5, 0.75, 1
    for position in range(8, 13):  # nothing between the cut looks like a mix of the two scenes
        assert torch.equal(output[position], frames[2]) or torch.equal(output[position], frames[3])


def test_a_network_runs_through_the_manager_on_padded_frames(manager: ModelManager) -> None:
    network = BlendNetwork()
    handle = manager.load("test:blend", lambda: network)
    frames = torch.rand(3, 10, 13, 3)

    output = interpolate_clip(manager, BlendInterpolator(handle), frames, multiplier_timeline(3, 10.0, 2), 2)

    assert network.sizes == [(2, 3, 16, 16)]
    assert torch.equal(output[::2], frames)
    assert torch.allclose(output[1::2], 0.5 * (frames[:-1] + frames[1:]), atol=1e-6)


def test_running_out_of_memory_is_retried_then_reported() -> None:
    probe = FakeProbe("cuda")
    manager = ModelManager(MemoryConfig(device_budget_bytes=1 << 30), probe)
    probe.manager = manager
    frames = torch.rand(2, 8, 8, 3)
    timeline = multiplier_timeline(2, 10.0, 2)
    recovering = BlendNetwork(failures=1)

    output = interpolate_clip(
        manager, BlendInterpolator(manager.load("test:once", lambda: recovering)), frames, timeline
    )

    assert len(recovering.sizes) == 2
    assert torch.allclose(output[1], 0.5 * (frames[0] + frames[1]), atol=1e-6)
    failing = BlendNetwork(failures=10)
    with pytest.raises(ModelOutOfMemoryError, match="test:always"):
        interpolate_clip(manager, BlendInterpolator(manager.load("test:always", lambda: failing)), frames, timeline)
    manager.free()


def test_cached_memory_is_released_every_n_made_frames() -> None:
    probe = FakeProbe("cuda")
    manager = ModelManager(MemoryConfig(device_budget_bytes=1 << 30), probe)
    probe.manager = manager
    frames = moving_square_clip(6, size=16)
    timeline = multiplier_timeline(6, 8.0, 3)  # 10 made frames

    interpolate_clip(manager, FlowBlendInterpolator(), frames, timeline, batch_size=2, clear_cache_every=3)
    assert len(probe.released) == 2  # after 4 and after 8 made frames

    probe.released.clear()
    interpolate_clip(manager, FlowBlendInterpolator(), frames, timeline, batch_size=2, clear_cache_every=0)
    assert probe.released == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"batch_size": 0}, "batch_size must be at least 1"),
        ({"clear_cache_every": -1}, "clear_cache_every must be 0"),
        ({"frames": torch.rand(3, 8, 8, 3)}, "the timeline is for 2 frames, the clip has 3"),
        ({"frames": torch.rand(2, 8, 8, 4)}, "frames must be"),
    ],
)
def test_bad_inputs_are_refused(manager: ModelManager, change: dict, message: str) -> None:
    arguments = {"frames": torch.rand(2, 8, 8, 3), "timeline": multiplier_timeline(2, 8.0, 2), **change}
    with pytest.raises(ValueError, match=message):
        interpolate_clip(manager, FlowBlendInterpolator(), **arguments)


def _in_batches(frames: torch.Tensor, sizes: list[int]) -> Iterator[torch.Tensor]:
    """``frames`` cut into batches of ``sizes`` (repeating the last size), as a decoder gives them."""
    start, count = 0, 0
    while start < frames.shape[0]:
        size = sizes[min(count, len(sizes) - 1)]
        yield frames[start : start + size]
        start, count = start + size, count + 1


@pytest.mark.parametrize("sizes", [[1], [3], [2, 5], [64]])
def test_a_stream_gives_the_frames_of_the_whole_clip(manager: ModelManager, sizes: list[int]) -> None:
    frames = two_scene_clip(5)  # 10 frames, a cut between 4 and 5
    timeline = target_fps_timeline(10, 16.0, 40.0).with_scene_cuts([4])
    whole = interpolate_clip(manager, FlowBlendInterpolator(), frames, timeline, batch_size=3)
    reports: list[tuple[int, int]] = []

    chunks = list(
        interpolate_stream(
            manager,
            FlowBlendInterpolator(),
            _in_batches(frames, sizes),
            timeline,
            batch_size=3,
            on_progress=lambda done, total: reports.append((done, total)),
        )
    )

    assert torch.equal(torch.cat(chunks), whole)
    assert reports[-1] == (timeline.made_frames, timeline.made_frames)
    assert [done for done, _ in reports] == sorted(done for done, _ in reports)


def test_a_stream_stops_reading_once_its_frames_are_made(manager: ModelManager) -> None:
    frames = moving_square_clip(4, size=16)
    read: list[int] = []

    def batches() -> Iterator[torch.Tensor]:
        for index in range(frames.shape[0]):
            read.append(index)
            yield frames[index : index + 1]
        yield torch.rand(1, 16, 16, 3)  # a container with more frames than its header said
        raise AssertionError("read past the frames the timeline needs")

    chunks = list(interpolate_stream(manager, FlowBlendInterpolator(), batches(), multiplier_timeline(4, 8.0, 2)))
    assert torch.cat(chunks).shape[0] == 7 and read == [0, 1, 2, 3]


def test_a_stream_that_ends_early_ends_the_output_there(
    manager: ModelManager, caplog: pytest.LogCaptureFixture
) -> None:
    frames = moving_square_clip(3, size=16)
    timeline = multiplier_timeline(5, 8.0, 2)  # the header said 5 frames; the file has 3

    output = torch.cat(list(interpolate_stream(manager, FlowBlendInterpolator(), _in_batches(frames, [2]), timeline)))

    assert output.shape[0] == 5 and torch.equal(output[::2], frames)
    assert "the clip ended after 3 of its 5 frames" in caplog.text


def test_cached_memory_is_released_across_stream_windows() -> None:
    probe = FakeProbe("cuda")
    manager = ModelManager(MemoryConfig(device_budget_bytes=1 << 30), probe)
    probe.manager = manager
    frames = moving_square_clip(6, size=16)

    chunks = interpolate_stream(
        manager, FlowBlendInterpolator(), _in_batches(frames, [1]), multiplier_timeline(6, 8.0, 3), clear_cache_every=4
    )
    list(chunks)  # 10 made frames, 2 per one-frame window

    assert len(probe.released) == 2  # after 4 and after 8, though no window makes 4
    manager.free()
