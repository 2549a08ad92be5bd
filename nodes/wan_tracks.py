"""Wan 2.1 image-to-video with drawn trajectories (ATI, "Any Trajectory Instruction"): ``WanTrackToVideo``.

The conditioning is ``WanImageToVideo``'s (the start image encoded into ``concat_latent_image`` with gray frames after
it, ``concat_mask`` keeping the first frame), then motion is written into the image latent: each track carries the
start image's latent feature at its first point, and in every later latent frame that feature is blended in around
the track's point at that frame with ``splat_tracks``' Gaussian weights, and the keep mask of those frames becomes the
tracks' total weight there (ATI's mask: splatted features count as known in proportion to their weight). The model
then sees the start image's content moved along the tracks and generates a video that follows them.

Time: tracks give one point per video frame. Tracks of another length than ``length`` are first stretched over the
video's frames (``resample_tracks``: linear interpolation, first and last points kept), then latent frame ``k`` takes
video frame ``4k`` (the VAE codes frame 0 alone and four frames per later latent frame).

Space: tracks from the ``tracks`` string are in pixels of the ``width`` x ``height`` video; a connected
``tracks_data`` (TRACKS) replaces the string and its canvas is stretched onto the video, as ``DrawTracksOnVideo`` does.
Points off the canvas (negative coordinates included) are allowed: they are invisible and not splatted, and a track
whose first point is invisible has no feature to carry, so it is not splatted at all.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F

from models.clip_vision import ClipVisionOutput
from models.control.tracks import Tracks, parse_tracks_json, resample_tracks, splat_tracks
from models.guidance import Conditioning, with_extras
from models.video_vae import VideoVAE
from nodes.latent import MAX_SIZE, check_video_size
from nodes.tracks import TRACKS
from nodes.wan import CATEGORY, WanImageToVideo

MAX_TOPK = 10


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


@contextmanager
def _named_errors(name: str) -> Iterator[None]:
    """Re-raise a ValueError (whose message starts with the input's name) with the node's ``name`` in front."""
    try:
        yield
    except ValueError as error:
        raise ValueError(f"{name}: {error}") from error


def _has_no_tracks(text: str) -> bool:
    """Whether the tracks string is blank or the empty JSON list (ComfyUI's default, meaning plain image-to-video)."""
    stripped = text.strip()
    if not stripped:
        return True
    try:
        return json.loads(stripped) == []
    except json.JSONDecodeError:
        return False  # parse_tracks_json reports it


class WanTrackToVideo:
    """Wan 2.1 image-to-video conditioning whose start image features move along drawn tracks (ATI)."""

    FUNCTION = "encode"
    CATEGORY = CATEGORY
    RETURN_TYPES = ("CONDITIONING", "CONDITIONING", "LATENT")
    RETURN_NAMES = ("positive", "negative", "latent")
    DESCRIPTION = (
        "Like WanImageToVideo, then writes motion into the start image latent for ATI (Any Trajectory Instruction) "
        "models: each track's feature at its first point in the start image is splatted with a Gaussian along the "
        "track in every later latent frame. Tracks are JSON in pixels of width x height (one point per video frame; "
        "other lengths are stretched over the video), or a connected tracks_data, which replaces the string. With "
        "no tracks the output is WanImageToVideo's."
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "positive": ("CONDITIONING", {}),
                "negative": ("CONDITIONING", {}),
                "vae": ("VAE", {}),
                "tracks": (
                    "STRING",
                    {
                        "multiline": True,
                        "default": "[]",
                        "tooltip": 'Tracks as JSON: a list of tracks of {"x": .., "y": ..} points (or [x, y] '
                        "pairs) in video pixels, one per frame. Off-frame points are invisible. [] = no tracks.",
                    },
                ),
                "width": ("INT", {"default": 832, "min": 16, "max": MAX_SIZE, "step": 16}),
                "height": ("INT", {"default": 480, "min": 16, "max": MAX_SIZE, "step": 16}),
                "length": ("INT", {"default": 81, "min": 1, "max": MAX_SIZE, "step": 4}),
                "batch_size": ("INT", {"default": 1, "min": 1, "max": 4096}),
                "temperature": (
                    "FLOAT",
                    {
                        "default": 220.0,
                        "min": 1.0,
                        "max": 1000.0,
                        "step": 0.1,
                        "tooltip": "Sharpness of each track's splat: larger is narrower. 220 at 832x480 spreads a "
                        "feature over a few latent pixels; the width scales with the frame size.",
                    },
                ),
                "topk": (
                    "INT",
                    {
                        "default": 2,
                        "min": 1,
                        "max": MAX_TOPK,
                        "tooltip": "How many of the nearest tracks blend at each latent pixel.",
                    },
                ),
                "start_image": ("IMAGE", {}),
            },
            "optional": {
                "clip_vision_output": ("CLIP_VISION_OUTPUT", {}),
                "tracks_data": (
                    TRACKS,
                    {"tooltip": "Tracks from the tracks nodes; when connected, used instead of the tracks string."},
                ),
            },
        }

    def encode(
        self,
        positive: Conditioning,
        negative: Conditioning,
        vae: VideoVAE,
        tracks: str,
        width: int,
        height: int,
        length: int,
        batch_size: int,
        temperature: float,
        topk: int,
        start_image: torch.Tensor,
        clip_vision_output: ClipVisionOutput | None = None,
        tracks_data: Tracks | None = None,
    ) -> tuple[list[list[Any]], list[list[Any]], dict[str, torch.Tensor]]:
        name = type(self).__name__
        self._check_splat(temperature, topk)
        if start_image is None:
            raise ValueError(f"{name}: start_image is required (the tracks move the start image's features)")
        with _named_errors(name):
            check_video_size(width, height, length, vae.latent_format.spatial_ratio)
        trajectories = self._tracks(tracks, tracks_data, width, height, length)
        with _named_errors(name):
            positive, negative, latent = WanImageToVideo().encode(
                positive, negative, vae, width, height, length, batch_size, clip_vision_output, start_image
            )
        if trajectories is None:
            return positive, negative, latent
        fmt = vae.latent_format
        image_latent = positive[0][1]["concat_latent_image"]
        at_latent_frames = tracks_at_latent_frames(trajectories, length, fmt.temporal_ratio)
        grid_temperature = splat_temperature(temperature, *image_latent.shape[3:])
        moved, covered = splat_start_features(image_latent, at_latent_frames, grid_temperature, topk)
        # ATI marks the splatted features as known: the keep mask is the tracks' weight in later frames
        generate = torch.zeros(1, 1, *image_latent.shape[2:])
        generate[:, :, 1:] = 1.0 - covered
        extras = {"concat_latent_image": moved, "concat_mask": generate}
        return with_extras(positive, "positive", extras), with_extras(negative, "negative", extras), latent

    def _check_splat(self, temperature: float, topk: int) -> None:
        name = type(self).__name__
        if not temperature > 0:
            raise ValueError(f"{name}: temperature ({temperature}) must be positive")
        if not 1 <= topk <= MAX_TOPK:
            raise ValueError(f"{name}: topk ({topk}) must be from 1 to {MAX_TOPK}")

    def _tracks(self, text: str, data: Tracks | None, width: int, height: int, length: int) -> Tracks | None:
        """The tracks to splat: ``data`` when connected, else the string's tracks, each stretched to ``length``
        frames (so their lengths may differ); None for no tracks."""
        if data is not None:
            return data
        if _has_no_tracks(text):
            return None
        with _named_errors(f"{type(self).__name__}: tracks"):
            return parse_tracks_json(text, width, height, length)


NODE_CLASS_MAPPINGS = {"WanTrackToVideo": WanTrackToVideo}
NODE_DISPLAY_NAME_MAPPINGS = {"WanTrackToVideo": "Wan Track To Video"}
