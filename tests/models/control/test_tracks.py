"""Drawn trajectories: every JSON format to the same tracks, exact round trips, resampling, splat weights, drawing."""

from __future__ import annotations

import json
import math

import pytest
import torch

from models.control.tracks import (
    Tracks,
    parse_tracks_json,
    render_tracks,
    resample_tracks,
    splat_tracks,
    track_colours,
    tracks_to_json,
)

POINTS = [[(1.5, 2.0), (3.0, 4.0), (5.25, 6.0)], [(50.0, 6.0), (7.0, 8.125), (0.0, 40.0)]]
DICT_TRACKS = json.dumps([[{"x": x, "y": y} for x, y in track] for track in POINTS])
PAIR_TRACKS = json.dumps([[[x, y] for x, y in track] for track in POINTS])


def assert_same(actual: Tracks, expected: Tracks) -> None:
    assert torch.equal(actual.points, expected.points)
    assert torch.equal(actual.visible, expected.visible)
    assert (actual.width, actual.height) == (expected.width, expected.height)


@pytest.mark.parametrize(
    "text",
    [DICT_TRACKS, PAIR_TRACKS, json.dumps(DICT_TRACKS), json.dumps(json.dumps(PAIR_TRACKS)), PAIR_TRACKS + "\n"],
    ids=["dicts", "pairs", "double_encoded_dicts", "triple_encoded_pairs", "trailing_newline"],
)
def test_formats_parse_to_the_same_tracks(text: str) -> None:
    tracks = parse_tracks_json(text, 64, 48)
    assert tracks.points.dtype == torch.float32 and tracks.points.shape == (2, 3, 2)
    assert tracks.points.tolist() == [[list(point) for point in track] for track in POINTS]
    assert tracks.visible.all() and (tracks.width, tracks.height, tracks.count, tracks.frames) == (64, 48, 2, 3)


@pytest.mark.parametrize(
    "text", [json.dumps([{"x": x, "y": y} for x, y in POINTS[0]]), json.dumps([[x, y] for x, y in POINTS[0]])]
)
def test_a_bare_list_of_points_is_one_track(text: str) -> None:
    tracks = parse_tracks_json(text, 64, 48)
    assert tracks.points.tolist() == [[list(point) for point in POINTS[0]]]


def test_points_off_the_canvas_are_kept_and_invisible() -> None:
    text = json.dumps([[[0, 0], [10, 5], [10.01, 5], [-0.5, 2], [3, 5.5], [3, -1]]])
    tracks = parse_tracks_json(text, 10, 5)
    assert tracks.points[0, :, 0].tolist() == pytest.approx([0, 10, 10.01, -0.5, 3, 3])
    assert tracks.visible.tolist() == [[True, True, False, False, False, False]]


def test_json_round_trip_is_exact() -> None:
    generator = torch.Generator().manual_seed(7)
    points = torch.rand(3, 17, 2, generator=generator, dtype=torch.float64) * 1000 - 100  # some off the canvas
    tracks = Tracks.on_canvas(points, 832, 480)
    text = tracks_to_json(tracks)
    again = parse_tracks_json(text, 832, 480)
    assert_same(again, tracks)
    assert tracks_to_json(again) == text
    assert not tracks.visible.all() and tracks.visible.any()


def test_json_text_to_tracks_and_back() -> None:
    first = parse_tracks_json('[[{"x": 0.1, "y": 0.2}, {"x": 1e2, "y": 3}]]', 200, 100)
    assert_same(parse_tracks_json(tracks_to_json(first), 200, 100), first)
    assert json.loads(tracks_to_json(first))[0][1] == {"x": 100.0, "y": 3.0}


def straight_track(length: int) -> Tracks:
    """One track moving at constant speed: x = 10 + 3k, y = 50 - 2k at frame k."""
    steps = torch.arange(length, dtype=torch.float32)
    return Tracks.on_canvas(torch.stack((10 + 3 * steps, 50 - 2 * steps), dim=-1).unsqueeze(0), 100, 100)


@pytest.mark.parametrize("frames", [9, 3, 5, 2, 17])
def test_resampling_a_constant_speed_track_gives_the_analytic_positions(frames: int) -> None:
    resampled = resample_tracks(straight_track(5), frames)
    time = torch.arange(frames, dtype=torch.float64) * 4 / (frames - 1)  # source frame of each output frame
    expected = torch.stack((10 + 3 * time, 50 - 2 * time), dim=-1).to(torch.float32)
    assert torch.allclose(resampled.points[0], expected, atol=1e-5)
    assert resampled.points[0, 0].tolist() == [10.0, 50.0] and resampled.points[0, -1].tolist() == [22.0, 42.0]
    assert resampled.visible.all() and (resampled.width, resampled.height) == (100, 100)


def test_resampling_to_one_frame_keeps_the_first_point_and_to_the_same_count_changes_nothing() -> None:
    track = straight_track(5)
    assert resample_tracks(track, 1).points.tolist() == [[[10.0, 50.0]]]
    assert_same(resample_tracks(track, 5), track)
    assert resample_tracks(straight_track(1), 4).points[0].tolist() == [[10.0, 50.0]] * 4


def test_a_resampled_point_is_visible_when_both_source_points_around_it_are() -> None:
    track = straight_track(5)
    hidden = Tracks(track.points, torch.tensor([[True, True, False, True, True]]), 100, 100)
    # output frame j sits at source frame j / 2
    assert resample_tracks(hidden, 9).visible.tolist() == [[True, True, True, False, False, False, True, True, True]]


def test_parsing_with_a_frame_count_resamples_tracks_of_different_lengths() -> None:
    tracks = parse_tracks_json("[[[0, 0], [8, 4]], [[0, 0], [4, 0], [4, 8]]]", 10, 10, frames=5)
    assert tracks.points.tolist() == [
        [[0, 0], [2, 1], [4, 2], [6, 3], [8, 4]],
        [[0, 0], [2, 0], [4, 0], [4, 4], [4, 8]],
    ]


def gaussian(grid_height: int, grid_width: int, x: float, y: float, temperature: float) -> torch.Tensor:
    """exp(-d^2 / temperature) from each pixel centre (j + 0.5, i + 0.5) to (x, y), in float64."""
    columns = torch.arange(grid_width, dtype=torch.float64) + 0.5
    rows = torch.arange(grid_height, dtype=torch.float64) + 0.5
    return torch.exp(-((columns.view(1, -1) - x) ** 2 + (rows.view(-1, 1) - y) ** 2) / temperature)


def test_a_single_track_splats_a_gaussian_at_its_scaled_point() -> None:
    # canvas 80x40 onto an 8x4 grid: canvas (35, 15) is grid (3.5, 1.5), the centre of row 1, column 3
    tracks = Tracks.on_canvas(torch.tensor([[[35.0, 15.0], [5.0, 35.0]]]), 80, 40)
    weights = splat_tracks(tracks, 4, 8, 2, temperature=2.0, topk=1)
    assert weights.shape == (2, 1, 4, 8) and weights.dtype == torch.float32
    assert weights[0, 0, 1, 3] == 1.0 and weights[0, 0].argmax() == 1 * 8 + 3
    assert torch.allclose(weights[0, 0].double(), gaussian(4, 8, 3.5, 1.5, 2.0), atol=1e-6)
    assert torch.allclose(weights[1, 0].double(), gaussian(4, 8, 0.5, 3.5, 2.0), atol=1e-6)
    # one pixel away the weight is exp(-1 / temperature): the temperature sets the width
    assert weights[0, 0, 1, 4].item() == pytest.approx(math.exp(-1 / 2.0))
    wider = splat_tracks(tracks, 4, 8, 2, temperature=8.0, topk=1)
    assert wider[0, 0, 1, 4].item() == pytest.approx(math.exp(-1 / 8.0))


def test_splatting_resamples_the_tracks_to_the_frame_count() -> None:
    tracks = Tracks.on_canvas(torch.tensor([[[0.5, 0.5], [1.5, 0.5], [2.5, 0.5], [3.5, 0.5], [4.5, 0.5]]]), 8, 1)
    weights = splat_tracks(tracks, 1, 8, 3, temperature=1.0, topk=1)
    assert weights[:, 0, 0].argmax(dim=-1).tolist() == [0, 2, 4]


TWO_POINTS = ((1.2, 1.3), (6.1, 2.6))  # grid pixels; no pixel centre is equally far from both


def two_tracks() -> Tracks:
    return Tracks.on_canvas(torch.tensor([[point] for point in TWO_POINTS]), 8, 4)


def test_top_1_gives_each_pixel_only_its_nearest_track() -> None:
    weights = splat_tracks(two_tracks(), 4, 8, 1, temperature=3.0, topk=1)[0].double()
    raw = torch.stack([gaussian(4, 8, x, y, 3.0) for x, y in TWO_POINTS])
    nearest = raw.argmax(dim=0)
    assert ((weights > 0).sum(dim=0) == 1).all()
    assert torch.equal(weights.argmax(dim=0), nearest)
    assert torch.allclose(weights.amax(dim=0), raw.amax(dim=0), atol=1e-6)
    assert {0, 1} == set(nearest.flatten().tolist())


def test_kept_weights_mix_in_proportion_and_sum_to_the_nearest_gaussian() -> None:
    weights = splat_tracks(two_tracks(), 4, 8, 1, temperature=3.0, topk=2)[0].double()
    raw = torch.stack([gaussian(4, 8, x, y, 3.0) for x, y in TWO_POINTS])
    assert torch.allclose(weights, raw / raw.sum(dim=0) * raw.amax(dim=0), atol=1e-6)
    assert torch.allclose(weights.sum(dim=0), raw.amax(dim=0), atol=1e-6)
    assert (weights.sum(dim=0) <= 1 + 1e-6).all()


def test_invisible_points_get_no_weight_and_unreached_pixels_are_zero() -> None:
    tracks = Tracks.on_canvas(torch.tensor([[[2.0, 2.0], [-5.0, 2.0]], [[200.0, 2.0], [-5.0, 2.0]]]), 8, 4)
    weights = splat_tracks(tracks, 4, 8, 2, temperature=1.0, topk=2)
    assert torch.isfinite(weights).all()
    assert weights[0, 1].abs().sum() == 0 and weights[1].abs().sum() == 0
    # far pixels whose Gaussian underflows to 0 are zero, not NaN
    assert splat_tracks(tracks, 4, 8, 2, temperature=1e-3, topk=1)[0, 0, 3, 7] == 0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"temperature": 0.0}, "temperature must be positive"),
        ({"topk": 0}, "topk must be at least 1"),
        ({"frames": 0}, "frames must be at least 1"),
        ({"height": 0}, "at least 1x1"),
    ],
)
def test_splat_refuses_bad_settings(options: dict[str, float], message: str) -> None:
    settings = {"height": 4, "width": 8, "frames": 1, "temperature": 1.0, "topk": 1, **options}
    with pytest.raises(ValueError, match=message):
        splat_tracks(two_tracks(), **settings)


def background(frames: int, height: int = 48, width: int = 64, channels: int = 3) -> torch.Tensor:
    """A recognisable background no track colour can equal (values off the 1/255 grid)."""
    return torch.rand(frames, height, width, channels, generator=torch.Generator().manual_seed(3)) * 0.5 + 0.001


def pixels_near(height: int, width: int, centres: list[tuple[float, float]], radius: float) -> torch.Tensor:
    """[H, W] bool: pixel centres within ``radius`` of any of ``centres`` (video pixels)."""
    columns = torch.arange(width, dtype=torch.float64) + 0.5
    rows = torch.arange(height, dtype=torch.float64) + 0.5
    near = torch.zeros(height, width, dtype=torch.bool)
    for x, y in centres:
        near |= (columns.view(1, -1) - x) ** 2 + (rows.view(-1, 1) - y) ** 2 <= radius**2
    return near


def test_render_colours_the_current_point_and_leaves_the_background() -> None:
    video = background(2)
    tracks = Tracks.on_canvas(torch.tensor([[[10.5, 20.5], [40.5, 20.5]]]), 64, 48)
    drawn = render_tracks(video, tracks, point_radius=4, line_width=2)
    colour = track_colours(1)[0]
    assert drawn.shape == video.shape and drawn.dtype == video.dtype
    for frame, (x, y) in enumerate([(10.5, 20.5), (40.5, 20.5)]):
        dot = pixels_near(48, 64, [(x, y)], 3.0)
        assert (drawn[frame][dot] == colour).all()
    # frame 0: only the dot; frame 1: the dot and the path from (10.5, 20.5) along the row
    assert torch.equal(
        drawn[0][~pixels_near(48, 64, [(10.5, 20.5)], 5.5)], video[0][~pixels_near(48, 64, [(10.5, 20.5)], 5.5)]
    )
    path = [(x + 0.5, 20.5) for x in range(10, 41)]
    untouched = ~pixels_near(48, 64, path, 5.5)
    assert torch.equal(drawn[1][untouched], video[1][untouched])
    assert (drawn[1, 20, 25] == colour).all()  # on the path between the two points


def test_render_skips_invisible_points_and_scales_the_canvas() -> None:
    video = background(3)
    # canvas 640x480 onto 64x48 video: (205, 105) is video pixel centre (20.5, 10.5); frame 1 is off the canvas
    tracks = Tracks.on_canvas(torch.tensor([[[205.0, 105.0], [-10.0, 105.0], [205.0, 105.0]]]), 640, 480)
    drawn = render_tracks(video, tracks, point_radius=2, line_width=1)
    assert torch.equal(drawn[1], video[1])
    assert (drawn[0, 10, 20] == track_colours(1)[0]).all() and (drawn[2, 10, 20] == track_colours(1)[0]).all()
    assert torch.equal(
        drawn[0][~pixels_near(48, 64, [(20.5, 10.5)], 3.5)], video[0][~pixels_near(48, 64, [(20.5, 10.5)], 3.5)]
    )


def test_render_gives_each_track_its_own_colour_over_a_repeated_still_and_keeps_alpha() -> None:
    still = background(1, channels=4)
    tracks = Tracks.on_canvas(torch.tensor([[[10.5, 10.5]] * 3, [[50.5, 30.5]] * 3]), 64, 48)
    drawn = render_tracks(still, tracks, point_radius=3, line_width=0)
    colours = track_colours(2)
    assert drawn.shape == (3, 48, 64, 4)
    assert (drawn[:, 10, 10, :3] == colours[0]).all() and (drawn[:, 30, 50, :3] == colours[1]).all()
    assert torch.equal(drawn[..., 3], still[..., 3].expand(3, -1, -1))
    assert len({tuple(colour) for colour in track_colours(8).tolist()}) == 8


def test_render_needs_matching_frame_counts() -> None:
    with pytest.raises(ValueError, match="the video has 2 frames but the tracks have 3"):
        render_tracks(background(2), straight_track(3))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[{"x": 1, "y": 2}]', r"not valid JSON: Expecting ',' delimiter at line 1 column 20 \(char 19\)"),
        (json.dumps("[[1, 2]"), r"not valid JSON \(inside the JSON string at depth 1\)"),
        ('{"x": 1}', "must be a list of tracks, got dict"),
        ("[]", "holds no tracks"),
        ('[[{"x": 1, "y": 2}], 5]', r"track 1 is not a list of points \(got int\)"),
        ('[[{"x": 1, "y": 2}], []]', "track 1 has no points"),
        ('[[{"x": 1, "y": 2}, {"x": 3}]]', "track 0, point 1 has no 'y'"),
        ('[[{"y": 1}]]', "track 0, point 0 has no 'x'"),
        ("[[[1, 2, 3]]]", r"track 0, point 0 must be \{\"x\": \.\., \"y\": \.\.\} or \[x, y\]"),
        ('[[{"x": "1", "y": 2}]]', "track 0, point 0: x is not a number"),
        ("[[[1, null]]]", "track 0, point 0: y is not a number"),
        ("[[[true, 1]]]", "track 0, point 0: x is not a number"),
        ("[[[1, NaN]]]", "track 0, point 0: y is not finite"),
        ("[[[1, 2]], [[1, 2], [3, 4]], [[1, 2]], [[0, 0], [1, 1], [2, 2]]]", "track 1 has 2, track 3 has 3"),
    ],
)
def test_bad_json_is_refused_with_the_reason(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_tracks_json(text, 64, 48)


def test_tracks_refuse_inconsistent_values() -> None:
    with pytest.raises(ValueError, match="at least one track"):
        Tracks.on_canvas(torch.zeros(0, 3, 2), 8, 8)
    with pytest.raises(ValueError, match="visibility must be a bool tensor"):
        Tracks(torch.zeros(1, 3, 2), torch.ones(1, 2, dtype=torch.bool), 8, 8)
    with pytest.raises(ValueError, match="frames must be at least 1"):
        resample_tracks(straight_track(3), 0)
    with pytest.raises(ValueError, match="frames must be at least 1"):
        parse_tracks_json("[[[1, 2]]]", 8, 8, frames=0)
