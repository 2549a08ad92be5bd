"""OpenPose keypoint JSON to pose images in the OpenPose colour convention, for pose ControlNets.

Input is the ``POSE_KEYPOINT`` layout that ComfyUI's controlnet_aux preprocessors output and users save: a list of
frames (or one frame object), each ``{"people": [{"pose_keypoints_2d": [x0, y0, c0, ...]}], "canvas_width": W,
"canvas_height": H}``. A person has the 18 COCO keypoints, or OpenPose's 25 BODY_25 keypoints, which are mapped to
the 18 (mid-hip and the feet are dropped); face and hand keypoints are ignored. Coordinates are pixels of the
frame's canvas, or normalised 0..1: a frame whose confident coordinates all lie within 0..1 is read as normalised.

Rendering follows the ControlNet OpenPose annotator: on black, the 17 limbs as ellipses ``STICK_WIDTH`` pixels
half-wide at 60% of their colour, then the joints as discs of ``JOINT_RADIUS`` in full colour. Keypoints with
confidence 0 (or below) are not drawn, nor are limbs touching them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw

# COCO-18 keypoint order used by OpenPose-style ControlNets.
KEYPOINT_NAMES = (
    "nose",
    "neck",
    "right_shoulder",
    "right_elbow",
    "right_wrist",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
    "right_hip",
    "right_knee",
    "right_ankle",
    "left_hip",
    "left_knee",
    "left_ankle",
    "right_eye",
    "left_eye",
    "right_ear",
    "left_ear",
)
# Limbs as (from, to) keypoint indices, in drawing order; limb i is drawn in KEYPOINT_COLORS[i] at LIMB_BRIGHTNESS.
LIMBS = (
    (1, 2),  # neck - right shoulder
    (1, 5),  # neck - left shoulder
    (2, 3),  # right upper arm
    (3, 4),  # right forearm
    (5, 6),  # left upper arm
    (6, 7),  # left forearm
    (1, 8),  # neck - right hip
    (8, 9),  # right thigh
    (9, 10),  # right shin
    (1, 11),  # neck - left hip
    (11, 12),  # left thigh
    (12, 13),  # left shin
    (1, 0),  # neck - nose
    (0, 14),  # nose - right eye
    (14, 16),  # right eye - right ear
    (0, 15),  # nose - left eye
    (15, 17),  # left eye - left ear
)
# The OpenPose hue wheel: red through yellow, green, cyan, blue and magenta, one colour per keypoint.
KEYPOINT_COLORS = (
    (255, 0, 0),
    (255, 85, 0),
    (255, 170, 0),
    (255, 255, 0),
    (170, 255, 0),
    (85, 255, 0),
    (0, 255, 0),
    (0, 255, 85),
    (0, 255, 170),
    (0, 255, 255),
    (0, 170, 255),
    (0, 85, 255),
    (0, 0, 255),
    (85, 0, 255),
    (170, 0, 255),
    (255, 0, 255),
    (255, 0, 170),
    (255, 0, 85),
)
# Position of each COCO-18 keypoint in OpenPose's BODY_25 list (BODY_25 adds mid-hip at 8 and six foot points).
BODY_25_TO_COCO_18 = (0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18)
BODY_25_COUNT = 25
LIMB_BRIGHTNESS = 0.6
STICK_WIDTH = 4
JOINT_RADIUS = 4
_ELLIPSE_POINTS = 36

Keypoint = tuple[float, float, float]  # x, y, confidence


@dataclass(frozen=True)
class PoseFrame:
    """One frame: each person's 18 keypoints, the canvas size when the JSON gives it, and the coordinate kind."""

    people: tuple[tuple[Keypoint, ...], ...]
    canvas_width: int | None
    canvas_height: int | None
    normalised: bool


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{where}: {value!r} is not a finite number")
    return float(value)


def _person_keypoints(person: Any, where: str) -> tuple[Keypoint, ...]:
    """The 18 COCO keypoints of one person object (COCO-18 or BODY_25 in ``pose_keypoints_2d``)."""
    if not isinstance(person, dict) or "pose_keypoints_2d" not in person:
        raise ValueError(f"{where}: a person must be an object with a 'pose_keypoints_2d' list")
    values = person["pose_keypoints_2d"]
    if not isinstance(values, list):
        raise ValueError(f"{where}: 'pose_keypoints_2d' must be a list, got {type(values).__name__}")
    if len(values) % 3:
        raise ValueError(f"{where}: 'pose_keypoints_2d' has {len(values)} values, not a multiple of 3 (x, y, c)")
    count = len(values) // 3
    if count not in (len(KEYPOINT_NAMES), BODY_25_COUNT):
        raise ValueError(f"{where}: 'pose_keypoints_2d' has {count} keypoints; expected 18 (COCO) or 25 (BODY_25)")
    numbers = [_number(value, f"{where}, value {index}") for index, value in enumerate(values)]
    points = [(numbers[3 * k], numbers[3 * k + 1], numbers[3 * k + 2]) for k in range(count)]
    if count != len(KEYPOINT_NAMES):
        points = [points[index] for index in BODY_25_TO_COCO_18]
    return tuple(points)


def _canvas_side(frame: dict[str, Any], key: str, where: str) -> int | None:
    value = frame.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{where}: '{key}' must be a positive whole number, got {value!r}")
    if value != int(value) or value < 1:
        raise ValueError(f"{where}: '{key}' must be a positive whole number, got {value!r}")
    return int(value)


def _is_normalised(people: Sequence[Sequence[Keypoint]]) -> bool:
    """True when every drawn (confident) coordinate lies within 0..1."""
    return all(0.0 <= x <= 1.0 and 0.0 <= y <= 1.0 for person in people for x, y, c in person if c > 0)


def parse_pose_frames(document: Any) -> list[PoseFrame]:
    """The frames of a parsed pose JSON document (a list of frame objects, or one frame object).

    ValueError names the frame and person index of the first bad entry.
    """
    frames = [document] if isinstance(document, dict) else document
    if not isinstance(frames, list) or not frames:
        raise ValueError("expected a non-empty list of frames, each an object with a 'people' list")
    parsed = []
    for frame_index, frame in enumerate(frames):
        where = f"frame {frame_index}"
        if not isinstance(frame, dict) or not isinstance(frame.get("people"), list):
            raise ValueError(f"{where}: a frame must be an object with a 'people' list")
        people = tuple(
            _person_keypoints(person, f"{where}, person {person_index}")
            for person_index, person in enumerate(frame["people"])
        )
        width = _canvas_side(frame, "canvas_width", where)
        height = _canvas_side(frame, "canvas_height", where)
        parsed.append(PoseFrame(people, width, height, _is_normalised(people)))
    return parsed


def _limb_polygon(start: tuple[float, float], end: tuple[float, float], half_width: float) -> list[tuple[float, float]]:
    """Outline of the ellipse spanning ``start`` to ``end`` with semi-minor axis ``half_width``."""
    (x0, y0), (x1, y1) = start, end
    centre_x, centre_y = (x0 + x1) / 2, (y0 + y1) / 2
    half_length = math.hypot(x1 - x0, y1 - y0) / 2
    angle = math.atan2(y1 - y0, x1 - x0)
    cos_a, sin_a = math.cos(angle), math.sin(angle)
    outline = []
    for step in range(_ELLIPSE_POINTS):
        t = 2 * math.pi * step / _ELLIPSE_POINTS
        along, across = half_length * math.cos(t), half_width * math.sin(t)
        outline.append((centre_x + along * cos_a - across * sin_a, centre_y + along * sin_a + across * cos_a))
    return outline


def render_pose(
    people: Sequence[Sequence[Keypoint]], width: int, height: int, scale_x: float, scale_y: float
) -> np.ndarray:
    """A ``[height, width, 3]`` uint8 pose image; keypoint coordinates are multiplied by the scales first."""
    canvas = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(canvas)
    for person in people:
        points = [(x * scale_x, y * scale_y) if c > 0 else None for x, y, c in person]
        for limb_index, (first, second) in enumerate(LIMBS):
            if points[first] is not None and points[second] is not None:
                dimmed = tuple(int(channel * LIMB_BRIGHTNESS) for channel in KEYPOINT_COLORS[limb_index])
                draw.polygon(_limb_polygon(points[first], points[second], STICK_WIDTH), fill=dimmed)
        for point, color in zip(points, KEYPOINT_COLORS, strict=True):
            if point is not None:
                x, y = point
                box = (x - JOINT_RADIUS, y - JOINT_RADIUS, x + JOINT_RADIUS, y + JOINT_RADIUS)
                draw.ellipse(box, fill=color)
    return np.asarray(canvas)


def _output_side(requested: int, canvas: int | None, frame_index: int, name: str) -> int:
    if requested:
        return requested
    if canvas is None:
        raise ValueError(f"frame {frame_index} has no 'canvas_{name}'; set {name} to a size above 0")
    return canvas


def render_pose_frames(frames: Sequence[PoseFrame], width: int = 0, height: int = 0) -> torch.Tensor:
    """IMAGE ``[frames, H, W, 3]`` of the poses; a size of 0 takes the frame's canvas size, which must then agree.

    Pixel coordinates are scaled from each frame's canvas to the output size (kept as is without a canvas);
    normalised ones are scaled by the output size.
    """
    images = []
    for index, frame in enumerate(frames):
        out_width = _output_side(width, frame.canvas_width, index, "width")
        out_height = _output_side(height, frame.canvas_height, index, "height")
        if images and images[0].shape[:2] != (out_height, out_width):
            raise ValueError(
                f"frame {index} is {out_width}x{out_height} but frame 0 is {images[0].shape[1]}x{images[0].shape[0]}; "
                "set width and height to render all frames at one size"
            )
        if frame.normalised:
            scale_x, scale_y = float(out_width), float(out_height)
        else:
            scale_x = out_width / frame.canvas_width if frame.canvas_width else 1.0
            scale_y = out_height / frame.canvas_height if frame.canvas_height else 1.0
        images.append(render_pose(frame.people, out_width, out_height, scale_x, scale_y))
    return torch.from_numpy(np.stack(images)).to(torch.float32).div_(255.0)
