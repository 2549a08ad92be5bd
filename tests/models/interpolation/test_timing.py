"""The output timeline: frame counts and times for multipliers and target frame rates, and scene cuts."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
import torch

from models.interpolation.timing import (
    MIN_TYPICAL_DIFFERENCE,
    OutputFrame,
    detect_scene_cuts,
    frame_differences,
    multiplier_timeline,
    streamed_frame_differences,
    target_fps_timeline,
)
from tests.models.interpolation.synthetic import moving_square_clip, two_scene_clip


@pytest.mark.parametrize("multiplier", range(2, 17))
def test_multiplier_gives_evenly_spaced_frames_at_the_multiplied_rate(multiplier: int) -> None:
    timeline = multiplier_timeline(7, 16.0, multiplier)

    assert len(timeline.frames) == 6 * multiplier + 1
    assert timeline.fps == 16.0 * multiplier
    assert timeline.source_frames == 7
    for position, frame in enumerate(timeline.frames):
        assert frame.index + frame.t == pytest.approx(position / multiplier, abs=1e-12)
        assert 0 <= frame.t < 1
    originals = [frame.index for frame in timeline.frames if frame.is_original]
    assert originals == list(range(7))
    assert timeline.made_frames == 6 * (multiplier - 1)


def test_multiplier_three_times() -> None:
    timeline = multiplier_timeline(3, 24.0, 3)

    assert timeline.frames == (
        OutputFrame(0, 0.0),
        OutputFrame(0, 1 / 3),
        OutputFrame(0, 2 / 3),
        OutputFrame(1, 0.0),
        OutputFrame(1, 1 / 3),
        OutputFrame(1, 2 / 3),
        OutputFrame(2, 0.0),
    )


def test_target_fps_24_to_60_keeps_every_second_original() -> None:
    timeline = target_fps_timeline(25, 24.0, 60.0)  # one second of 24 fps

    assert len(timeline.frames) == 61
    assert timeline.fps == 60.0
    for k, frame in enumerate(timeline.frames):
        assert (frame.index + frame.t) / 24 == pytest.approx(k / 60, abs=1e-12)
    originals = [(k, frame.index) for k, frame in enumerate(timeline.frames) if frame.is_original]
    assert originals == [(5 * j, 2 * j) for j in range(13)]
    assert [frame.t for frame in timeline.frames[:6]] == pytest.approx([0.0, 0.4, 0.8, 0.2, 0.6, 0.0])


def test_target_fps_ntsc_rates_are_exact() -> None:
    timeline = target_fps_timeline(11, 23.976, 59.94)  # 24000/1001 -> 60000/1001: exactly 2.5x

    assert len(timeline.frames) == 26
    assert [k for k, frame in enumerate(timeline.frames) if frame.is_original] == list(range(0, 26, 5))


def test_target_fps_counts_frames_in_the_clips_span() -> None:
    for frames, fps, target in ((10, 16.0, 25.0), (40, 30.0, 24.0), (5, 8.0, 60.0), (2, 25.0, 29.97)):
        timeline = target_fps_timeline(frames, fps, target)
        last = math.floor(Fraction(frames - 1) * Fraction(str(target)) / Fraction(str(fps)))
        assert len(timeline.frames) == last + 1
        assert all(frame.index + frame.t <= frames - 1 for frame in timeline.frames)
        assert timeline.frames[0] == OutputFrame(0, 0.0)


def test_a_lower_target_fps_drops_frames_without_blending_whole_ones() -> None:
    timeline = target_fps_timeline(9, 30.0, 15.0)

    assert timeline.frames == tuple(OutputFrame(index, 0.0) for index in range(0, 9, 2))
    assert timeline.made_frames == 0


def test_a_single_frame_clip_is_one_frame() -> None:
    assert multiplier_timeline(1, 16.0, 4).frames == (OutputFrame(0, 0.0),)
    assert target_fps_timeline(1, 16.0, 60.0).frames == (OutputFrame(0, 0.0),)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: multiplier_timeline(5, 16.0, 1), "multiplier must be 2..16"),
        (lambda: multiplier_timeline(5, 16.0, 17), "multiplier must be 2..16"),
        (lambda: multiplier_timeline(0, 16.0, 2), "no frames"),
        (lambda: multiplier_timeline(5, 0.0, 2), "fps must be above 0"),
        (lambda: target_fps_timeline(5, 16.0, 0.0), "target_fps must be above 0"),
        (lambda: target_fps_timeline(5, 16.0, math.nan), "target_fps must be above 0"),
    ],
)
def test_bad_timing_inputs_are_refused(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


def test_frames_across_a_cut_copy_the_nearer_original() -> None:
    timeline = multiplier_timeline(4, 16.0, 4).with_scene_cuts([1])

    assert timeline.frames[4:9] == (
        OutputFrame(1, 0.0),
        OutputFrame(1, 0.0),
        OutputFrame(2, 0.0),
        OutputFrame(2, 0.0),
        OutputFrame(2, 0.0),
    )
    assert timeline.frames[:4] == multiplier_timeline(4, 16.0, 4).frames[:4]
    assert timeline.made_frames == 6


def test_the_cut_between_two_scenes_is_found_and_nothing_else() -> None:
    clip = two_scene_clip(6)

    assert detect_scene_cuts(clip, 4.0) == (5,)
    assert detect_scene_cuts(clip, 0.0) == ()


def test_steady_motion_is_no_cut() -> None:
    clip = moving_square_clip(12)

    assert detect_scene_cuts(clip, 2.0) == ()


def test_a_lone_pair_is_measured_against_the_floor() -> None:
    scenes = two_scene_clip(1)
    still = torch.stack((scenes[0], scenes[0] + 0.5 * MIN_TYPICAL_DIFFERENCE))

    assert detect_scene_cuts(scenes, 4.0) == (0,)
    assert detect_scene_cuts(still, 1.0) == ()


def test_frame_differences_are_mean_absolute_differences_of_small_frames() -> None:
    clip = torch.zeros(3, 8, 8, 3)
    clip[1] = 0.25
    clip[2, :4] = 1.0

    assert frame_differences(clip).tolist() == pytest.approx([0.25, 0.5])


def test_a_negative_threshold_is_refused() -> None:
    with pytest.raises(ValueError, match="scene cut threshold"):
        detect_scene_cuts(two_scene_clip(2), -1.0)


@pytest.mark.parametrize("size", [1, 3, 40])
def test_differences_of_a_stream_equal_those_of_the_clip(size: int) -> None:
    frames = torch.rand(9, 80, 72, 3, generator=torch.Generator().manual_seed(4))
    streamed = streamed_frame_differences(frames.split(size))
    assert torch.allclose(streamed, frame_differences(frames), atol=1e-6) and streamed.shape == (8,)
