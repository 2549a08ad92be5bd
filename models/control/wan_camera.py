"""Camera conditioning of Wan Fun camera-control models: the camera moves of ComfyUI's ``WanCameraEmbedding`` as
camera paths, and Plücker embeddings packed the way those models take them.

The moves (VideoX-Fun's presets, which the models were trained on) are camera-to-world poses whose rotation angles
and translation grow linearly over the clip: frame ``i`` of ``n`` turns by ``i / n * speed * 60°`` about the
preset's axes (x, then y, then z) and moves by ``i / n * speed * 1.5`` units along its direction. Intrinsics are
given normalised for a 16:9 pose and corrected to the video's aspect ratio (the focal length along the longer
relative side is stretched).

Packing: the models read four frames per latent frame, the first frame counting four times (as the VAE codes it), so
an ``[F, 6, H, W]`` embedding (``F = 4k + 1``) becomes ``[1, 24, k + 1, H, W]`` whose channel ``4c + j`` holds
Plücker channel ``c`` of the group's ``j``-th frame.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType

import numpy as np
import torch

from models.control.camera import CameraPath, invert_rigid

__all__ = ["WAN_CAMERA_MOVES", "pack_camera_embedding", "wan_fun_camera_path"]

WAN_CAMERA_MOVES: Mapping[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = MappingProxyType(
    {
        "Static": ((0.0, 0.0, 0.0), (0.0, 0.0, 0.0)),
        "Pan Up": ((0.0, 0.0, 0.0), (0.0, -1.0, 0.0)),
        "Pan Down": ((0.0, 0.0, 0.0), (0.0, 1.0, 0.0)),
        "Pan Left": ((0.0, 0.0, 0.0), (-1.0, 0.0, 0.0)),
        "Pan Right": ((0.0, 0.0, 0.0), (1.0, 0.0, 0.0)),
        "Zoom In": ((0.0, 0.0, 0.0), (0.0, 0.0, 2.0)),
        "Zoom Out": ((0.0, 0.0, 0.0), (0.0, 0.0, -2.0)),
        "Anti Clockwise (ACW)": ((0.0, 0.0, -1.0), (0.0, 0.0, 0.0)),
        "ClockWise (CW)": ((0.0, 0.0, 1.0), (0.0, 0.0, 0.0)),
    }
)
"""Preset -> (rotation axes weights, translation direction), as VideoX-Fun defines them."""
BASE_ANGLE = math.pi / 3
BASE_TRANSLATION = 1.5
POSE_ASPECT = 1280 / 720
FRAMES_PER_LATENT = 4


def _rotation(angles: np.ndarray) -> np.ndarray:
    """``R = Rz Ry Rx`` for angles (x, y, z) in radians."""
    x, y, z = angles
    rx = np.array([[1, 0, 0], [0, math.cos(x), -math.sin(x)], [0, math.sin(x), math.cos(x)]])
    ry = np.array([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    rz = np.array([[math.cos(z), -math.sin(z), 0], [math.sin(z), math.cos(z), 0], [0, 0, 1]])
    return rz @ ry @ rx


def wan_fun_camera_path(
    preset: str,
    frames: int,
    width: int,
    height: int,
    speed: float = 1.0,
    intrinsics: tuple[float, float, float, float] = (0.5, 0.5, 0.5, 0.5),
) -> CameraPath:
    """The camera path of ``preset`` over ``frames`` frames for a ``width`` x ``height`` video.

    Args:
        preset: a ``WAN_CAMERA_MOVES`` key.
        frames: frames of the clip (at least 1).
        width, height: the video's size, for the aspect-ratio correction of the intrinsics.
        speed: scales the move (0 is static).
        intrinsics: fx, fy, cx, cy normalised by width and height, as for a 16:9 pose.
    """
    if preset not in WAN_CAMERA_MOVES:
        raise ValueError(f"camera_pose must be one of {', '.join(WAN_CAMERA_MOVES)}, got {preset!r}")
    if frames < 1 or width < 1 or height < 1:
        raise ValueError(f"frames, width and height must be at least 1, got {frames}, {width}, {height}")
    axes, direction = (np.array(values) for values in WAN_CAMERA_MOVES[preset])
    poses = np.tile(np.eye(4), (frames, 1, 1))
    for index in range(frames):
        progress = index / frames * speed
        poses[index, :3, :3] = _rotation(progress * BASE_ANGLE * axes)
        poses[index, :3, 3] = progress * BASE_TRANSLATION * direction
    fx, fy, cx, cy = intrinsics
    if POSE_ASPECT > width / height:
        fx = height * POSE_ASPECT * fx / width
    else:
        fy = width / POSE_ASPECT * fy / height
    return CameraPath(np.tile([fx, fy, cx, cy], (frames, 1)), invert_rigid(poses))


def pack_camera_embedding(embedding: torch.Tensor) -> torch.Tensor:
    """``[F, 6, H, W]`` Plücker embeddings (``F = 4k + 1``) as ``[1, 24, k + 1, H, W]`` (see the module docstring)."""
    frames = embedding.shape[0]
    if embedding.dim() != 4 or embedding.shape[1] != 6 or (frames - 1) % FRAMES_PER_LATENT:
        raise ValueError(f"camera embeddings pack as [4k + 1 frames, 6, height, width], got {tuple(embedding.shape)}")
    padded = torch.cat([embedding[:1].expand(FRAMES_PER_LATENT - 1, -1, -1, -1), embedding])  # first frame x4
    groups = padded.reshape(-1, FRAMES_PER_LATENT, *embedding.shape[1:])  # [T, 4, 6, H, W]
    packed = groups.transpose(1, 2).reshape(groups.shape[0], -1, *embedding.shape[2:])  # [T, 24, H, W]
    return packed.transpose(0, 1).unsqueeze(0)
