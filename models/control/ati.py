"""ATI ("Any Trajectory Instruction") motion in a Wan image latent: tracks at the latent frames, the start image's
feature at each track's first point, and those features Gaussian-splatted along the tracks (``WanTrackToVideo``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from models.control.tracks import Tracks, resample_tracks, splat_tracks

__all__ = ["splat_start_features", "splat_temperature", "start_features", "tracks_at_latent_frames"]


def splat_temperature(temperature: float, latent_height: int, latent_width: int) -> float:
    """``splat_tracks``' temperature (squared latent pixels) for ComfyUI's ATI ``temperature``.

    ComfyUI's temperature is read as the sharpness ``k`` of ``exp(-k * r^2)``, ``r`` being the distance in frame
    coordinates scaled so that half the short side of the frame is 1; a larger temperature gives a narrower splat,
    and the splat covers the same share of the frame at any resolution. In latent pixels ``r = d / s`` with ``s``
    half the latent's short side, so ``exp(-k d^2 / s^2)`` is ``splat_tracks``' ``exp(-d^2 / T)`` with
    ``T = s^2 / k``. The default 220 at 832x480 (a 104x60 latent, ``s = 30``) gives ``T = 4.09``: the weight is 1/e
    two latent pixels (16 video pixels) from the point and below 1% past four, a blob a few latent pixels wide.
    """
    half_short_side = min(latent_height, latent_width) / 2
    return half_short_side**2 / temperature


def tracks_at_latent_frames(tracks: Tracks, length: int, temporal_ratio: int) -> Tracks:
    """The tracks at the latent frames of a ``length``-frame video: stretched to ``length`` frames when their
    length differs, then video frame ``temporal_ratio * k`` for latent frame ``k``. A track whose first point is
    invisible is made invisible throughout (its start feature does not exist)."""
    video = tracks if tracks.frames == length else resample_tracks(tracks, length)
    visible = video.visible[:, ::temporal_ratio] & video.visible[:, :1]
    return Tracks(video.points[:, ::temporal_ratio], visible, video.width, video.height)


def start_features(first_frame: torch.Tensor, tracks: Tracks) -> torch.Tensor:
    """``[B, C, N]``: the latent frame ``first_frame`` ``[B, C, h, w]`` sampled bilinearly at each track's first
    point (the canvas stretched onto the latent; latent pixel ``j`` centred at ``j + 0.5``, edges clamped)."""
    canvas = torch.tensor([tracks.width, tracks.height], dtype=torch.float32)
    grid = tracks.points[:, 0].to(torch.float32) / canvas * 2.0 - 1.0  # [N, 2], -1 and 1 on the canvas edges
    grid = grid.view(1, 1, -1, 2).expand(first_frame.shape[0], -1, -1, -1).to(first_frame)
    sampled = F.grid_sample(first_frame, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return sampled[:, :, 0]


def splat_start_features(
    image_latent: torch.Tensor, tracks: Tracks, temperature: float, topk: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``image_latent`` ``[B, C, T, h, w]`` with each track's start feature blended into every later frame, and how
    much of each later frame's pixel is the tracks' (``[T - 1, h, w]``, 0..1).

    ``tracks`` are at the latent frames (``tracks_at_latent_frames``); ``temperature`` and ``topk`` are
    ``splat_tracks``'. With ``w_n`` track n's weight at a pixel, ``latent = (1 - sum w_n) * latent + sum w_n *
    feature_n``; the weights sum to at most 1 (``splat_tracks``), the clamp only guards rounding. Pixels no track
    reaches, and frame 0, are returned unchanged.
    """
    height, width = image_latent.shape[3:]
    weights = splat_tracks(tracks, height, width, tracks.frames, temperature, topk)[1:]  # [T - 1, N, h, w]
    features = start_features(image_latent[:, :, 0], tracks)
    splatted = torch.einsum("tnhw,bcn->bcthw", weights, features)
    covered = weights.sum(dim=1).clamp(0.0, 1.0)
    moved = image_latent.clone()
    moved[:, :, 1:] = image_latent[:, :, 1:] * (1.0 - covered) + splatted
    return moved, covered
