"""Per-pixel Plücker ray embeddings of a camera path, the camera conditioning of CameraCtrl-style video models.

Each pixel's viewing ray is written as its Plücker coordinates ``(o x d, d)``: ``d`` the unit ray direction and ``o``
the camera centre, both in the first camera's coordinates (the first camera is the identity, so a path and the same
path moved rigidly in the world give the same embedding). Rays pass through pixel centres ``(u + 0.5, v + 0.5)``.
"""

from __future__ import annotations

import torch

from models.control.camera import CameraPath


def _pixel_rays(calibration: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """``[H, W, 3]`` camera-space directions ``K^-1 [u + 0.5, v + 0.5, 1]`` (not normalised)."""
    dtype = calibration.dtype
    u = (torch.arange(width, dtype=dtype) + 0.5 - calibration[0, 2]) / calibration[0, 0]
    v = (torch.arange(height, dtype=dtype) + 0.5 - calibration[1, 2]) / calibration[1, 1]
    return torch.stack(
        (u.expand(height, width), v[:, None].expand(height, width), torch.ones(height, width, dtype=dtype)), dim=-1
    )


def plucker_embedding(
    path: CameraPath, width: int, height: int, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """``[F, 6, height, width]``: moment ``o x d`` (channels 0-2) then unit direction ``d`` (3-5) per pixel.

    Intrinsics are denormalised by ``width`` and ``height``; the maths runs in float64, one frame at a time, and
    each frame is stored as ``dtype`` on ``device``.
    """
    if width < 1 or height < 1:
        raise ValueError(f"width and height must be at least 1, got {width}x{height}")
    poses = torch.from_numpy(path.relative_poses())
    calibrations = torch.from_numpy(path.pixel_intrinsics(width, height))
    embedding = torch.empty((path.frame_count, 6, height, width), dtype=dtype, device=device)
    for index, (pose, calibration) in enumerate(zip(poses, calibrations, strict=True)):
        directions = _pixel_rays(calibration, width, height) @ pose[:3, :3].T
        directions = directions / torch.linalg.vector_norm(directions, dim=-1, keepdim=True)
        moments = torch.linalg.cross(pose[:3, 3].expand_as(directions), directions, dim=-1)
        embedding[index] = torch.cat((moments, directions), dim=-1).permute(2, 0, 1).to(dtype=dtype, device=device)
    return embedding
