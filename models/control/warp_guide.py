"""Training-free camera guide: the first frame warped along a camera path, with a mask of pixels it cannot show.

Two warps, both relative to the first camera:

- Without depth, each frame is the first frame under the homography ``K_i R K_0^-1`` of the camera's rotation and
  focal change (exact for pan, tilt, roll and zoom). Camera translation is ignored: without depth it has no single
  image motion. The warp maps backwards (each output pixel samples the first frame bilinearly), so it leaves no holes.
- With a depth map (z along the first camera's optical axis, per pixel), each first-frame pixel is lifted to 3D,
  moved into the frame's camera and splatted forwards onto the pixel its projection lands in; when several land on
  one pixel the nearest wins (ties: the first in reading order). This handles translation (dolly, orbit) and
  parallax; pixels nothing lands on are holes.

Pixels without a source (from outside the first frame, behind the camera, or holes) are 0 in the guide and 1 in
the mask.
"""

from __future__ import annotations

import torch
import torch.nn.functional as functional

from models.control.camera import CameraPath

_BORDER_EPSILON = 1e-9  # source points this close outside the image edge still count as inside
_MIN_DEPTH = 1e-9  # points at or behind this camera depth are not visible


def _pixel_grid(width: int, height: int) -> torch.Tensor:
    """``[H * W, 3]`` homogeneous pixel centres ``(u + 0.5, v + 0.5, 1)`` in reading order, float64."""
    v, u = torch.meshgrid(
        torch.arange(height, dtype=torch.float64) + 0.5, torch.arange(width, dtype=torch.float64) + 0.5, indexing="ij"
    )
    return torch.stack((u, v, torch.ones_like(u)), dim=-1).reshape(-1, 3)


def _check_inputs(image: torch.Tensor, depth: torch.Tensor | None) -> None:
    if image.ndim != 3 or 0 in image.shape:
        raise ValueError(f"image must be a [height, width, channels] tensor, got shape {list(image.shape)}")
    if depth is None:
        return
    if tuple(depth.shape) != tuple(image.shape[:2]):
        raise ValueError(f"depth must be [height, width] = {list(image.shape[:2])}, got shape {list(depth.shape)}")
    if not (torch.isfinite(depth).all() and (depth > 0).all()):
        raise ValueError("depth must be finite and positive everywhere")


def _homography_frame(image: torch.Tensor, source_points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``image`` ``[C, H, W]`` (float64) sampled at homogeneous source points ``[H * W, 3]``; also the invalid mask."""
    height, width = image.shape[1:]
    depth = source_points[:, 2]
    in_front = depth > _MIN_DEPTH
    safe_depth = torch.where(in_front, depth, torch.ones_like(depth))
    x, y = source_points[:, 0] / safe_depth, source_points[:, 1] / safe_depth
    inside = in_front & (x >= -_BORDER_EPSILON) & (x <= width + _BORDER_EPSILON)
    inside &= (y >= -_BORDER_EPSILON) & (y <= height + _BORDER_EPSILON)
    grid = torch.stack((2 * x / width - 1, 2 * y / height - 1), dim=-1)
    grid = torch.where(inside[:, None], grid, torch.zeros_like(grid))
    sampled = functional.grid_sample(
        image[None], grid.view(1, height, width, 2), mode="bilinear", padding_mode="border", align_corners=False
    )[0]
    valid = inside.view(height, width)
    return sampled * valid, ~valid


def _splat_frame(
    pixels: torch.Tensor, points: torch.Tensor, calibration: torch.Tensor, height: int, width: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward splat: ``pixels`` ``[H * W, C]`` at camera-space ``points`` ``[H * W, 3]``, nearest wins."""
    depth = points[:, 2]
    projected = points @ calibration.T
    visible = depth > _MIN_DEPTH
    safe_depth = torch.where(visible, depth, torch.ones_like(depth))
    column = torch.floor(projected[:, 0] / safe_depth)
    row = torch.floor(projected[:, 1] / safe_depth)
    visible &= (column >= 0) & (column < width) & (row >= 0) & (row < height)
    sources = torch.nonzero(visible)[:, 0]
    targets = (row[sources] * width + column[sources]).long()
    source_depth = depth[sources]
    nearest = torch.full((height * width,), torch.inf, dtype=torch.float64)
    nearest.scatter_reduce_(0, targets, source_depth, reduce="amin")
    winners = source_depth == nearest[targets]
    pixel_count = height * width
    chosen = torch.full((pixel_count,), pixel_count, dtype=torch.long)
    chosen.scatter_reduce_(0, targets[winners], sources[winners], reduce="amin")
    filled = chosen < pixel_count
    frame = torch.zeros_like(pixels)
    frame[filled] = pixels[chosen[filled]]
    return frame.view(height, width, -1), ~filled.view(height, width)


def _lifted(grid: torch.Tensor, calibration: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
    """``[H * W, 3]`` first-camera points of the pixel centres ``grid`` at their ``depth`` (z, not ray length)."""
    return (grid @ torch.linalg.inv(calibration).T) * depth.to(torch.float64).reshape(-1, 1)


def warp_guide(
    image: torch.Tensor, path: CameraPath, depth: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The first frame ``image`` ``[H, W, C]`` seen from every camera of ``path``: guide ``[F, H, W, C]`` (the
    image's dtype) and invalid mask ``[F, H, W]`` (float32, 1 where no source pixel). ``depth`` ``[H, W]`` switches
    from the rotation homography to depth reprojection (see the module docstring)."""
    _check_inputs(image, depth)
    height, width, channels = image.shape
    relative = torch.from_numpy(path.relative_extrinsics())
    calibrations = torch.from_numpy(path.pixel_intrinsics(width, height))
    grid = _pixel_grid(width, height)
    source = image.to(torch.float64)
    guide = torch.empty((path.frame_count, height, width, channels), dtype=image.dtype)
    invalid = torch.empty((path.frame_count, height, width), dtype=torch.float32)
    first_points = None if depth is None else _lifted(grid, calibrations[0], depth)
    for index, (transform, calibration) in enumerate(zip(relative, calibrations, strict=True)):
        if first_points is None:
            to_source = calibrations[0] @ transform[:3, :3].T @ torch.linalg.inv(calibration)
            frame, holes = _homography_frame(source.permute(2, 0, 1), grid @ to_source.T)
            frame = frame.permute(1, 2, 0)
        else:
            points = first_points @ transform[:3, :3].T + transform[:3, 3]
            frame, holes = _splat_frame(source.reshape(-1, channels), points, calibration, height, width)
        guide[index] = frame.to(image.dtype)
        invalid[index] = holes.to(torch.float32)
    return guide, invalid
