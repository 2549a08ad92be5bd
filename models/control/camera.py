"""Camera paths for camera-controlled video generation: per-frame intrinsics and world-to-camera extrinsics.

Conventions are those of RealEstate10K and CameraCtrl, so their pose files load unchanged:

- Camera axes follow OpenCV: x to the right, y down, z forward along the optical axis.
- Intrinsics ``[F, 4]`` are ``(fx, fy, cx, cy)`` with ``fx`` and ``cx`` divided by the image width and ``fy`` and
  ``cy`` by its height, so one path serves any resolution (square pixels need ``fy = fx * width / height``).
- Extrinsics ``[F, 4, 4]`` are float64 numpy world-to-camera matrices: ``x_camera = R @ x_world + t``, bottom row
  ``0 0 0 1``. The camera-to-world pose is their inverse; its translation is the camera centre.
- Timestamps, when known, are one number per frame (RealEstate10K uses microseconds).

Presets move the camera from the identity pose. Speeds are per frame at ``speed`` 1, on average over the clip (the
easing redistributes the same total): pan, tilt, roll and orbit turn ``DEGREES_PER_FRAME`` degrees, dolly moves
``UNITS_PER_FRAME`` scene units (the orbit target sits ``ORBIT_DISTANCE`` units ahead by default), zoom multiplies
the focal length by ``1 + ZOOM_PER_FRAME``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

EASINGS = ("linear", "ease_in", "ease_out", "ease_in_out")
# preset name -> (kind of motion, direction sign); signs follow the OpenCV axes above
PRESET_MOTIONS: dict[str, tuple[str, int]] = {
    "static": ("static", 0),
    "pan_left": ("yaw", -1),
    "pan_right": ("yaw", 1),
    "tilt_up": ("pitch", 1),
    "tilt_down": ("pitch", -1),
    "zoom_in": ("zoom", 1),
    "zoom_out": ("zoom", -1),
    "dolly_in": ("dolly", 1),
    "dolly_out": ("dolly", -1),
    "orbit_left": ("orbit", 1),
    "orbit_right": ("orbit", -1),
    "roll_clockwise": ("roll", 1),
    "roll_anticlockwise": ("roll", -1),
}
PRESETS = tuple(PRESET_MOTIONS)
DEGREES_PER_FRAME = 0.5
UNITS_PER_FRAME = 0.01
ZOOM_PER_FRAME = 0.01
ORBIT_DISTANCE = 1.0
DEFAULT_FIELD_OF_VIEW = 60.0  # horizontal, degrees
DEFAULT_ASPECT_RATIO = 832 / 480  # width / height of Wan's 480p video
ORTHONORMAL_TOLERANCE = 1e-3  # largest |R Rᵀ - I| entry accepted in a pose file
POSE_FIELDS = 19  # timestamp, fx fy cx cy, two zeros, 12 matrix entries
_BOTTOM_ROW = np.array([0.0, 0.0, 0.0, 1.0])
_BOTTOM_ROW_TOLERANCE = 1e-9


def _frozen(values: Any, dtype: type = np.float64) -> np.ndarray:
    """A read-only float64 copy, so a path cannot change after it is made."""
    array = np.array(values, dtype=dtype, copy=True)
    array.setflags(write=False)
    return array


@dataclass(frozen=True, eq=False)
class CameraPath:
    """A camera's intrinsics and world-to-camera extrinsics for each frame (see the module docstring)."""

    intrinsics: np.ndarray
    extrinsics: np.ndarray
    timestamps: np.ndarray | None = None

    def __post_init__(self) -> None:
        intrinsics, extrinsics = _frozen(self.intrinsics), _frozen(self.extrinsics)
        frames = intrinsics.shape[0] if intrinsics.ndim == 2 else 0
        if intrinsics.shape != (frames, 4) or frames == 0:
            raise ValueError(f"intrinsics must have shape [frames >= 1, 4], got {list(intrinsics.shape)}")
        if extrinsics.shape != (frames, 4, 4):
            raise ValueError(
                f"extrinsics must have shape [{frames}, 4, 4] (one per frame), got {list(extrinsics.shape)}"
            )
        if not (np.isfinite(intrinsics).all() and np.isfinite(extrinsics).all()):
            raise ValueError("intrinsics and extrinsics must be finite numbers")
        if (intrinsics[:, :2] <= 0).any():
            raise ValueError("focal lengths fx and fy must be positive")
        if np.abs(extrinsics[:, 3] - _BOTTOM_ROW).max() > _BOTTOM_ROW_TOLERANCE:
            raise ValueError("extrinsics must be 4x4 matrices with bottom row 0 0 0 1")
        object.__setattr__(self, "intrinsics", intrinsics)
        object.__setattr__(self, "extrinsics", extrinsics)
        if self.timestamps is not None:
            timestamps = _frozen(self.timestamps)
            if timestamps.shape != (frames,) or not np.isfinite(timestamps).all():
                raise ValueError(f"timestamps must be {frames} finite numbers, got shape {list(timestamps.shape)}")
            object.__setattr__(self, "timestamps", timestamps)

    @property
    def frame_count(self) -> int:
        return self.intrinsics.shape[0]

    def camera_to_world(self) -> np.ndarray:
        """``[F, 4, 4]`` poses: the inverse of the extrinsics."""
        return invert_rigid(self.extrinsics)

    def relative_extrinsics(self) -> np.ndarray:
        """``[F, 4, 4]`` maps from the first camera's coordinates to each camera's (``E_i E_0^-1``; first = I)."""
        return self.extrinsics @ invert_rigid(self.extrinsics[:1])

    def relative_poses(self) -> np.ndarray:
        """``[F, 4, 4]`` camera-to-world poses in the first camera's coordinates (``E_0 E_i^-1``; first = I)."""
        return self.extrinsics[:1] @ invert_rigid(self.extrinsics)

    def pixel_intrinsics(self, width: int, height: int) -> np.ndarray:
        """``[F, 3, 3]`` calibration matrices K in pixels for a ``width`` x ``height`` image."""
        fx, fy, cx, cy = self.intrinsics.T
        matrices = np.zeros((self.frame_count, 3, 3))
        matrices[:, 0, 0], matrices[:, 1, 1] = fx * width, fy * height
        matrices[:, 0, 2], matrices[:, 1, 2] = cx * width, cy * height
        matrices[:, 2, 2] = 1.0
        return matrices

    def allclose(self, other: CameraPath, atol: float = 1e-9) -> bool:
        """Same frame count, and intrinsics, extrinsics and timestamps (or their absence) equal within ``atol``."""
        if self.frame_count != other.frame_count or (self.timestamps is None) != (other.timestamps is None):
            return False
        same_times = self.timestamps is None or np.allclose(self.timestamps, other.timestamps, rtol=0, atol=atol)
        return (
            same_times
            and np.allclose(self.intrinsics, other.intrinsics, rtol=0, atol=atol)
            and np.allclose(self.extrinsics, other.extrinsics, rtol=0, atol=atol)
        )


# --- rigid transforms and rotations -----------------------------------------------------------------------------


def invert_rigid(transforms: np.ndarray) -> np.ndarray:
    """Inverses of ``[..., 4, 4]`` rotation-plus-translation matrices, exactly: ``[Rᵀ | -Rᵀ t]``."""
    rotation_t = np.swapaxes(transforms[..., :3, :3], -1, -2)
    inverse = np.zeros_like(transforms)
    inverse[..., :3, :3] = rotation_t
    inverse[..., :3, 3] = -(rotation_t @ transforms[..., :3, 3:4])[..., 0]
    inverse[..., 3, 3] = 1.0
    return inverse


def extrinsics_from_poses(rotations: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """World-to-camera matrices ``[F, 4, 4]`` of cameras with camera-to-world ``rotations`` at ``centres``."""
    poses = np.zeros((rotations.shape[0], 4, 4))
    poses[:, :3, :3], poses[:, :3, 3], poses[:, 3, 3] = rotations, centres, 1.0
    return invert_rigid(poses)


def axis_rotations(axis: int, angles: np.ndarray) -> np.ndarray:
    """``[F, 3, 3]`` right-handed rotations by ``angles`` (radians) about coordinate ``axis`` (0 x, 1 y, 2 z)."""
    first, second = [index for index in range(3) if index != axis]
    if axis == 1:  # keep right-handedness: about y the plane is (z, x)
        first, second = second, first
    rotations = np.zeros((len(angles), 3, 3))
    rotations[:, axis, axis] = 1.0
    rotations[:, first, first] = rotations[:, second, second] = np.cos(angles)
    rotations[:, first, second], rotations[:, second, first] = -np.sin(angles), np.sin(angles)
    return rotations


def quaternions_from_rotations(rotations: np.ndarray) -> np.ndarray:
    """Unit quaternions ``[F, 4]`` (w, x, y, z) of rotation matrices, choosing the best-conditioned formula per row."""
    quaternions = np.zeros((rotations.shape[0], 4))
    for index, matrix in enumerate(rotations):
        trace = np.trace(matrix)
        largest = int(np.argmax(np.diagonal(matrix)))
        if trace > matrix[largest, largest]:
            w = math.sqrt(1.0 + trace) / 2
            vector = np.array([matrix[2, 1] - matrix[1, 2], matrix[0, 2] - matrix[2, 0], matrix[1, 0] - matrix[0, 1]])
            quaternions[index] = (w, *(vector / (4 * w)))
        else:
            i, j, k = largest, (largest + 1) % 3, (largest + 2) % 3
            component = math.sqrt(1.0 + matrix[i, i] - matrix[j, j] - matrix[k, k]) / 2
            quaternion = np.zeros(4)
            quaternion[0] = (matrix[k, j] - matrix[j, k]) / (4 * component)
            quaternion[1 + i] = component
            quaternion[1 + j] = (matrix[j, i] + matrix[i, j]) / (4 * component)
            quaternion[1 + k] = (matrix[k, i] + matrix[i, k]) / (4 * component)
            quaternions[index] = quaternion
    return quaternions / np.linalg.norm(quaternions, axis=1, keepdims=True)


def rotations_from_quaternions(quaternions: np.ndarray) -> np.ndarray:
    """Rotation matrices ``[F, 3, 3]`` of quaternions ``[F, 4]`` (w, x, y, z), normalised first."""
    w, x, y, z = (quaternions / np.linalg.norm(quaternions, axis=1, keepdims=True)).T
    return np.stack(
        (
            np.stack((1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)), axis=-1),
            np.stack((2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)), axis=-1),
            np.stack((2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)), axis=-1),
        ),
        axis=1,
    )


def slerp(start: np.ndarray, end: np.ndarray, fractions: np.ndarray) -> np.ndarray:
    """Spherical interpolation of unit quaternions ``[F, 4]`` along the shorter arc, ``fractions`` ``[F]`` in 0..1."""
    cosine = np.sum(start * end, axis=1)
    end = np.where(cosine[:, None] < 0, -end, end)
    cosine = np.abs(cosine).clip(max=1.0)
    angle = np.arccos(cosine)
    sine = np.sin(angle)
    nearly_equal = sine < 1e-12
    safe_sine = np.where(nearly_equal, 1.0, sine)
    start_weight = np.where(nearly_equal, 1 - fractions, np.sin((1 - fractions) * angle) / safe_sine)
    end_weight = np.where(nearly_equal, fractions, np.sin(fractions * angle) / safe_sine)
    blended = start_weight[:, None] * start + end_weight[:, None] * end
    return blended / np.linalg.norm(blended, axis=1, keepdims=True)


# --- presets ----------------------------------------------------------------------------------------------------


def ease(easing: str, progress: np.ndarray) -> np.ndarray:
    """Eased progress: a smooth monotone map of 0..1 onto 0..1 (sine curves: slow start, slow end, or both)."""
    if easing == "linear":
        return progress.copy()
    if easing == "ease_in":
        return 1 - np.cos(progress * math.pi / 2)
    if easing == "ease_out":
        return np.sin(progress * math.pi / 2)
    if easing == "ease_in_out":
        return (1 - np.cos(progress * math.pi)) / 2
    raise ValueError(f"easing {easing!r} is not one of {', '.join(EASINGS)}")


def default_intrinsics(
    frames: int, aspect_ratio: float = DEFAULT_ASPECT_RATIO, field_of_view: float = DEFAULT_FIELD_OF_VIEW
) -> np.ndarray:
    """``[frames, 4]`` centred intrinsics of square pixels for a horizontal ``field_of_view`` in degrees."""
    if not 0 < field_of_view < 180:
        raise ValueError(f"field_of_view ({field_of_view}) must be between 0 and 180 degrees")
    if not aspect_ratio > 0:
        raise ValueError(f"aspect_ratio ({aspect_ratio}) must be positive")
    fx = 0.5 / math.tan(math.radians(field_of_view) / 2)
    return np.tile([fx, fx * aspect_ratio, 0.5, 0.5], (frames, 1))


def _eased_progress(frames: int, easing: str) -> np.ndarray:
    """Eased progress per frame: 0 at the first frame, 1 at the last (a single frame stays at 0)."""
    return ease(easing, np.arange(frames) / max(frames - 1, 1))


def preset_path(
    preset: str,
    frames: int,
    speed: float = 1.0,
    easing: str = "linear",
    aspect_ratio: float = DEFAULT_ASPECT_RATIO,
    field_of_view: float = DEFAULT_FIELD_OF_VIEW,
    orbit_distance: float = ORBIT_DISTANCE,
) -> CameraPath:
    """A preset move starting at the identity pose; ``speed`` scales the per-frame rates of the module docstring.

    Pan left/right yaws, tilt up/down pitches, roll turns about the optical axis (clockwise as seen from behind the
    camera, so the picture turns anticlockwise), zoom scales the focal length, dolly moves along the optical axis,
    orbit circles a point ``orbit_distance`` ahead, keeping it centred (orbit left moves the camera to the left).
    """
    if preset not in PRESET_MOTIONS:
        raise ValueError(f"preset {preset!r} is not one of {', '.join(PRESETS)}")
    if frames < 1:
        raise ValueError(f"frames ({frames}) must be at least 1")
    if not (math.isfinite(speed) and speed >= 0):
        raise ValueError(f"speed ({speed}) must be a finite number >= 0")
    if not (math.isfinite(orbit_distance) and orbit_distance > 0):
        raise ValueError(f"orbit_distance ({orbit_distance}) must be positive")
    kind, sign = PRESET_MOTIONS[preset]
    steps = sign * speed * (frames - 1) * _eased_progress(frames, easing)
    intrinsics = default_intrinsics(frames, aspect_ratio, field_of_view)
    rotations = np.tile(np.eye(3), (frames, 1, 1))
    centres = np.zeros((frames, 3))
    angles = np.radians(steps * DEGREES_PER_FRAME)
    if kind in ("yaw", "pitch", "roll"):
        rotations = axis_rotations({"pitch": 0, "yaw": 1, "roll": 2}[kind], angles)
    elif kind == "zoom":
        intrinsics[:, :2] *= ((1 + ZOOM_PER_FRAME) ** steps)[:, None]
    elif kind == "dolly":
        centres[:, 2] = steps * UNITS_PER_FRAME
    elif kind == "orbit":
        rotations = axis_rotations(1, angles)
        target = np.array([0.0, 0.0, orbit_distance])
        centres = target - rotations @ target
    return CameraPath(intrinsics, extrinsics_from_poses(rotations, centres))


# --- combining and resampling -----------------------------------------------------------------------------------


def _moved(base_extrinsics: np.ndarray, base_intrinsics: np.ndarray, motion: CameraPath) -> tuple[np.ndarray, ...]:
    """``motion``'s camera moves (relative to its first frame) applied to cameras ``base`` (broadcast ``[F, ...]``).

    The move is expressed in the base camera's own axes: ``E = (E_m,i E_m,0^-1) E_base``; focal lengths scale by
    the motion's zoom and the principal point shifts by its change.
    """
    extrinsics = motion.relative_extrinsics() @ base_extrinsics
    intrinsics = np.array(np.broadcast_to(base_intrinsics, motion.intrinsics.shape))
    intrinsics[:, :2] *= motion.intrinsics[:, :2] / motion.intrinsics[:1, :2]
    intrinsics[:, 2:] += motion.intrinsics[:, 2:] - motion.intrinsics[:1, 2:]
    return extrinsics, intrinsics


def compose(first: CameraPath, second: CameraPath) -> CameraPath:
    """Both moves at once: each frame applies ``second``'s relative motion after ``first``'s (in the moved camera's
    axes). Needs equal frame counts; keeps ``first``'s timestamps."""
    if first.frame_count != second.frame_count:
        raise ValueError(
            f"paths to compose need the same frame count, got {first.frame_count} and {second.frame_count}"
        )
    extrinsics, intrinsics = _moved(first.extrinsics, first.intrinsics, second)
    return CameraPath(intrinsics, extrinsics, first.timestamps)


def concatenate(first: CameraPath, second: CameraPath) -> CameraPath:
    """``second``'s motion continuing from ``first``'s last frame. ``second``'s first frame is that same pose, so it
    is dropped: the result has ``F1 + F2 - 1`` frames. Timestamps continue when both paths have them."""
    extrinsics, intrinsics = _moved(first.extrinsics[-1:], first.intrinsics[-1:], second)
    timestamps = None
    if first.timestamps is not None and second.timestamps is not None:
        continued = first.timestamps[-1] + second.timestamps[1:] - second.timestamps[0]
        timestamps = np.concatenate((first.timestamps, continued))
    return CameraPath(
        np.concatenate((first.intrinsics, intrinsics[1:])),
        np.concatenate((first.extrinsics, extrinsics[1:])),
        timestamps,
    )


def resample(path: CameraPath, frames: int) -> CameraPath:
    """``path`` over ``frames`` evenly spaced frames (first and last kept): camera centres, intrinsics and timestamps
    interpolate linearly, rotations by slerp."""
    if frames < 1:
        raise ValueError(f"frames ({frames}) must be at least 1")
    if path.frame_count == 1:
        positions = np.zeros(frames)
    else:
        positions = np.arange(frames) * (path.frame_count - 1) / max(frames - 1, 1)
    lower = np.minimum(np.floor(positions).astype(int), max(path.frame_count - 2, 0))
    upper = np.minimum(lower + 1, path.frame_count - 1)
    fractions = positions - lower

    def blend(values: np.ndarray) -> np.ndarray:
        weights = fractions.reshape(-1, *([1] * (values.ndim - 1)))
        return values[lower] * (1 - weights) + values[upper] * weights

    poses = path.camera_to_world()
    quaternions = quaternions_from_rotations(poses[:, :3, :3])
    rotations = rotations_from_quaternions(slerp(quaternions[lower], quaternions[upper], fractions))
    timestamps = None if path.timestamps is None else blend(path.timestamps)
    return CameraPath(blend(path.intrinsics), extrinsics_from_poses(rotations, blend(poses[:, :3, 3])), timestamps)


# --- RealEstate10K / CameraCtrl pose text -----------------------------------------------------------------------


def _pose_numbers(line: str, line_number: int) -> np.ndarray:
    """The 19 numbers of one pose line; ValueError naming the line and the problem."""
    fields = line.split()
    if len(fields) != POSE_FIELDS:
        raise ValueError(
            f"line {line_number}: expected {POSE_FIELDS} numbers (timestamp fx fy cx cy 0 0, then the 12 entries of "
            f"a row-major 3x4 world-to-camera matrix), found {len(fields)}"
        )
    numbers = []
    for position, field in enumerate(fields, start=1):
        try:
            value = float(field)
        except ValueError:
            raise ValueError(f"line {line_number}: field {position} ({field!r}) is not a number") from None
        if not math.isfinite(value):
            raise ValueError(f"line {line_number}: field {position} ({field!r}) is not a finite number")
        numbers.append(value)
    return np.array(numbers)


def _check_pose(numbers: np.ndarray, line_number: int) -> None:
    """Positive focal lengths and a proper rotation (orthonormal within tolerance, determinant +1)."""
    if (numbers[1:3] <= 0).any():
        raise ValueError(f"line {line_number}: focal lengths fx and fy must be positive, got {numbers[1:3].tolist()}")
    rotation = numbers[7:].reshape(3, 4)[:, :3]
    error = float(np.abs(rotation @ rotation.T - np.eye(3)).max())
    if error > ORTHONORMAL_TOLERANCE:
        raise ValueError(
            f"line {line_number}: the rotation part of the matrix is not orthonormal "
            f"(largest entry of R Rᵀ - I is {error:.3g}, tolerance {ORTHONORMAL_TOLERANCE})"
        )
    if np.linalg.det(rotation) < 0:
        raise ValueError(f"line {line_number}: the rotation part of the matrix is a reflection (determinant -1)")


def parse_pose_text(text: str) -> CameraPath:
    """A path from RealEstate10K / CameraCtrl pose text: a first line (a URL or anything), then per frame
    ``timestamp fx fy cx cy 0 0`` and a row-major 3x4 world-to-camera matrix. Blank lines are skipped."""
    rows = []
    for line_number, line in enumerate(text.splitlines()[1:], start=2):
        if line.strip():
            numbers = _pose_numbers(line, line_number)
            _check_pose(numbers, line_number)
            rows.append(numbers)
    if not rows:
        raise ValueError("no pose lines: expected a first line (a URL or any text), then one line per frame")
    table = np.stack(rows)
    extrinsics = np.tile(np.eye(4), (len(rows), 1, 1))
    extrinsics[:, :3, :] = table[:, 7:].reshape(-1, 3, 4)
    return CameraPath(table[:, 1:5], extrinsics, table[:, 0])


def _number_text(value: float) -> str:
    """Shortest text that parses back to exactly ``value`` (integers without a decimal point, like timestamps)."""
    if value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(value)


def format_pose_text(path: CameraPath, first_line: str = "# reelgraph camera path") -> str:
    """Pose text that ``parse_pose_text`` reads back exactly; frames without timestamps are numbered 0, 1, ..."""
    timestamps = path.timestamps if path.timestamps is not None else np.arange(path.frame_count, dtype=np.float64)
    lines = [" ".join(first_line.splitlines()) or "#"]
    for timestamp, intrinsics, extrinsics in zip(timestamps, path.intrinsics, path.extrinsics, strict=True):
        numbers = [timestamp, *intrinsics, 0.0, 0.0, *extrinsics[:3].reshape(-1)]
        lines.append(" ".join(_number_text(float(number)) for number in numbers))
    return "\n".join(lines) + "\n"
