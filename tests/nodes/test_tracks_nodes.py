"""Trajectory nodes: sockets, JSON in and out through the nodes, resampling, drawing, and named errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from graph.spec import NodeSpec
from models.control.tracks import Tracks, track_colours
from nodes.folders import Folders
from nodes.tracks import (
    NODE_CLASS_MAPPINGS,
    NODE_DISPLAY_NAME_MAPPINGS,
    DrawTracksOnVideo,
    ResampleTracks,
    TracksFromJSON,
    TracksToJSON,
)
from tests.nodes.node_runner import NodeRunner

INPUTS = {
    "TracksFromJSON": (("tracks_json", "width", "height", "frames"), ("TRACKS",)),
    "TracksToJSON": (("tracks",), ("STRING",)),
    "ResampleTracks": (("tracks", "frames"), ("TRACKS",)),
    "DrawTracksOnVideo": (("images", "tracks", "point_size", "line_width"), ("IMAGE",)),
}
SPLINE_JSON = '[[{"x": 100, "y": 50}, {"x": 200, "y": 50}, {"x": 300, "y": 150}]]'


@pytest.fixture
def nodes(tmp_path: Path) -> NodeRunner:
    return NodeRunner(Folders.under(tmp_path))


def from_json(nodes: NodeRunner, text: str, width: int = 400, height: int = 200, frames: int = 0) -> Tracks:
    (tracks,) = nodes.result(TracksFromJSON, tracks_json=text, width=width, height=height, frames=frames)
    return tracks


def test_specs() -> None:
    assert set(NODE_CLASS_MAPPINGS) == set(NODE_DISPLAY_NAME_MAPPINGS) == set(INPUTS)
    for name, node_class in NODE_CLASS_MAPPINGS.items():
        spec = NodeSpec.from_class(name, node_class, display_name=NODE_DISPLAY_NAME_MAPPINGS[name])
        inputs, outputs = INPUTS[name]
        assert spec.category == "conditioning/tracks" and spec.output_types == outputs
        assert spec.input_order["required"] + spec.input_order["optional"] == inputs
        assert all(declared.options.get("tooltip") for declared in spec.inputs.values())
    json_input = NodeSpec.from_class("TracksFromJSON", TracksFromJSON).inputs["tracks_json"]
    assert json_input.options["multiline"] is True


def test_json_round_trip_through_the_nodes(nodes: NodeRunner) -> None:
    tracks = from_json(nodes, json.dumps(SPLINE_JSON))  # double-encoded, as KJNodes' Spline Editor may write it
    assert tracks.points.tolist() == [[[100.0, 50.0], [200.0, 50.0], [300.0, 150.0]]]
    assert (tracks.width, tracks.height) == (400, 200)
    (text,) = nodes.result(TracksToJSON, tracks=tracks)
    again = from_json(nodes, text)
    assert torch.equal(again.points, tracks.points) and torch.equal(again.visible, tracks.visible)
    assert json.loads(text) == json.loads(SPLINE_JSON)


def test_frames_resamples_on_reading_and_resample_node(nodes: NodeRunner) -> None:
    stretched = from_json(nodes, SPLINE_JSON, frames=5)
    assert stretched.points[0].tolist() == [[100, 50], [150, 50], [200, 50], [250, 100], [300, 150]]
    (resampled,) = nodes.result(ResampleTracks, tracks=stretched, frames=3)
    assert resampled.points[0].tolist() == [[100, 50], [200, 50], [300, 150]]


def test_draw_scales_the_canvas_to_the_video(nodes: NodeRunner) -> None:
    video = torch.full((3, 20, 40, 3), 0.2)
    tracks = from_json(nodes, SPLINE_JSON)  # canvas 400x200 onto 40x20: points at (10, 5), (20, 5), (30, 15)
    (drawn,) = nodes.result(DrawTracksOnVideo, images=video, tracks=tracks, point_size=1, line_width=1)
    colour = track_colours(1)[0]
    assert drawn.shape == video.shape
    for frame, (row, column) in enumerate([(4, 9), (4, 19), (14, 29)]):
        assert (drawn[frame, row, column] == colour).all()
    assert (drawn[:, 18:, :5] == 0.2).all()  # far from every track


def test_draw_defaults_to_visible_marks(nodes: NodeRunner) -> None:
    video = torch.zeros(3, 20, 40, 3)
    (drawn,) = nodes.result(DrawTracksOnVideo, images=video, tracks=from_json(nodes, SPLINE_JSON))
    assert (drawn[2] != 0).any(dim=-1).sum() > 40  # dot of radius 4 plus the path so far


ERRORS: list[tuple[type, dict[str, Any], str]] = [
    (TracksFromJSON, {"tracks_json": "[[1, 2"}, r"TracksFromJSON: tracks_json: is not valid JSON: .* \(char 6\)"),
    (TracksFromJSON, {"tracks_json": "[[[1, 2]], 7]"}, "TracksFromJSON: tracks_json: track 1 is not a list"),
    (TracksFromJSON, {"tracks_json": '[{"x": 1}]'}, "TracksFromJSON: tracks_json: track 0, point 0 has no 'y'"),
    (TracksFromJSON, {"tracks_json": '[{"x": 1, "y": "a"}]'}, "TracksFromJSON: tracks_json: .* y is not a number"),
    (TracksFromJSON, {"tracks_json": "[]"}, "TracksFromJSON: tracks_json: holds no tracks"),
    (
        TracksFromJSON,
        {"tracks_json": "[[[1, 2]], [[1, 2], [3, 4]]]"},
        "TracksFromJSON: tracks_json: tracks have different lengths .* track 0 has 1 but track 1 has 2",
    ),
    (TracksFromJSON, {"frames": -1}, r"TracksFromJSON: frames \(-1\) must be 0"),
    (TracksFromJSON, {"width": 0}, r"TracksFromJSON: width \(0\) must be at least 1"),
    (ResampleTracks, {"frames": 0}, "ResampleTracks: frames: frames must be at least 1, got 0"),
    (DrawTracksOnVideo, {"images": torch.zeros(2, 8, 8, 3)}, "DrawTracksOnVideo: images: the video has 2 frames"),
    (DrawTracksOnVideo, {"images": torch.zeros(0, 8, 8, 3)}, "DrawTracksOnVideo: images is empty"),
    (DrawTracksOnVideo, {"line_width": -1}, r"DrawTracksOnVideo: line_width \(-1\) must not be negative"),
]


@pytest.mark.parametrize(("node_class", "inputs", "message"), ERRORS)
def test_bad_input_names_node_input_and_reason(
    nodes: NodeRunner, node_class: type, inputs: dict[str, Any], message: str
) -> None:
    tracks = Tracks.on_canvas(torch.zeros(1, 3, 2), 8, 8)
    defaults: dict[type, dict[str, Any]] = {
        TracksFromJSON: {"tracks_json": SPLINE_JSON, "width": 400, "height": 200, "frames": 0},
        ResampleTracks: {"tracks": tracks, "frames": 4},
        DrawTracksOnVideo: {"images": torch.zeros(3, 8, 8, 3), "tracks": tracks},
    }
    with pytest.raises(ValueError, match=message):
        nodes.result(node_class, **{**defaults[node_class], **inputs})
