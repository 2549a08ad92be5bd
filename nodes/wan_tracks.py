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
from typing import Any

import torch

from models.clip_vision import ClipVisionOutput
from models.control.ati import splat_start_features, splat_temperature, tracks_at_latent_frames
from models.control.tracks import Tracks, parse_tracks_json
from models.guidance import Conditioning, with_extras
from models.video_vae import VideoVAE
from nodes.errors import named_errors
from nodes.latent import MAX_SIZE, check_video_size
from nodes.tracks import TRACKS
from nodes.wan import CATEGORY, WanImageToVideo

MAX_TOPK = 10


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
        with named_errors(name):
            check_video_size(width, height, length, vae.latent_format.spatial_ratio)
        trajectories = self._tracks(tracks, tracks_data, width, height, length)
        with named_errors(name):
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
        with named_errors(f"{type(self).__name__}: tracks"):
            return parse_tracks_json(text, width, height, length)


NODE_CLASS_MAPPINGS = {"WanTrackToVideo": WanTrackToVideo}
NODE_DISPLAY_NAME_MAPPINGS = {"WanTrackToVideo": "Wan Track To Video"}
