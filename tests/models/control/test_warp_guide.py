"""Warp guide: exact pixel shifts from depth, occlusion and disocclusion, the rotation/zoom homography, the masks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as functional

from models.control.camera import CameraPath, axis_rotations, extrinsics_from_poses, preset_path
from models.control.warp_guide import warp_guide

WIDTH, HEIGHT = 16, 6
INTRINSICS = (0.5, 0.5 * WIDTH / HEIGHT, 0.5, 0.5)  # 8 pixels focal length, square pixels


def sideways_path(steps: list[float]) -> CameraPath:
    """Cameras translated along x (no rotation) to each of ``steps``, first at the origin."""
    centres = np.array([[step, 0.0, 0.0] for step in steps])
    rotations = np.tile(np.eye(3), (len(steps), 1, 1))
    return CameraPath(np.tile(INTRINSICS, (len(steps), 1)), extrinsics_from_poses(rotations, centres))


def image(seed: int = 0) -> torch.Tensor:
    return torch.rand(HEIGHT, WIDTH, 3, generator=torch.Generator().manual_seed(seed))


def ramp(width: int = WIDTH, height: int = HEIGHT) -> torch.Tensor:
    """An image whose channels are x / width, y / height and a blend: bilinear sampling of it is exact."""
    y, x = torch.meshgrid(torch.arange(height) + 0.5, torch.arange(width) + 0.5, indexing="ij")
    return torch.stack((x / width, y / height, (x / width + y / height) / 2), dim=-1).double()


@pytest.mark.parametrize("direction", [1, -1])
def test_sideways_move_over_constant_depth_shifts_by_whole_pixels(direction: int) -> None:
    # 8 px focal length, depth 2: each 0.25 units of camera motion moves the picture 1 pixel the other way
    first = image()
    guide, invalid = warp_guide(
        first, sideways_path([direction * 0.25 * k for k in range(4)]), torch.full((6, 16), 2.0)
    )
    assert guide.shape == (4, HEIGHT, WIDTH, 3) and guide.dtype == first.dtype
    assert invalid.shape == (4, HEIGHT, WIDTH) and invalid.dtype == torch.float32
    for shift in range(4):
        expected_mask = torch.zeros(HEIGHT, WIDTH)
        if direction == 1:  # camera to the right: content moves left, a strip opens on the right
            assert torch.equal(guide[shift, :, : WIDTH - shift], first[:, shift:])
            expected_mask[:, WIDTH - shift :] = 1
        else:
            assert torch.equal(guide[shift, :, shift:], first[:, : WIDTH - shift])
            expected_mask[:, :shift] = 1
        assert torch.equal(invalid[shift], expected_mask)
        assert torch.equal(guide[shift][expected_mask.bool()], torch.zeros(HEIGHT * shift, 3))


def split_depth() -> torch.Tensor:
    """Left half near (depth 1), right half far (depth 2)."""
    depth = torch.full((HEIGHT, WIDTH), 2.0)
    depth[:, : WIDTH // 2] = 1.0
    return depth


def test_nearer_pixels_win_where_they_land_on_farther_ones() -> None:
    # camera 0.25 to the left: the near half moves 2 pixels right, over the far half's first column
    first = image(1)
    guide, invalid = warp_guide(first, sideways_path([0.0, -0.25]), split_depth())
    assert torch.equal(guide[1, :, 2:10], first[:, 0:8])
    assert torch.equal(guide[1, :, 10:], first[:, 9:15])
    assert invalid[1].sum(0).tolist() == [6.0, 6.0] + [0.0] * 14


def test_disoccluded_pixels_are_holes() -> None:
    # camera 0.25 to the right: the near half moves 2 pixels left, the far half 1, opening a gap at column 6
    first = image(2)
    guide, invalid = warp_guide(first, sideways_path([0.0, 0.25]), split_depth())
    assert torch.equal(guide[1, :, 0:6], first[:, 2:8])
    assert torch.equal(guide[1, :, 7:15], first[:, 8:16])
    holes = [0.0] * WIDTH
    holes[6] = holes[15] = float(HEIGHT)
    assert invalid[1].sum(0).tolist() == holes


@pytest.mark.parametrize("with_depth", [False, True])
def test_static_path_repeats_the_first_frame(with_depth: bool) -> None:
    first = image(3)
    depth = torch.rand(HEIGHT, WIDTH) + 0.5 if with_depth else None
    guide, invalid = warp_guide(first, preset_path("static", 3, aspect_ratio=WIDTH / HEIGHT), depth)
    assert torch.allclose(guide, first.expand(3, -1, -1, -1), atol=1e-6)
    assert torch.equal(invalid, torch.zeros(3, HEIGHT, WIDTH))


def test_translation_is_ignored_without_depth() -> None:
    first = image(4)
    guide, invalid = warp_guide(first, preset_path("dolly_in", 3, speed=20.0, aspect_ratio=WIDTH / HEIGHT))
    assert torch.allclose(guide, first.expand(3, -1, -1, -1), atol=1e-6) and not invalid.any()


def test_zoom_in_is_a_scaled_centre_crop() -> None:
    # focal length doubled: the middle half of the picture fills the frame (16x8 so the crop is whole pixels)
    width, height = 16, 8
    zoom = CameraPath(np.array([(0.5, 1.0, 0.5, 0.5), (1.0, 2.0, 0.5, 0.5)]), np.tile(np.eye(4), (2, 1, 1)))
    guide, invalid = warp_guide(ramp(width, height), zoom)
    assert not invalid.any()
    y, x = torch.meshgrid(torch.arange(height) + 0.5, torch.arange(width) + 0.5, indexing="ij")
    source_x, source_y = width / 2 + (x - width / 2) / 2, height / 2 + (y - height / 2) / 2
    assert torch.allclose(guide[1, ..., 0], source_x.double() / width, atol=1e-6)
    assert torch.allclose(guide[1, ..., 1], source_y.double() / height, atol=1e-6)
    textured = torch.rand(height, width, 3, generator=torch.Generator().manual_seed(5))
    crop = textured[height // 4 : height * 3 // 4, width // 4 : width * 3 // 4].permute(2, 0, 1)[None]
    scaled = functional.interpolate(crop, scale_factor=2, mode="bilinear", align_corners=False)[0].permute(1, 2, 0)
    zoomed = warp_guide(textured, zoom)[0][1]
    # the crop's outer half pixel clamps to its own edge in interpolate, so compare inside it
    assert torch.allclose(zoomed[1:-1, 1:-1], scaled[1:-1, 1:-1], atol=1e-5)


def test_pan_homography_samples_along_rotated_rays() -> None:
    angle = math.radians(10.0)
    rotations = axis_rotations(1, np.array([0.0, angle]))
    pan = CameraPath(np.tile(INTRINSICS, (2, 1)), extrinsics_from_poses(rotations, np.zeros((2, 3))))
    guide, invalid = warp_guide(ramp(), pan)
    focal = INTRINSICS[0] * WIDTH
    y, x = torch.meshgrid(torch.arange(HEIGHT) + 0.5, torch.arange(WIDTH) + 0.5, indexing="ij")
    rays = torch.stack(((x - WIDTH / 2) / focal, (y - HEIGHT / 2) / focal, torch.ones_like(x)), dim=-1).double()
    seen = rays @ torch.from_numpy(rotations[1]).T
    source_x = WIDTH / 2 + focal * seen[..., 0] / seen[..., 2]
    valid = ~invalid[1].bool()
    assert torch.equal(valid, source_x <= WIDTH)
    between_centres = valid & (source_x <= WIDTH - 0.5)  # beyond the last pixel centre sampling clamps
    assert torch.allclose(guide[1, ..., 0][between_centres], (source_x / WIDTH)[between_centres], atol=1e-6)
    # panning right brings in unseen picture on the right edge only
    assert invalid[1, :, -1].all() and not invalid[1, :, : WIDTH // 2].any()


def test_points_behind_the_camera_are_invalid() -> None:
    rotations = axis_rotations(1, np.array([0.0, math.pi]))
    turned = CameraPath(np.tile(INTRINSICS, (2, 1)), extrinsics_from_poses(rotations, np.zeros((2, 3))))
    guide, invalid = warp_guide(image(6), turned)
    assert invalid[1].all() and not guide[1].any()


@pytest.mark.parametrize(
    ("picture", "depth", "message"),
    [
        (torch.rand(1, HEIGHT, WIDTH, 3), None, r"image must be a \[height, width, channels\] tensor"),
        (torch.rand(HEIGHT, WIDTH, 3), torch.ones(HEIGHT, WIDTH + 1), r"depth must be \[height, width\] = \[6, 16\]"),
        (torch.rand(HEIGHT, WIDTH, 3), torch.zeros(HEIGHT, WIDTH), "depth must be finite and positive"),
    ],
)
def test_bad_inputs_are_refused(picture: torch.Tensor, depth: torch.Tensor | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        warp_guide(picture, preset_path("static", 2), depth)
