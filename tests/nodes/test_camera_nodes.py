"""Camera nodes driven like the executor does: specs, paths from presets and files, embeddings, warp guides, errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from graph.spec import NodeSpec
from models.control.camera import PRESETS, CameraPath, compose, format_pose_text, preset_path, resample
from models.control.plucker import plucker_embedding
from models.control.warp_guide import warp_guide
from nodes.camera import (
    NODE_CLASS_MAPPINGS,
    NODE_DISPLAY_NAME_MAPPINGS,
    CameraPathConcat,
    CameraPluckerEmbedding,
    CameraWarpGuide,
    LoadCameraPath,
    ResampleCameraPath,
    SaveCameraPath,
)
from nodes.camera import CameraPath as CameraPathNode
from nodes.folders import Folders
from tests.nodes.node_runner import NodeRunner

OUTPUTS = {
    "CameraPath": ("CAMERA_PATH",),
    "LoadCameraPath": ("CAMERA_PATH",),
    "SaveCameraPath": (),
    "ResampleCameraPath": ("CAMERA_PATH",),
    "CameraPathConcat": ("CAMERA_PATH",),
    "CameraPluckerEmbedding": ("CAMERA_PLUCKER",),
    "CameraWarpGuide": ("IMAGE", "MASK"),
}


@pytest.fixture
def nodes(tmp_path: Path) -> NodeRunner:
    return NodeRunner(Folders.under(tmp_path))


def make_path(nodes: NodeRunner, **inputs: Any) -> CameraPath:
    defaults = {"preset": "pan_left", "frames": 5, "speed": 1.0, "easing": "linear"}
    return nodes.result(CameraPathNode, **{**defaults, **inputs})[0]


def test_mappings_and_specs() -> None:
    assert set(NODE_CLASS_MAPPINGS) == set(OUTPUTS) == set(NODE_DISPLAY_NAME_MAPPINGS)
    for class_type, node_class in NODE_CLASS_MAPPINGS.items():
        assert node_class.__name__ == class_type
        spec = NodeSpec.from_class(class_type, node_class, display_name=NODE_DISPLAY_NAME_MAPPINGS[class_type])
        assert spec.category == "conditioning/camera" and spec.description
        assert spec.output_types == OUTPUTS[class_type]
        assert all(declared.options.get("tooltip") for declared in spec.inputs.values())
    spec = NodeSpec.from_class("CameraPath", CameraPathNode)
    assert spec.inputs["preset"].choices == PRESETS
    assert spec.inputs["second_preset"].choices == ("none", *PRESETS)


def test_camera_path_node_builds_the_preset(nodes: NodeRunner) -> None:
    path = make_path(nodes, preset="orbit_right", frames=7, speed=2.0, easing="ease_in", width=640, height=480)
    expected = preset_path("orbit_right", 7, 2.0, "ease_in", aspect_ratio=640 / 480)
    assert path.allclose(expected)
    assert path.intrinsics[0, 1] == pytest.approx(path.intrinsics[0, 0] * 640 / 480, abs=1e-12)


def test_camera_path_node_composes_a_second_preset(nodes: NodeRunner) -> None:
    path = make_path(nodes, preset="pan_right", second_preset="dolly_in", second_speed=3.0, frames=6)
    aspect = 832 / 480
    expected = compose(
        preset_path("pan_right", 6, aspect_ratio=aspect), preset_path("dolly_in", 6, 3.0, aspect_ratio=aspect)
    )
    assert path.allclose(expected)


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"preset": "spin"}, "CameraPath: preset 'spin' is not one of static"),
        ({"second_preset": "spin"}, "CameraPath: second_preset 'spin' is not one of none, static"),
        ({"easing": "snap"}, "CameraPath: easing 'snap' is not one of linear"),
        ({"frames": 0}, r"CameraPath: frames \(0\) must be at least 1"),
        ({"speed": -0.5}, r"CameraPath: speed \(-0.5\) must be at least 0"),
        ({"second_speed": -1.0}, r"CameraPath: second_speed \(-1.0\) must be at least 0"),
        ({"height": 0}, r"CameraPath: height \(0\) must be at least 1"),
        ({"field_of_view": 200.0}, r"CameraPath: field_of_view \(200.0\) must be between 0 and 180"),
    ],
)
def test_camera_path_node_names_bad_inputs(nodes: NodeRunner, inputs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_path(nodes, **inputs)


def test_save_then_load_gives_back_the_path(nodes: NodeRunner, tmp_path: Path) -> None:
    path = make_path(nodes, preset="roll_clockwise", second_preset="zoom_in", frames=4, easing="ease_in_out")
    assert nodes.result(SaveCameraPath, camera_path=path, filename_prefix="shots/roll") == ()
    saved = nodes.call(SaveCameraPath, camera_path=path, filename_prefix="shots/roll")["ui"]["camera_paths"]
    assert saved == [{"filename": "roll_00002_.txt", "subfolder": "shots", "type": "output"}]
    written = tmp_path / "output" / "shots" / "roll_00002_.txt"
    (tmp_path / "input" / "poses").mkdir(parents=True)
    (tmp_path / "input" / "poses" / "roll.txt").write_text(written.read_text())
    bound = nodes.bind(LoadCameraPath)
    assert bound.INPUT_TYPES()["required"]["file"][0] == ["poses/roll.txt"]
    loaded = nodes.result(LoadCameraPath, file="poses/roll.txt")[0]
    assert np.array_equal(loaded.extrinsics, path.extrinsics)
    assert np.array_equal(loaded.intrinsics, path.intrinsics)
    assert bound.IS_CHANGED("poses/roll.txt") != bound.IS_CHANGED("missing.txt")


def test_load_names_the_file_and_the_bad_line(nodes: NodeRunner, tmp_path: Path) -> None:
    (tmp_path / "input").mkdir()
    good = format_pose_text(preset_path("static", 1)).splitlines()
    (tmp_path / "input" / "bad.txt").write_text("\n".join([*good, "1 2 3"]) + "\n")
    with pytest.raises(ValueError, match=r"LoadCameraPath: file 'bad.txt': line 3: expected 19 numbers"):
        nodes.result(LoadCameraPath, file="bad.txt")
    with pytest.raises(ValueError, match=r"LoadCameraPath: file 'missing.txt' does not exist"):
        nodes.result(LoadCameraPath, file="missing.txt")
    with pytest.raises(ValueError, match=r"LoadCameraPath: file '\.\./secret\.txt' climbs out"):
        nodes.result(LoadCameraPath, file="../secret.txt")


def test_save_refuses_a_prefix_outside_the_output_folder(nodes: NodeRunner) -> None:
    with pytest.raises(ValueError, match=r"SaveCameraPath: filename_prefix '\.\./x' points outside"):
        nodes.call(SaveCameraPath, camera_path=preset_path("static", 1), filename_prefix="../x")


def test_resample_and_concat_nodes(nodes: NodeRunner) -> None:
    path = preset_path("tilt_up", 5)
    assert nodes.result(ResampleCameraPath, camera_path=path, frames=9)[0].allclose(resample(path, 9))
    joined = nodes.result(CameraPathConcat, camera_path_a=path, camera_path_b=path)[0]
    assert joined.allclose(preset_path("tilt_up", 9))
    with pytest.raises(ValueError, match=r"ResampleCameraPath: frames \(0\) must be at least 1"):
        nodes.result(ResampleCameraPath, camera_path=path, frames=0)
    with pytest.raises(ValueError, match="CameraPathConcat: camera_path_b must be a CAMERA_PATH, got str"):
        nodes.result(CameraPathConcat, camera_path_a=path, camera_path_b="pan")


def test_plucker_node(nodes: NodeRunner) -> None:
    path = preset_path("dolly_in", 3)
    embedding = nodes.result(CameraPluckerEmbedding, camera_path=path, width=12, height=8)[0]
    assert embedding.shape == (3, 6, 8, 12) and embedding.dtype == torch.float32
    assert torch.equal(embedding, plucker_embedding(path, 12, 8))
    with pytest.raises(ValueError, match=r"CameraPluckerEmbedding: width \(0\) must be at least 1"):
        nodes.result(CameraPluckerEmbedding, camera_path=path, width=0, height=8)
    with pytest.raises(ValueError, match="CameraPluckerEmbedding: camera_path must be a CAMERA_PATH, got Tensor"):
        nodes.result(CameraPluckerEmbedding, camera_path=embedding, width=12, height=8)


def test_warp_guide_node_with_and_without_depth(nodes: NodeRunner) -> None:
    image = torch.rand(2, 6, 16, 3, generator=torch.Generator().manual_seed(0))
    path = preset_path("pan_right", 4, speed=4.0, aspect_ratio=16 / 6)
    guide, mask = nodes.result(CameraWarpGuide, image=image, camera_path=path)
    expected_guide, expected_mask = warp_guide(image[0], path)
    assert torch.equal(guide, expected_guide) and torch.equal(mask, expected_mask)
    assert guide.shape == (4, 6, 16, 3) and mask.shape == (4, 6, 16) and mask[-1].any()
    # disparity 0.5 everywhere is depth 2; the depth mode reads the same map as distances directly
    disparity = torch.full((1, 6, 16, 3), 0.5)
    dolly = preset_path("dolly_in", 3, speed=10.0, aspect_ratio=16 / 6)
    from_disparity = nodes.result(CameraWarpGuide, image=image, camera_path=dolly, depth=disparity)
    from_depth = nodes.result(CameraWarpGuide, image=image, camera_path=dolly, depth=disparity * 4, depth_mode="depth")
    expected = warp_guide(image[0], dolly, torch.full((6, 16), 2.0, dtype=torch.float64))
    for result in (from_disparity, from_depth):
        assert torch.equal(result[0], expected[0]) and torch.equal(result[1], expected[1])


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"image": torch.rand(6, 16, 3)}, r"CameraWarpGuide: image must be an IMAGE \[frames, height, width"),
        ({"camera_path": None}, "CameraWarpGuide: camera_path must be a CAMERA_PATH, got NoneType"),
        ({"depth": torch.rand(1, 6, 8, 3)}, "CameraWarpGuide: depth is 8x6 but image is 16x6"),
        ({"depth": torch.zeros(1, 6, 16, 1), "depth_mode": "depth"}, "CameraWarpGuide: depth has values <= 0"),
        ({"depth_mode": "metric"}, "CameraWarpGuide: depth_mode 'metric' is not one of disparity, depth"),
        ({"depth": torch.full((1, 6, 16, 1), torch.nan)}, "CameraWarpGuide: depth must be finite and positive"),
    ],
)
def test_warp_guide_node_names_bad_inputs(nodes: NodeRunner, inputs: dict[str, Any], message: str) -> None:
    arguments = {"image": torch.rand(1, 6, 16, 3), "camera_path": preset_path("static", 2), **inputs}
    with pytest.raises(ValueError, match=message):
        nodes.result(CameraWarpGuide, **arguments)
