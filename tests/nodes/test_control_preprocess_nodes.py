"""Preprocessor nodes: ComfyUI's Canny sockets, outputs through the node runner, chunking, named errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

import nodes.control_preprocess as control_preprocess
from models.control.canny import canny_edges
from models.control.pose import KEYPOINT_COLORS
from nodes.control_preprocess import (
    NODE_CLASS_MAPPINGS,
    NODE_DISPLAY_NAME_MAPPINGS,
    Canny,
    ImageToGrayscaleControl,
    PoseKeypointsToImage,
    ScribbleControl,
)
from nodes.folders import Folders
from tests.nodes.node_runner import NodeRunner


@pytest.fixture
def runner(tmp_path: Path) -> NodeRunner:
    return NodeRunner(Folders.under(tmp_path))


def white_square(frames: int = 1, size: int = 24) -> torch.Tensor:
    images = torch.zeros(frames, size, size, 3)
    images[:, 8:16, 8:16] = 1.0
    return images


def test_canny_has_comfyuis_sockets() -> None:
    threshold = {"min": 0.01, "max": 0.99, "step": 0.01}
    inputs = Canny.INPUT_TYPES()["required"]
    assert list(inputs) == ["image", "low_threshold", "high_threshold"]
    assert inputs["image"][0] == "IMAGE"
    for name, default in (("low_threshold", 0.4), ("high_threshold", 0.8)):
        kind, options = inputs[name]
        assert kind == "FLOAT" and {**threshold, "default": default}.items() <= options.items()
    assert (Canny.RETURN_TYPES, Canny.FUNCTION, Canny.CATEGORY) == (("IMAGE",), "detect_edge", "image/preprocessors")


def test_every_node_is_registered_with_a_display_name() -> None:
    assert set(NODE_CLASS_MAPPINGS) == set(NODE_DISPLAY_NAME_MAPPINGS)
    assert set(NODE_CLASS_MAPPINGS) == {"Canny", "ImageToGrayscaleControl", "ScribbleControl", "PoseKeypointsToImage"}


def test_canny_gives_white_edges_on_black(runner: NodeRunner) -> None:
    images = white_square(frames=2)
    (edges,) = runner.result(Canny, image=images, low_threshold=0.4, high_threshold=0.8)
    assert edges.shape == (2, 24, 24, 3) and edges.dtype == torch.float32
    expected = canny_edges(images, 0.4, 0.8).to(torch.float32)
    assert torch.equal(edges, expected[..., None].expand(-1, -1, -1, 3))
    assert edges[0, 8, 8:16].eq(1).all() and edges[0, 10:14, 10:14].eq(0).all()


def test_canny_in_chunks_matches_one_pass(runner: NodeRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(5, 16, 12, 3, generator=generator)
    (whole,) = runner.result(Canny, image=images, low_threshold=0.3, high_threshold=0.6)
    monkeypatch.setattr(control_preprocess, "_CHUNK_PIXELS", 16 * 12 * 2)  # two frames per chunk
    chunked_runner = NodeRunner(runner.folders)
    (chunked,) = chunked_runner.result(Canny, image=images, low_threshold=0.3, high_threshold=0.6)
    assert torch.equal(chunked, whole)
    assert chunked_runner.progress == [(2, 5), (4, 5), (5, 5)]


def test_canny_refuses_low_above_high(runner: NodeRunner) -> None:
    message = "Canny: low_threshold (0.9) must not be above high_threshold (0.5)"
    with pytest.raises(ValueError, match=re.escape(message)):
        runner.result(Canny, image=white_square(), low_threshold=0.9, high_threshold=0.5)
    with pytest.raises(ValueError, match="Canny: image must be an IMAGE tensor"):
        runner.result(Canny, image=torch.zeros(8, 8, 3), low_threshold=0.4, high_threshold=0.8)


def test_grayscale_is_bt601_luma_in_three_channels(runner: NodeRunner) -> None:
    images = torch.tensor([1.0, 0.5, 0.25]).expand(2, 3, 4, 3)
    (gray,) = runner.result(ImageToGrayscaleControl, image=images)
    assert gray.shape == (2, 3, 4, 3)
    assert torch.allclose(gray, torch.full_like(gray, 0.299 + 0.587 * 0.5 + 0.114 * 0.25))


def test_scribble_from_a_drawing_widens_dark_strokes(runner: NodeRunner) -> None:
    drawing = torch.ones(1, 12, 12, 3)
    drawing[0, 6, 2:10] = 0.1  # a dark horizontal stroke on white
    inputs = {"low_threshold": 0.4, "high_threshold": 0.8, "line_threshold": 0.5}
    (lines,) = runner.result(ScribbleControl, image=drawing, source="dark_lines", thickness=3, **inputs)
    expected = torch.zeros(12, 12)
    expected[5:8, 1:11] = 1.0  # a 3-wide disc covers its whole 3x3 square
    assert torch.equal(lines[0, ..., 0], expected) and torch.equal(lines[..., 0], lines[..., 2])


def test_scribble_from_edges_thickens_the_canny_contour(runner: NodeRunner) -> None:
    inputs = {"low_threshold": 0.4, "high_threshold": 0.8, "line_threshold": 0.5}
    (thin,) = runner.result(ScribbleControl, image=white_square(), source="edges", thickness=1, **inputs)
    (thick,) = runner.result(ScribbleControl, image=white_square(), source="edges", thickness=3, **inputs)
    assert torch.equal(thin, runner.result(Canny, image=white_square(), low_threshold=0.4, high_threshold=0.8)[0])
    ring = torch.zeros(24, 24)
    ring[7:17, 7:17] = 1.0
    ring[10:14, 10:14] = 0.0
    assert torch.equal(thick[0, ..., 1], ring)


def test_scribble_refuses_bad_settings(runner: NodeRunner) -> None:
    inputs = {"image": white_square(), "low_threshold": 0.4, "high_threshold": 0.8, "line_threshold": 0.5}
    with pytest.raises(ValueError, match=re.escape("ScribbleControl: thickness (0) must lie between 1 and 64")):
        runner.result(ScribbleControl, source="edges", thickness=0, **inputs)
    with pytest.raises(ValueError, match="ScribbleControl: source 'lines' is not one of edges, dark_lines"):
        runner.result(ScribbleControl, source="lines", thickness=1, **inputs)
    inputs["low_threshold"] = 0.9
    with pytest.raises(ValueError, match=re.escape("ScribbleControl: low_threshold (0.9) must not be above")):
        runner.result(ScribbleControl, source="edges", thickness=1, **inputs)


def pose_json(people: list[list[float]]) -> str:
    return json.dumps([{"people": [{"pose_keypoints_2d": p} for p in people], "canvas_width": 64, "canvas_height": 48}])


def test_pose_node_renders_frames_at_the_canvas_size(runner: NodeRunner) -> None:
    keypoints = [0.0] * 54
    keypoints[3:6] = [32, 24, 1]  # neck
    (image,) = runner.result(PoseKeypointsToImage, pose_json=pose_json([keypoints]), width=0, height=0)
    assert image.shape == (1, 48, 64, 3)
    assert image[0, 24, 32].mul(255).round().tolist() == list(KEYPOINT_COLORS[1])
    (wide,) = runner.result(PoseKeypointsToImage, pose_json=pose_json([keypoints]), width=128, height=0)
    assert wide.shape == (1, 48, 128, 3)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[{", "PoseKeypointsToImage: pose_json is not valid JSON"),
        (pose_json([[0.0] * 54, [0.0] * 10]), "PoseKeypointsToImage: pose_json frame 0, person 1: 'pose_keypoints_2d'"),
        (json.dumps([{"people": []}, {}]), "PoseKeypointsToImage: pose_json frame 1: a frame must be an object with"),
        (json.dumps({"people": []}), "PoseKeypointsToImage: frame 0 has no 'canvas_width'; set width to a size above"),
    ],
)
def test_pose_node_errors_name_the_node_input_and_place(runner: NodeRunner, text: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        runner.result(PoseKeypointsToImage, pose_json=text, width=0, height=0)
