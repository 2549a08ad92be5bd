"""Pose JSON to OpenPose-style images: limb and joint colours and positions, coordinate kinds, errors."""

from __future__ import annotations

import re
from typing import Any

import pytest
import torch

from models.control.pose import (
    BODY_25_TO_COCO_18,
    KEYPOINT_COLORS,
    KEYPOINT_NAMES,
    LIMB_BRIGHTNESS,
    LIMBS,
    parse_pose_frames,
    render_pose_frames,
)

CANVAS_WIDTH, CANVAS_HEIGHT = 128, 64
NECK, RIGHT_SHOULDER, LEFT_SHOULDER, NOSE = 1, 2, 5, 0
# x, y, confidence of the drawn test person; every other keypoint has confidence 0.
POINTS = {NECK: (64.0, 32.0, 1.0), RIGHT_SHOULDER: (40.0, 32.0, 0.9), LEFT_SHOULDER: (88.0, 32.0, 0.8)}
HIDDEN_NOSE = (64.0, 8.0, 0.0)


def keypoint_list(points: dict[int, tuple[float, float, float]], count: int = 18) -> list[float]:
    values = [0.0] * (3 * count)
    for index, point in points.items():
        values[3 * index : 3 * index + 3] = point
    return values


def frame(people: list[list[float]], canvas: bool = True) -> dict[str, Any]:
    document: dict[str, Any] = {"people": [{"pose_keypoints_2d": keypoints} for keypoints in people]}
    if canvas:
        document.update(canvas_width=CANVAS_WIDTH, canvas_height=CANVAS_HEIGHT)
    return document


def person_values() -> list[float]:
    return keypoint_list({**POINTS, NOSE: HIDDEN_NOSE})


def render(document: Any, width: int = 0, height: int = 0) -> torch.Tensor:
    return render_pose_frames(parse_pose_frames(document), width, height)


def rgb(image: torch.Tensor, x: int, y: int) -> tuple[int, ...]:
    return tuple(round(value * 255) for value in image[y, x].tolist())


def limb_color(limb: tuple[int, int]) -> tuple[int, ...]:
    return tuple(int(channel * LIMB_BRIGHTNESS) for channel in KEYPOINT_COLORS[LIMBS.index(limb)])


def test_convention_tables_are_complete() -> None:
    assert len(KEYPOINT_NAMES) == len(KEYPOINT_COLORS) == 18
    assert len(LIMBS) == 17 and len(set(LIMBS)) == 17
    assert KEYPOINT_COLORS[0] == (255, 0, 0) and LIMBS[0] == (NECK, RIGHT_SHOULDER)


def test_limbs_and_joints_render_in_their_colours_at_their_positions() -> None:
    image = render([frame([person_values()])])
    assert image.shape == (1, CANVAS_HEIGHT, CANVAS_WIDTH, 3) and image.dtype == torch.float32
    image = image[0]
    right_limb, left_limb = limb_color((NECK, RIGHT_SHOULDER)), limb_color((NECK, LEFT_SHOULDER))
    assert right_limb == (153, 0, 0)
    for y in (29, 32, 35):  # the limb is STICK_WIDTH (4) pixels half-wide
        assert rgb(image, 52, y) == right_limb
        assert rgb(image, 76, y) == left_limb
    for y in (26, 38):
        assert rgb(image, 52, y) == (0, 0, 0)
    for index, (x, y, _) in POINTS.items():
        assert rgb(image, int(x), int(y)) == KEYPOINT_COLORS[index]
        assert rgb(image, int(x), int(y) + 3) == KEYPOINT_COLORS[index]  # a disc of JOINT_RADIUS (4)


def test_confidence_zero_points_and_their_limbs_are_not_drawn() -> None:
    image = render([frame([person_values()])])[0]
    assert rgb(image, 64, 8) == (0, 0, 0)  # the nose
    assert rgb(image, 64, 20) == (0, 0, 0)  # the neck-nose limb
    drawn_rows = image.amax(dim=(1, 2)).nonzero()[:, 0]
    assert drawn_rows.min() >= 27 and drawn_rows.max() <= 37


def test_normalised_and_pixel_coordinates_render_the_same() -> None:
    normalised = {
        index: (x / CANVAS_WIDTH, y / CANVAS_HEIGHT, c) for index, (x, y, c) in {**POINTS, NOSE: HIDDEN_NOSE}.items()
    }
    frames = parse_pose_frames(frame([keypoint_list(normalised)]))
    assert frames[0].normalised
    assert torch.equal(render_pose_frames(frames), render([frame([person_values()])]))


def test_output_size_scales_pixel_coordinates_from_the_canvas() -> None:
    image = render([frame([person_values()])], width=2 * CANVAS_WIDTH, height=2 * CANVAS_HEIGHT)[0]
    assert image.shape == (2 * CANVAS_HEIGHT, 2 * CANVAS_WIDTH, 3)
    assert rgb(image, 128, 64) == KEYPOINT_COLORS[NECK]
    assert rgb(image, 80, 64) == KEYPOINT_COLORS[RIGHT_SHOULDER]


def test_body_25_people_render_like_coco_18() -> None:
    body_25 = {BODY_25_TO_COCO_18[index]: point for index, point in POINTS.items()}
    body_25[8] = (64.0, 60.0, 1.0)  # mid-hip: not part of COCO-18, not drawn
    single = frame([keypoint_list(body_25, count=25)])  # one frame object, not a list
    assert torch.equal(render(single), render([frame([person_values()])]))


def test_frames_render_in_order_and_empty_frames_are_black() -> None:
    images = render([frame([]), frame([person_values()]), frame([person_values(), person_values()])])
    assert images.shape == (3, CANVAS_HEIGHT, CANVAS_WIDTH, 3)
    assert images[0].max() == 0
    assert torch.equal(images[1], images[2])


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (
            [frame([person_values(), [0.0] * 53])],
            "frame 0, person 1: 'pose_keypoints_2d' has 53 values, not a multiple",
        ),
        ([frame([[0.0] * 51])], "frame 0, person 0: 'pose_keypoints_2d' has 17 keypoints; expected 18 (COCO) or 25"),
        ([frame([]), frame([[0, 0, "abc"] + [0] * 51])], "frame 1, person 0, value 2: 'abc' is not a finite number"),
        ([frame([]), {"canvas_width": 8}], "frame 1: a frame must be an object with a 'people' list"),
        ([{"people": [{"x": 1}]}], "frame 0, person 0: a person must be an object with a 'pose_keypoints_2d' list"),
        ([{"people": [{"pose_keypoints_2d": "1 2 3"}]}], "frame 0, person 0: 'pose_keypoints_2d' must be a list"),
        ([{"people": [], "canvas_width": -4}], "frame 0: 'canvas_width' must be a positive whole number, got -4"),
        ([], "expected a non-empty list of frames"),
    ],
)
def test_bad_documents_name_the_frame_and_person(document: Any, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_pose_frames(document)


def test_sizes_must_be_known_and_agree() -> None:
    with pytest.raises(ValueError, match="frame 0 has no 'canvas_width'; set width to a size above 0"):
        render([frame([person_values()], canvas=False)])
    assert render([frame([person_values()], canvas=False)], width=32, height=16).shape == (1, 16, 32, 3)
    other = {"people": [], "canvas_width": 64, "canvas_height": 64}
    with pytest.raises(ValueError, match="frame 1 is 64x64 but frame 0 is 128x64"):
        render([frame([]), other])
    assert render([frame([]), other], width=100).shape == (2, 64, 100, 3)
