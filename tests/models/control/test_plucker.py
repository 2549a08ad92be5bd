"""Plücker embeddings against analytic rays: identity, pure translation, pure rotation, and world-frame invariance."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from models.control.camera import CameraPath, axis_rotations, extrinsics_from_poses, preset_path
from models.control.plucker import plucker_embedding

WIDTH, HEIGHT = 4, 2
# fx, fy, cx, cy normalised: 2 pixels focal length both ways, principal point at the image centre
INTRINSICS = (0.5, 1.0, 0.5, 0.5)


def path_of(rotations: np.ndarray, centres: np.ndarray) -> CameraPath:
    """A path of cameras with camera-to-world ``rotations`` at ``centres``, all with ``INTRINSICS``."""
    return CameraPath(np.tile(INTRINSICS, (len(rotations), 1)), extrinsics_from_poses(rotations, centres))


def identity_directions() -> torch.Tensor:
    """``[3, H, W]`` unit rays ``K^-1 [u + 0.5, v + 0.5, 1]`` of ``INTRINSICS``, written out per pixel."""
    rays = torch.tensor(
        [[[(u + 0.5 - 2) / 2, (v + 0.5 - 1) / 2, 1.0] for u in range(WIDTH)] for v in range(HEIGHT)],
        dtype=torch.float64,
    )
    return (rays / rays.norm(dim=-1, keepdim=True)).permute(2, 0, 1)


def embed(path: CameraPath) -> torch.Tensor:
    return plucker_embedding(path, WIDTH, HEIGHT, dtype=torch.float64)


def test_identity_camera_has_zero_moment_and_pixel_rays() -> None:
    embedding = embed(path_of(np.eye(3)[None], np.zeros((1, 3))))
    assert embedding.shape == (1, 6, HEIGHT, WIDTH) and embedding.dtype == torch.float64
    assert torch.equal(embedding[0, :3], torch.zeros(3, HEIGHT, WIDTH, dtype=torch.float64))
    corner = torch.tensor([-0.75, -0.25, 1.0], dtype=torch.float64) / math.sqrt(1.625)
    assert torch.allclose(embedding[0, 3:, 0, 0], corner, atol=1e-12)
    assert torch.allclose(embedding[0, 3:], identity_directions(), atol=1e-12)


def test_pure_translation_moment_is_centre_cross_direction() -> None:
    centre = np.array([1.0, -2.0, 3.0])
    embedding = embed(path_of(np.tile(np.eye(3), (2, 1, 1)), np.stack((np.zeros(3), centre))))
    directions = identity_directions()
    assert torch.allclose(embedding[1, 3:], directions, atol=1e-12)
    expected = torch.linalg.cross(torch.from_numpy(centre)[:, None, None].expand_as(directions), directions, dim=0)
    assert torch.allclose(embedding[1, :3], expected, atol=1e-12)
    # the moment is perpendicular to the ray and its length is the ray's distance from the first camera's centre
    assert torch.allclose(
        (embedding[1, :3] * embedding[1, 3:]).sum(0), torch.zeros(HEIGHT, WIDTH, dtype=torch.float64), atol=1e-12
    )


def test_pure_rotation_rotates_directions() -> None:
    rotation = axis_rotations(1, np.array([0.4]))[0] @ axis_rotations(0, np.array([-0.2]))[0]
    embedding = embed(path_of(np.stack((np.eye(3), rotation)), np.zeros((2, 3))))
    expected = torch.einsum("ij,jhw->ihw", torch.from_numpy(rotation), identity_directions())
    assert torch.allclose(embedding[1, 3:], expected, atol=1e-12)
    assert torch.allclose(embedding[1, :3], torch.zeros(3, HEIGHT, WIDTH, dtype=torch.float64), atol=1e-12)


def test_cameras_are_taken_relative_to_the_first() -> None:
    first_rotation = axis_rotations(2, np.array([0.7]))[0]
    rotations, centres = np.stack((first_rotation, first_rotation)), np.array([[5.0, 1.0, 0.0], [6.0, 1.0, 2.0]])
    embedding = embed(path_of(rotations, centres))
    assert torch.allclose(embedding[0], embed(path_of(np.eye(3)[None], np.zeros((1, 3))))[0], atol=1e-12)
    origin = torch.from_numpy(first_rotation.T @ (centres[1] - centres[0]))
    directions = identity_directions()
    expected = torch.linalg.cross(origin[:, None, None].expand_as(directions), directions, dim=0)
    assert torch.allclose(embedding[1, :3], expected, atol=1e-12)


def test_same_world_transform_on_every_frame_changes_nothing() -> None:
    path = preset_path("orbit_left", 5, speed=8.0)
    world = extrinsics_from_poses(axis_rotations(0, np.array([1.1])) @ axis_rotations(1, np.array([-0.3])), [[3, 4, 5]])
    moved = CameraPath(path.intrinsics, path.extrinsics @ world[0])
    assert not np.allclose(moved.extrinsics, path.extrinsics)
    assert torch.allclose(embed(moved), embed(path), atol=1e-12)


def test_directions_are_unit_and_output_dtype_follows_request() -> None:
    embedding = plucker_embedding(preset_path("roll_clockwise", 3), 5, 3)
    assert embedding.shape == (3, 6, 3, 5) and embedding.dtype == torch.float32
    assert torch.allclose(embedding[:, 3:].norm(dim=1), torch.ones(3, 3, 5), atol=1e-6)
    with pytest.raises(ValueError, match="width and height must be at least 1, got 0x3"):
        plucker_embedding(preset_path("static", 1), 0, 3)
