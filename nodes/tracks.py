"""Drawn trajectory nodes: read tracks from trajectory-editor JSON, write them back, resample, draw them on a video.

The ``TRACKS`` socket carries a ``models.control.tracks.Tracks``: N point tracks over F frames in the pixels of a
stated canvas. Formats, visibility and resampling rules are described in ``models.control.tracks``.
"""

from __future__ import annotations

from typing import Any

import torch

from models.control.tracks import Tracks, parse_tracks_json, render_tracks, resample_tracks, tracks_to_json
from nodes.errors import named_errors
from nodes.frames import MAX_FRAMES, check_frames
from nodes.image import MAX_RESOLUTION

TRACKS = "TRACKS"
CATEGORY = "conditioning/tracks"
_MAX_POINT_SIZE = 256
_MAX_LINE_WIDTH = 64


def _tracks_input(tooltip: str) -> tuple[str, dict[str, Any]]:
    return (TRACKS, {"tooltip": tooltip})


def _size_input(default: int, tooltip: str) -> tuple[str, dict[str, Any]]:
    return ("INT", {"default": default, "min": 1, "max": MAX_RESOLUTION, "step": 1, "tooltip": tooltip})


class TracksFromJSON:
    """Tracks from the JSON a trajectory editor writes (spline editor / ATI points, or [x, y] pairs)."""

    FUNCTION = "parse"
    CATEGORY = CATEGORY
    RETURN_TYPES = (TRACKS,)
    RETURN_NAMES = ("tracks",)
    DESCRIPTION = (
        'Reads point tracks from JSON: a list of tracks, each a list of {"x": .., "y": ..} points (one per frame) '
        "or of [x, y] pairs; a single track may be a bare list of points, and a JSON string holding the JSON (as "
        "KJNodes' Spline Editor writes) is accepted. Coordinates are pixels of a width x height canvas; points off "
        "the canvas are kept but invisible."
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "tracks_json": (
                    "STRING",
                    {"multiline": True, "default": "[]", "tooltip": "The tracks as JSON, from a trajectory editor."},
                ),
                "width": _size_input(832, "Width of the canvas the coordinates were drawn on, in pixels."),
                "height": _size_input(480, "Height of the canvas the coordinates were drawn on, in pixels."),
                "frames": (
                    "INT",
                    {
                        "default": 0,
                        "min": 0,
                        "max": MAX_FRAMES,
                        "step": 1,
                        "tooltip": "0 keeps the tracks as given (all must have the same length); otherwise every "
                        "track is stretched over this many frames by linear interpolation, first and last points "
                        "kept (lengths may then differ).",
                    },
                ),
            }
        }

    def parse(self, tracks_json: str, width: int, height: int, frames: int) -> tuple[Tracks]:
        name = type(self).__name__
        for input_name, value in (("width", width), ("height", height)):
            if value < 1:
                raise ValueError(f"{name}: {input_name} ({value}) must be at least 1")
        if frames < 0:
            raise ValueError(f"{name}: frames ({frames}) must be 0 (as given) or at least 1")
        with named_errors(f"{name}: tracks_json"):
            return (parse_tracks_json(tracks_json, width, height, frames or None),)


class TracksToJSON:
    """Tracks as spline editor / ATI JSON: a list of tracks of {"x", "y"} points."""

    FUNCTION = "serialise"
    CATEGORY = CATEGORY
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("tracks_json",)
    DESCRIPTION = (
        'Writes tracks as JSON: a list of tracks, each a list of {"x": .., "y": ..} points in canvas pixels, one per '
        "frame. The canvas size is not included."
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"tracks": _tracks_input("The tracks to write.")}}

    def serialise(self, tracks: Tracks) -> tuple[str]:
        return (tracks_to_json(tracks),)


class ResampleTracks:
    """Tracks stretched or squeezed to another frame count."""

    FUNCTION = "resample"
    CATEGORY = CATEGORY
    RETURN_TYPES = (TRACKS,)
    RETURN_NAMES = ("tracks",)
    DESCRIPTION = (
        "Changes the number of frames of the tracks by linear interpolation along time; the first and last points "
        "are kept, so each track covers the same path over the new frame count."
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "tracks": _tracks_input("The tracks to resample."),
                "frames": (
                    "INT",
                    {"default": 81, "min": 1, "max": MAX_FRAMES, "step": 1, "tooltip": "Frames of the result."},
                ),
            }
        }

    def resample(self, tracks: Tracks, frames: int) -> tuple[Tracks]:
        with named_errors(f"{type(self).__name__}: frames"):
            return (resample_tracks(tracks, frames),)


class DrawTracksOnVideo:
    """The tracks drawn over a video, to check a trajectory before generating with it."""

    FUNCTION = "draw"
    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("images",)
    DESCRIPTION = (
        "Draws each track in its own colour: its path so far as a line and its current point as a dot; invisible "
        "(off-canvas) points are not drawn. The tracks' canvas is stretched to the video's frame size. The video "
        "needs as many frames as the tracks, or a single image, which is repeated for every track frame."
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "images": ("IMAGE", {"tooltip": "The video (or one still image) to draw on."}),
                "tracks": _tracks_input("The tracks to draw."),
            },
            "optional": {
                "point_size": (
                    "INT",
                    {
                        "default": 4,
                        "min": 0,
                        "max": _MAX_POINT_SIZE,
                        "step": 1,
                        "tooltip": "Radius of the current-point dot in video pixels; 0 draws no dots.",
                    },
                ),
                "line_width": (
                    "INT",
                    {
                        "default": 2,
                        "min": 0,
                        "max": _MAX_LINE_WIDTH,
                        "step": 1,
                        "tooltip": "Width of the path lines in video pixels; 0 draws no paths.",
                    },
                ),
            },
        }

    def draw(
        self, images: torch.Tensor, tracks: Tracks, point_size: int = 4, line_width: int = 2
    ) -> tuple[torch.Tensor]:
        name = type(self).__name__
        with named_errors(name):
            check_frames(images, "images")
        for input_name, value in (("point_size", point_size), ("line_width", line_width)):
            if value < 0:
                raise ValueError(f"{name}: {input_name} ({value}) must not be negative")
        with named_errors(f"{name}: images"):
            return (render_tracks(images, tracks, point_size, line_width),)


NODE_CLASS_MAPPINGS = {
    "TracksFromJSON": TracksFromJSON,
    "TracksToJSON": TracksToJSON,
    "ResampleTracks": ResampleTracks,
    "DrawTracksOnVideo": DrawTracksOnVideo,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "TracksFromJSON": "Tracks from JSON",
    "TracksToJSON": "Tracks to JSON",
    "ResampleTracks": "Resample Tracks",
    "DrawTracksOnVideo": "Draw Tracks on Video",
}
