"""Structure-control preprocessors that run anywhere (no model): Canny edges, grayscale, scribbles, pose images.

Their outputs are the control images that ControlNet-style models take: white lines on black, or OpenPose
skeletons. ``Canny`` has the sockets of ComfyUI's node of the same name, so its workflows load unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import torch

from graph.context import ProgressBar
from models.control.canny import canny_edges, thicken_lines
from models.control.pose import parse_pose_frames, render_pose_frames
from models.pixels import luma
from nodes.frames import check_frames
from nodes.image import MAX_RESOLUTION

CATEGORY = "image/preprocessors"
SCRIBBLE_SOURCES = ("edges", "dark_lines")
MAX_THICKNESS = 64
_CHUNK_PIXELS = 1 << 20  # frame pixels per step; edge detection needs roughly 100 bytes of temporaries per pixel


def _threshold_input(default: float, tooltip: str) -> tuple[str, dict[str, Any]]:
    return ("FLOAT", {"default": default, "min": 0.01, "max": 0.99, "step": 0.01, "tooltip": tooltip})


LOW_THRESHOLD = _threshold_input(0.4, "Edge pixels above this gradient are kept when they touch a strong edge.")
HIGH_THRESHOLD = _threshold_input(0.8, "Edge pixels above this gradient are always kept (strong edges).")


def _check_thresholds(node: str, low_threshold: float, high_threshold: float) -> None:
    if low_threshold > high_threshold:
        raise ValueError(f"{node}: low_threshold ({low_threshold}) must not be above high_threshold ({high_threshold})")


def _per_chunk(images: torch.Tensor, make_mask: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """IMAGE ``[B, H, W, 3]`` of ``make_mask`` (frames to ``[b, H, W]`` in 0..1), a few frames at a time."""
    count, height, width = images.shape[:3]
    out = torch.empty((count, height, width, 3), dtype=torch.float32, device=images.device)
    step = max(1, _CHUNK_PIXELS // (height * width))
    bar = ProgressBar(count)
    for start in range(0, count, step):
        frames = images[start : start + step]
        out[start : start + step] = make_mask(frames).to(torch.float32)[..., None]
        bar.update(frames.shape[0])
    return out


class Canny:
    """Canny edge map of every frame: white one-pixel edges on black."""

    FUNCTION = "detect_edge"
    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("IMAGE",)
    DESCRIPTION = (
        "Canny edge detection per frame (blur, gradients, thinning to one pixel, two thresholds with hysteresis): "
        "white edges on black, for canny ControlNets. Lower thresholds find more edges."
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "image": ("IMAGE", {"tooltip": "The frames to find edges in."}),
                "low_threshold": LOW_THRESHOLD,
                "high_threshold": HIGH_THRESHOLD,
            }
        }

    def detect_edge(self, image: torch.Tensor, low_threshold: float, high_threshold: float) -> tuple[torch.Tensor]:
        check_frames(image, "Canny: image")
        _check_thresholds("Canny", low_threshold, high_threshold)
        return (_per_chunk(image, lambda frames: canny_edges(frames, low_threshold, high_threshold)),)


class ImageToGrayscaleControl:
    """Frames as their luma, repeated in three channels."""

    FUNCTION = "convert"
    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("image",)
    DESCRIPTION = "Luma (BT.601) of every frame in all three channels, for grayscale or recolour ControlNets."

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"image": ("IMAGE", {"tooltip": "The frames to convert."})}}

    def convert(self, image: torch.Tensor) -> tuple[torch.Tensor]:
        check_frames(image, "ImageToGrayscaleControl: image")
        return (_per_chunk(image, lambda frames: luma(frames).clamp(0.0, 1.0)),)


class ScribbleControl:
    """Scribble-style control: white lines of a set thickness on black, from edges or from a drawing."""

    FUNCTION = "scribble"
    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("image",)
    DESCRIPTION = (
        "White lines on black for scribble ControlNets. 'edges' takes the Canny edges of a picture; 'dark_lines' "
        "takes a drawing's dark strokes (luma below line_threshold) on a light background. The lines are then "
        "widened to thickness pixels with a round brush."
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "image": ("IMAGE", {"tooltip": "A picture ('edges') or a dark-on-light drawing ('dark_lines')."}),
                "source": (list(SCRIBBLE_SOURCES), {"tooltip": "Where the lines come from."}),
                "thickness": (
                    "INT",
                    {
                        "default": 3,
                        "min": 1,
                        "max": MAX_THICKNESS,
                        "step": 1,
                        "tooltip": "Line width in pixels; 1 keeps the lines as found.",
                    },
                ),
                "low_threshold": LOW_THRESHOLD,
                "high_threshold": HIGH_THRESHOLD,
                "line_threshold": (
                    "FLOAT",
                    {
                        "default": 0.5,
                        "min": 0.0,
                        "max": 1.0,
                        "step": 0.01,
                        "tooltip": "'dark_lines' only: pixels darker than this are strokes.",
                    },
                ),
            }
        }

    def scribble(
        self,
        image: torch.Tensor,
        source: str,
        thickness: int,
        low_threshold: float,
        high_threshold: float,
        line_threshold: float,
    ) -> tuple[torch.Tensor]:
        check_frames(image, "ScribbleControl: image")
        if source not in SCRIBBLE_SOURCES:
            raise ValueError(f"ScribbleControl: source {source!r} is not one of {', '.join(SCRIBBLE_SOURCES)}")
        if not 1 <= thickness <= MAX_THICKNESS:
            raise ValueError(f"ScribbleControl: thickness ({thickness}) must lie between 1 and {MAX_THICKNESS}")
        _check_thresholds("ScribbleControl", low_threshold, high_threshold)

        def lines(frames: torch.Tensor) -> torch.Tensor:
            if source == "edges":
                found = canny_edges(frames, low_threshold, high_threshold)
            else:
                found = luma(frames) < line_threshold
            return thicken_lines(found, thickness)

        return (_per_chunk(image, lines),)


class PoseKeypointsToImage:
    """OpenPose keypoint JSON drawn as OpenPose skeleton images, one per frame."""

    FUNCTION = "render"
    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("image",)
    DESCRIPTION = (
        "Draws OpenPose keypoint JSON (ComfyUI's POSE_KEYPOINT layout: a list of frames with 'people' and "
        "'pose_keypoints_2d', COCO-18 or BODY_25, pixel or 0..1 coordinates) as coloured skeletons on black, "
        "for pose ControlNets."
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        size_options = {"default": 0, "min": 0, "max": MAX_RESOLUTION, "step": 1}
        return {
            "required": {
                "pose_json": (
                    "STRING",
                    {"default": "", "multiline": True, "tooltip": "The keypoint JSON: a list of frames, or one."},
                ),
                "width": ("INT", {**size_options, "tooltip": "Image width; 0 uses canvas_width from the JSON."}),
                "height": ("INT", {**size_options, "tooltip": "Image height; 0 uses canvas_height from the JSON."}),
            }
        }

    def render(self, pose_json: str, width: int, height: int) -> tuple[torch.Tensor]:
        for name, size in (("width", width), ("height", height)):
            if not 0 <= size <= MAX_RESOLUTION:
                raise ValueError(f"PoseKeypointsToImage: {name} ({size}) must lie between 0 and {MAX_RESOLUTION}")
        try:
            document = json.loads(pose_json)
        except json.JSONDecodeError as error:
            raise ValueError(f"PoseKeypointsToImage: pose_json is not valid JSON ({error})") from error
        try:
            frames = parse_pose_frames(document)
        except ValueError as error:
            raise ValueError(f"PoseKeypointsToImage: pose_json {error}") from error
        try:
            return (render_pose_frames(frames, width, height),)
        except ValueError as error:
            raise ValueError(f"PoseKeypointsToImage: {error}") from error


NODE_CLASS_MAPPINGS = {
    "Canny": Canny,
    "ImageToGrayscaleControl": ImageToGrayscaleControl,
    "ScribbleControl": ScribbleControl,
    "PoseKeypointsToImage": PoseKeypointsToImage,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "Canny": "Canny",
    "ImageToGrayscaleControl": "Grayscale Control Image",
    "ScribbleControl": "Scribble Control Image",
    "PoseKeypointsToImage": "Pose Keypoints to Image",
}
