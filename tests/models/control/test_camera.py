"""Camera paths: preset directions and amounts, easing, composition, concatenation, resampling, pose text files."""

from __future__ import annotations

import math

import numpy as np
import pytest

from models.control.camera import (
    DEGREES_PER_FRAME,
    EASINGS,
    PRESETS,
    UNITS_PER_FRAME,
    ZOOM_PER_FRAME,
    CameraPath,
    axis_rotations,
    compose,
    concatenate,
    ease,
    extrinsics_from_poses,
    format_pose_text,
    parse_pose_text,
    preset_path,
    quaternions_from_rotations,
    resample,
    rotations_from_quaternions,
)

TIGHT = 1e-9


def project(path: CameraPath, point: tuple[float, float, float], frame: int = -1) -> np.ndarray:
    """Normalised image coordinates (0..1, y down) of a world point in one frame."""
    camera = path.extrinsics[frame] @ np.array([*point, 1.0])
    fx, fy, cx, cy = path.intrinsics[frame]
    return np.array([fx * camera[0] / camera[2] + cx, fy * camera[1] / camera[2] + cy])


def rotation_angle(rotation: np.ndarray) -> float:
    """Angle in degrees of a rotation matrix."""
    return math.degrees(math.acos(np.clip((np.trace(rotation) - 1) / 2, -1, 1)))


def random_rotations(count: int, seed: int = 0) -> np.ndarray:
    quaternions = np.random.default_rng(seed).normal(size=(count, 4))
    return rotations_from_quaternions(quaternions)


def random_path(frames: int, seed: int = 0, timestamps: bool = True) -> CameraPath:
    rng = np.random.default_rng(seed)
    intrinsics = np.column_stack((rng.uniform(0.3, 1.2, (frames, 2)), rng.uniform(0.4, 0.6, (frames, 2))))
    extrinsics = extrinsics_from_poses(random_rotations(frames, seed), rng.normal(size=(frames, 3)))
    stamps = np.cumsum(rng.integers(30000, 40000, frames)).astype(np.float64) if timestamps else None
    return CameraPath(intrinsics, extrinsics, stamps)


# --- the value ----------------------------------------------------------------------------------------------------


def test_path_is_read_only_and_validated() -> None:
    path = preset_path("pan_left", 4)
    assert path.frame_count == 4 and path.extrinsics.dtype == np.float64
    with pytest.raises(ValueError, match="read-only"):
        path.extrinsics[0, 0, 0] = 2.0
    with pytest.raises(ValueError, match=r"extrinsics must have shape \[4, 4, 4\]"):
        CameraPath(path.intrinsics, path.extrinsics[:3])
    with pytest.raises(ValueError, match="focal lengths"):
        CameraPath(path.intrinsics * -1, path.extrinsics)
    with pytest.raises(ValueError, match="bottom row"):
        CameraPath(path.intrinsics, path.extrinsics * 2)
    with pytest.raises(ValueError, match="timestamps must be 4"):
        CameraPath(path.intrinsics, path.extrinsics, np.zeros(3))


def test_axis_rotations_are_right_handed() -> None:
    quarter = np.array([math.pi / 2])
    assert np.allclose(axis_rotations(0, quarter)[0] @ [0, 1, 0], [0, 0, 1], atol=TIGHT)
    assert np.allclose(axis_rotations(1, quarter)[0] @ [0, 0, 1], [1, 0, 0], atol=TIGHT)
    assert np.allclose(axis_rotations(2, quarter)[0] @ [1, 0, 0], [0, 1, 0], atol=TIGHT)


def test_quaternion_round_trip_including_half_turns() -> None:
    rotations = np.concatenate((random_rotations(50), axis_rotations(0, np.array([math.pi, 0.0]))))
    assert np.allclose(rotations_from_quaternions(quaternions_from_rotations(rotations)), rotations, atol=TIGHT)


# --- easing and presets -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("easing", EASINGS)
def test_easing_is_monotone_from_zero_to_one(easing: str) -> None:
    progress = np.linspace(0, 1, 101)
    eased = ease(easing, progress)
    assert eased[0] == pytest.approx(0, abs=TIGHT) and eased[-1] == pytest.approx(1, abs=TIGHT)
    assert (np.diff(eased) >= 0).all()


def test_easing_shapes() -> None:
    half = np.array([0.5])
    assert ease("ease_in", half)[0] < 0.5 < ease("ease_out", half)[0]
    assert ease("ease_in_out", half)[0] == pytest.approx(0.5, abs=TIGHT)
    assert ease("linear", half)[0] == 0.5
    with pytest.raises(ValueError, match="easing 'bounce' is not one of linear"):
        ease("bounce", half)


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_starts_at_identity_with_proper_rotations(preset: str) -> None:
    path = preset_path(preset, 7, speed=3.0, easing="ease_out")
    assert np.allclose(path.extrinsics[0], np.eye(4), atol=TIGHT)
    rotations = path.extrinsics[:, :3, :3]
    assert np.allclose(rotations @ rotations.transpose(0, 2, 1), np.eye(3), atol=TIGHT)
    assert np.allclose(np.linalg.det(rotations), 1.0, atol=TIGHT)


@pytest.mark.parametrize(("preset", "axis"), [("pan_right", 1), ("tilt_up", 0), ("roll_clockwise", 2)])
def test_rotation_presets_turn_speed_degrees_per_frame(preset: str, axis: int) -> None:
    path = preset_path(preset, 11, speed=2.0)
    angles = [rotation_angle(extrinsics[:3, :3]) for extrinsics in path.extrinsics]
    assert np.allclose(angles, np.arange(11) * 2.0 * DEGREES_PER_FRAME, atol=1e-6)
    assert np.allclose(path.extrinsics[:, :3, 3], 0, atol=TIGHT)
    rotation_axis = np.zeros(3)
    rotation_axis[axis] = 1.0
    assert np.allclose(path.extrinsics[-1, :3, :3] @ rotation_axis, rotation_axis, atol=TIGHT)


def test_preset_directions_as_seen_in_the_image() -> None:
    ahead, right = (0.0, 0.0, 5.0), (1.0, 0.0, 5.0)
    assert project(preset_path("pan_right", 9), ahead)[0] < 0.5 < project(preset_path("pan_left", 9), ahead)[0]
    assert project(preset_path("tilt_up", 9), ahead)[1] > 0.5 > project(preset_path("tilt_down", 9), ahead)[1]
    # the camera turns clockwise, so the picture turns anticlockwise: a point on the right rises
    assert project(preset_path("roll_clockwise", 9), right)[1] < 0.5
    assert project(preset_path("roll_anticlockwise", 9), right)[1] > 0.5
    start = project(preset_path("static", 9), right)[0]
    for moving_in, moving_out in (("zoom_in", "zoom_out"), ("dolly_in", "dolly_out")):
        assert project(preset_path(moving_in, 9), right)[0] > start > project(preset_path(moving_out, 9), right)[0]


def test_dolly_and_zoom_amounts() -> None:
    dolly = preset_path("dolly_in", 5, speed=4.0).camera_to_world()
    assert np.allclose(dolly[:, :3, 3], [[0, 0, 4 * UNITS_PER_FRAME * i] for i in range(5)], atol=TIGHT)
    zoom = preset_path("zoom_out", 5, speed=2.0)
    expected = zoom.intrinsics[0, :2] * (1 + ZOOM_PER_FRAME) ** (-2.0 * 4)
    assert np.allclose(zoom.intrinsics[-1, :2], expected, atol=TIGHT)
    assert np.allclose(zoom.extrinsics, np.eye(4), atol=TIGHT)


@pytest.mark.parametrize("preset", ["orbit_left", "orbit_right"])
def test_orbit_keeps_its_target_centred_at_constant_distance(preset: str) -> None:
    path = preset_path(preset, 9, speed=10.0, orbit_distance=3.0)
    target = (0.0, 0.0, 3.0)
    for frame in range(9):
        assert np.allclose(project(path, target, frame), [0.5, 0.5], atol=TIGHT)
    centres = path.camera_to_world()[:, :3, 3]
    assert np.allclose(np.linalg.norm(centres - target, axis=1), 3.0, atol=TIGHT)
    assert (centres[-1, 0] < 0) == (preset == "orbit_left")


def test_easing_redistributes_the_same_total_move() -> None:
    linear = preset_path("pan_left", 9, easing="linear")
    eased = preset_path("pan_left", 9, easing="ease_in")
    assert np.allclose(linear.extrinsics[-1], eased.extrinsics[-1], atol=TIGHT)
    assert rotation_angle(eased.extrinsics[4, :3, :3]) < rotation_angle(linear.extrinsics[4, :3, :3])


def test_default_intrinsics_have_square_pixels() -> None:
    fx, fy, cx, cy = preset_path("static", 1, aspect_ratio=2.0, field_of_view=90.0).intrinsics[0]
    assert (fx, cx, cy) == pytest.approx((0.5, 0.5, 0.5), abs=TIGHT) and fy == pytest.approx(1.0, abs=TIGHT)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"preset": "spin"}, "preset 'spin' is not one of static"),
        ({"frames": 0}, r"frames \(0\) must be at least 1"),
        ({"speed": -1.0}, r"speed \(-1.0\) must be a finite number >= 0"),
        ({"easing": "snap"}, "easing 'snap'"),
        ({"field_of_view": 180.0}, "field_of_view"),
        ({"orbit_distance": 0.0}, "orbit_distance"),
    ],
)
def test_preset_rejects_bad_arguments(arguments: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        preset_path(**{"preset": "pan_left", "frames": 4, **arguments})


# --- composition, concatenation, resampling -----------------------------------------------------------------------


def test_compose_with_static_changes_nothing() -> None:
    path = random_path(6)
    static = preset_path("static", 6)
    assert compose(path, static).allclose(path)
    composed = compose(static, path)
    assert np.allclose(composed.relative_extrinsics(), path.relative_extrinsics(), atol=TIGHT)


def test_compose_applies_the_second_move_in_the_moved_cameras_axes() -> None:
    dolly, pan = preset_path("dolly_in", 5, speed=3.0), preset_path("pan_right", 5, speed=6.0)
    poses = compose(pan, dolly).camera_to_world()
    # panned right by 3 degrees per frame, then moved along the turned optical axis
    for frame, pose in enumerate(poses):
        angle, distance = math.radians(3.0 * frame), 3.0 * UNITS_PER_FRAME * frame
        assert np.allclose(pose[:3, 3], [distance * math.sin(angle), 0, distance * math.cos(angle)], atol=TIGHT)
        assert rotation_angle(pose[:3, :3]) == pytest.approx(3.0 * frame, abs=1e-6)


def test_compose_multiplies_zoom_and_refuses_different_lengths() -> None:
    zoom = preset_path("zoom_in", 4)
    composed = compose(zoom, zoom)
    assert np.allclose(composed.intrinsics[:, :2], zoom.intrinsics[:, :2] ** 2 / zoom.intrinsics[:1, :2], atol=TIGHT)
    with pytest.raises(ValueError, match="same frame count, got 4 and 5"):
        compose(zoom, preset_path("pan_left", 5))


def test_concatenate_continues_from_the_last_pose() -> None:
    first, second = preset_path("pan_left", 5, speed=2.0), preset_path("pan_left", 4, speed=2.0)
    joined = concatenate(first, second)
    assert joined.allclose(preset_path("pan_left", 8, speed=2.0))
    dolly = concatenate(preset_path("pan_right", 3, speed=10.0), preset_path("dolly_in", 3, speed=5.0))
    turn = math.radians(10.0)
    last_centre = dolly.camera_to_world()[-1, :3, 3]
    assert np.allclose(last_centre, 10 * UNITS_PER_FRAME * np.array([math.sin(turn), 0, math.cos(turn)]), atol=TIGHT)


def test_concatenate_continues_timestamps() -> None:
    first, second = random_path(3, seed=1), random_path(4, seed=2)
    joined = concatenate(first, second)
    assert joined.frame_count == 6
    assert np.allclose(joined.timestamps[3:] - joined.timestamps[2], second.timestamps[1:] - second.timestamps[0])
    assert concatenate(first, random_path(2, timestamps=False)).timestamps is None


def test_resample_of_a_linear_move_is_the_same_move_at_another_rate() -> None:
    # (zoom is exponential and orbit centres move on an arc: their in-betweens are linear, checked below)
    for preset in ("pan_left", "tilt_down", "roll_clockwise", "dolly_out"):
        resampled = resample(preset_path(preset, 9, speed=2.0), 17)
        assert resampled.allclose(preset_path(preset, 17, speed=1.0)), preset
        assert resampled.allclose(resample(resampled, 17))
    zoom = preset_path("zoom_in", 3)
    halfway = resample(zoom, 5).intrinsics[1]
    assert np.allclose(halfway, (zoom.intrinsics[0] + zoom.intrinsics[1]) / 2, atol=TIGHT)
    orbit = preset_path("orbit_right", 3, speed=20.0)
    centres = orbit.camera_to_world()[:, :3, 3]
    assert np.allclose(resample(orbit, 5).camera_to_world()[1, :3, 3], (centres[0] + centres[1]) / 2, atol=TIGHT)


def test_resample_slerps_rotation_and_keeps_the_ends() -> None:
    path = random_path(4, seed=3)
    resampled = resample(path, 7)
    assert np.allclose(resampled.extrinsics[::2], path.extrinsics, atol=TIGHT)
    assert np.allclose(resampled.timestamps[::2], path.timestamps, atol=1e-6)
    for step in range(3):
        start, middle, end = (resampled.camera_to_world()[2 * step + offset, :3, :3] for offset in range(3))
        half = rotation_angle(start.T @ end) / 2
        assert rotation_angle(start.T @ middle) == pytest.approx(half, abs=1e-6)
        assert rotation_angle(middle.T @ end) == pytest.approx(half, abs=1e-6)
    assert resample(path, 1).allclose(CameraPath(path.intrinsics[:1], path.extrinsics[:1], path.timestamps[:1]))
    assert resample(resample(path, 1), 3).frame_count == 3
    with pytest.raises(ValueError, match=r"frames \(0\)"):
        resample(path, 0)


# --- pose text ----------------------------------------------------------------------------------------------------

REALESTATE_TEXT = """https://www.youtube.com/watch?v=abc
45979000 0.474812461 0.844111024 0.500000000 0.500000000 0.000000000 0.000000000 0.998669863 -0.002015155 \
0.051514093 -0.008424006 0.002096937 0.999996185 -0.001534165 0.001049617 -0.051510811 0.001640080 0.998670697 \
-0.099226631
46012367 0.474812461 0.844111024 0.500000000 0.500000000 0.000000000 0.000000000 0.998542428 -0.002056745 \
0.053929679 -0.010027516 0.002150016 0.999996066 -0.001671163 0.001235186 -0.053925994 0.001784730 0.998543143 \
-0.103986852
"""


def test_parse_realestate10k_text() -> None:
    path = parse_pose_text(REALESTATE_TEXT)
    assert path.frame_count == 2
    assert path.timestamps.tolist() == [45979000.0, 46012367.0]
    assert path.intrinsics[0].tolist() == [0.474812461, 0.844111024, 0.5, 0.5]
    assert path.extrinsics[1, 0].tolist() == [0.998542428, -0.002056745, 0.053929679, -0.010027516]
    assert path.extrinsics[1, 3].tolist() == [0.0, 0.0, 0.0, 1.0]


@pytest.mark.parametrize("timestamps", [True, False])
def test_write_then_parse_is_exact(timestamps: bool) -> None:
    path = random_path(5, seed=4, timestamps=timestamps)
    text = format_pose_text(path, first_line="https://example.com/clip")
    assert text.splitlines()[0] == "https://example.com/clip"
    parsed = parse_pose_text(text)
    assert np.array_equal(parsed.extrinsics, path.extrinsics) and np.array_equal(parsed.intrinsics, path.intrinsics)
    expected_times = path.timestamps if timestamps else np.arange(5.0)
    assert np.array_equal(parsed.timestamps, expected_times)
    assert parse_pose_text(format_pose_text(parse_pose_text(REALESTATE_TEXT))).allclose(
        parse_pose_text(REALESTATE_TEXT), atol=0
    )


def test_written_timestamps_are_integers() -> None:
    line = format_pose_text(random_path(1, seed=5)).splitlines()[1]
    assert line.split()[0].isdigit()


def pose_line(rotation: np.ndarray | None = None, fields: list[str] | None = None) -> str:
    matrix = np.column_stack((np.eye(3) if rotation is None else rotation, [0.1, 0.2, 0.3]))
    default = ["0", "0.5", "0.9", "0.5", "0.5", "0", "0", *(repr(float(value)) for value in matrix.reshape(-1))]
    return " ".join(fields if fields is not None else default)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (pose_line(fields=["0"] * 18), r"line 3: expected 19 numbers .* found 18"),
        (pose_line(fields=["0", "0.5", "abc", *["0"] * 16]), r"line 3: field 3 \('abc'\) is not a number"),
        (pose_line(fields=["0", "0.5", "nan", *["0"] * 16]), r"line 3: field 3 \('nan'\) is not a finite number"),
        (pose_line(fields=["0", "0", "0.9", *["0"] * 16]), "line 3: focal lengths fx and fy must be positive"),
        (pose_line(rotation=np.diag([1.0, 1.0, 1.01])), r"line 3: the rotation part .* not orthonormal .* 0.0201"),
        (pose_line(rotation=np.diag([1.0, 1.0, -1.0])), "line 3: .* reflection"),
    ],
)
def test_parse_names_the_bad_line(line: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_pose_text(f"url\n{pose_line()}\n{line}\n")


def test_parse_accepts_tiny_rounding_and_skips_blank_lines() -> None:
    rounded = np.round(axis_rotations(1, np.array([0.3]))[0], 6)
    path = parse_pose_text(f"url\n\n{pose_line(rounded)}\n\n")
    assert path.frame_count == 1


def test_parse_needs_pose_lines() -> None:
    with pytest.raises(ValueError, match="no pose lines"):
        parse_pose_text("https://www.youtube.com/watch?v=abc\n")
