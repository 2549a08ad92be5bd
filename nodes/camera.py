"""Camera-motion nodes: build, load, save, join and resample camera paths (``CAMERA_PATH``), and turn them into
conditioning: per-pixel Plücker embeddings (``CAMERA_PLUCKER``) or a training-free guide video warped from a frame.

Pose files are RealEstate10K / CameraCtrl text (``models.control.camera``), read from the input folder and written
to the output folder.
"""

from __future__ import annotations

from typing import Any

import torch

from graph.context import current_context
from models.control import camera as cameras
from models.control.plucker import plucker_embedding
from models.control.warp_guide import warp_guide
from nodes.errors import named_errors
from nodes.folders import FOLDERS_SERVICE, FolderBound, Folders
from nodes.image import MAX_RESOLUTION
from nodes.io import claim_numbered_file, file_fingerprint, resolve_save_path

CATEGORY = "conditioning/camera"
CAMERA_PATH = "CAMERA_PATH"
CAMERA_PLUCKER = "CAMERA_PLUCKER"
POSE_EXTENSIONS = frozenset({"txt"})
NO_PRESET = "none"
DEPTH_MODES = ("disparity", "depth")
MAX_PATH_FRAMES = 4096
MIN_DISPARITY = 1e-3  # disparity values are clamped here, so the farthest depth is 1000 near-object distances
DEFAULT_WIDTH, DEFAULT_HEIGHT = 832, 480


def _camera_path(node: str, name: str, value: Any) -> cameras.CameraPath:
    if not isinstance(value, cameras.CameraPath):
        raise ValueError(f"{node}: {name} must be a {CAMERA_PATH}, got {type(value).__name__}")
    return value


def _check_at_least(node: str, name: str, value: float, low: float) -> None:
    if not value >= low:
        raise ValueError(f"{node}: {name} ({value}) must be at least {low}")


def _check_choice(node: str, name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{node}: {name} {value!r} is not one of {', '.join(choices)}")


def _image_frame(node: str, name: str, value: Any) -> torch.Tensor:
    """The first frame ``[H, W, C]`` of an IMAGE batch."""
    if not isinstance(value, torch.Tensor) or value.ndim != 4 or 0 in value.shape:
        shape = list(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise ValueError(f"{node}: {name} must be an IMAGE [frames, height, width, channels], got {shape}")
    return value[0]


def _frames_option(default: int, tooltip: str) -> tuple[str, dict[str, Any]]:
    return ("INT", {"default": default, "min": 1, "max": MAX_PATH_FRAMES, "step": 1, "tooltip": tooltip})


def _size_option(default: int, tooltip: str) -> tuple[str, dict[str, Any]]:
    return ("INT", {"default": default, "min": 1, "max": MAX_RESOLUTION, "step": 1, "tooltip": tooltip})


def _speed_option(tooltip: str) -> tuple[str, dict[str, Any]]:
    return ("FLOAT", {"default": 1.0, "min": 0.0, "max": 100.0, "step": 0.05, "tooltip": tooltip})


def _path_input(tooltip: str = "The camera path.") -> tuple[str, dict[str, Any]]:
    return (CAMERA_PATH, {"tooltip": tooltip})


class CameraPath:
    """A preset camera move, optionally combined frame by frame with a second one (e.g. dolly in while panning)."""

    FUNCTION = "make_path"
    CATEGORY = CATEGORY
    RETURN_TYPES = (CAMERA_PATH,)
    RETURN_NAMES = ("camera_path",)
    DESCRIPTION = (
        "Builds a camera path from a preset: pan, tilt, zoom, dolly, orbit or roll. At speed 1 a pan, tilt, roll or "
        f"orbit turns {cameras.DEGREES_PER_FRAME} degrees per frame, a dolly moves {cameras.UNITS_PER_FRAME} scene "
        f"units (about {cameras.UNITS_PER_FRAME:.0%} of the distance to the nearest object) and a zoom grows the "
        f"focal length {cameras.ZOOM_PER_FRAME:.0%} per frame. A second preset runs at the same time, in the moved "
        "camera's own axes."
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "preset": (list(cameras.PRESETS), {"default": "pan_left", "tooltip": "The camera move."}),
                "frames": _frames_option(81, "Frames of the path; match the video's frame count."),
                "speed": _speed_option("Multiplies the preset's per-frame rate (see the description)."),
                "easing": (
                    list(cameras.EASINGS),
                    {"default": "linear", "tooltip": "How the move speeds up and slows down; the total is the same."},
                ),
            },
            "optional": {
                "second_preset": (
                    [NO_PRESET, *cameras.PRESETS],
                    {"default": NO_PRESET, "tooltip": "A second move made at the same time, or none."},
                ),
                "second_speed": _speed_option("Speed of the second move."),
                "width": _size_option(DEFAULT_WIDTH, "Video width: with height, sets the intrinsics' aspect ratio."),
                "height": _size_option(DEFAULT_HEIGHT, "Video height: with width, sets the intrinsics' aspect ratio."),
                "field_of_view": (
                    "FLOAT",
                    {
                        "default": cameras.DEFAULT_FIELD_OF_VIEW,
                        "min": 1.0,
                        "max": 170.0,
                        "step": 1.0,
                        "tooltip": "Horizontal field of view of the camera in degrees.",
                    },
                ),
                "orbit_distance": (
                    "FLOAT",
                    {
                        "default": cameras.ORBIT_DISTANCE,
                        "min": 0.01,
                        "max": 1000.0,
                        "step": 0.1,
                        "tooltip": "How far ahead the point an orbit circles lies, in scene units.",
                    },
                ),
            },
        }

    def make_path(
        self,
        preset: str,
        frames: int,
        speed: float,
        easing: str,
        second_preset: str = NO_PRESET,
        second_speed: float = 1.0,
        width: int = DEFAULT_WIDTH,
        height: int = DEFAULT_HEIGHT,
        field_of_view: float = cameras.DEFAULT_FIELD_OF_VIEW,
        orbit_distance: float = cameras.ORBIT_DISTANCE,
    ) -> tuple[cameras.CameraPath]:
        node = "CameraPath"
        _check_choice(node, "preset", preset, cameras.PRESETS)
        _check_choice(node, "second_preset", second_preset, (NO_PRESET, *cameras.PRESETS))
        _check_choice(node, "easing", easing, cameras.EASINGS)
        for name, value, low in (("frames", frames, 1), ("speed", speed, 0), ("second_speed", second_speed, 0)):
            _check_at_least(node, name, value, low)
        for name, value in (("width", width), ("height", height)):
            _check_at_least(node, name, value, 1)
        options = {"aspect_ratio": width / height, "field_of_view": field_of_view, "orbit_distance": orbit_distance}
        with named_errors(node):
            path = cameras.preset_path(preset, frames, speed, easing, **options)
            if second_preset != NO_PRESET:
                path = cameras.compose(
                    path, cameras.preset_path(second_preset, frames, second_speed, easing, **options)
                )
        return (path,)


class LoadCameraPath(FolderBound):
    """A camera path from a RealEstate10K / CameraCtrl pose text file in the input folder."""

    FUNCTION = "load_path"
    CATEGORY = CATEGORY
    RETURN_TYPES = (CAMERA_PATH,)
    RETURN_NAMES = ("camera_path",)
    DESCRIPTION = (
        "Loads a camera path from a RealEstate10K / CameraCtrl pose file (.txt in the input folder): a first line "
        "(usually the video URL), then per frame 'timestamp fx fy cx cy 0 0' and a row-major 3x4 world-to-camera "
        "matrix."
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "file": (
                    sorted(cls.input_choices(POSE_EXTENSIONS)),
                    {"tooltip": "A .txt pose file in the input folder (subfolders show as sub/name.txt)."},
                )
            }
        }

    @classmethod
    def IS_CHANGED(cls, file: str) -> str:
        """The file's content hash, so editing the file re-runs the node."""
        if cls.FOLDERS is None:
            return file
        try:
            return file_fingerprint(cls.FOLDERS.resolve_annotated(file, "file"))
        except (OSError, ValueError):
            return file

    def load_path(self, file: str) -> tuple[cameras.CameraPath]:
        folders: Folders = current_context().service(FOLDERS_SERVICE)
        with named_errors("LoadCameraPath"):
            path = folders.resolve_annotated(file, "file")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as error:
            raise ValueError(f"LoadCameraPath: file {file!r} is not UTF-8 text ({error.reason})") from error
        try:
            return (cameras.parse_pose_text(text),)
        except ValueError as error:
            raise ValueError(f"LoadCameraPath: file {file!r}: {error}") from error


class SaveCameraPath:
    """Writes a camera path as a RealEstate10K / CameraCtrl pose text file in the output folder."""

    FUNCTION = "save_path"
    CATEGORY = CATEGORY
    RETURN_TYPES = ()
    OUTPUT_NODE = True
    DESCRIPTION = (
        "Saves the camera path as a numbered RealEstate10K / CameraCtrl pose .txt file in the output folder, with "
        "full precision so loading it gives back the same path."
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "camera_path": _path_input("The camera path to save."),
                "filename_prefix": (
                    "STRING",
                    {"default": "camera/path", "tooltip": "The start of the file name; may include a subfolder."},
                ),
            }
        }

    def save_path(self, camera_path: Any, filename_prefix: str) -> dict[str, Any]:
        path = _camera_path("SaveCameraPath", "camera_path", camera_path)
        folders: Folders = current_context().service(FOLDERS_SERVICE)
        with named_errors("SaveCameraPath"):
            target = resolve_save_path(filename_prefix, folders.output_dir)
        file, _counter = claim_numbered_file(target, target.counter, "txt")
        file.write_text(cameras.format_pose_text(path), encoding="utf-8")
        entry = {"filename": file.name, "subfolder": target.subfolder, "type": "output"}
        return {"ui": {"camera_paths": [entry]}, "result": ()}


class ResampleCameraPath:
    """The same camera path over another number of frames (rotations slerped, positions interpolated linearly)."""

    FUNCTION = "resample"
    CATEGORY = CATEGORY
    RETURN_TYPES = (CAMERA_PATH,)
    RETURN_NAMES = ("camera_path",)
    DESCRIPTION = (
        "Stretches or squeezes a camera path to a new frame count, keeping its first and last poses: positions, "
        "intrinsics and timestamps are interpolated linearly, rotations along the shortest arc (slerp)."
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "camera_path": _path_input(),
                "frames": _frames_option(81, "The new frame count; match the video's."),
            }
        }

    def resample(self, camera_path: Any, frames: int) -> tuple[cameras.CameraPath]:
        path = _camera_path("ResampleCameraPath", "camera_path", camera_path)
        _check_at_least("ResampleCameraPath", "frames", frames, 1)
        return (cameras.resample(path, frames),)


class CameraPathConcat:
    """Two camera paths one after the other, the second continuing from where the first ends."""

    FUNCTION = "concatenate"
    CATEGORY = CATEGORY
    RETURN_TYPES = (CAMERA_PATH,)
    RETURN_NAMES = ("camera_path",)
    DESCRIPTION = (
        "Joins two camera paths in time: the second move starts from the first one's last pose, in that camera's "
        "axes. The second path's first frame repeats that pose and is dropped, so the result has one frame fewer "
        "than the two together."
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "camera_path_a": _path_input("The path that comes first."),
                "camera_path_b": _path_input("The path that continues from the end of the first."),
            }
        }

    def concatenate(self, camera_path_a: Any, camera_path_b: Any) -> tuple[cameras.CameraPath]:
        first = _camera_path("CameraPathConcat", "camera_path_a", camera_path_a)
        second = _camera_path("CameraPathConcat", "camera_path_b", camera_path_b)
        return (cameras.concatenate(first, second),)


class CameraPluckerEmbedding:
    """Per-pixel Plücker ray coordinates of a camera path, the camera conditioning of CameraCtrl-style models."""

    FUNCTION = "embed"
    CATEGORY = CATEGORY
    RETURN_TYPES = (CAMERA_PLUCKER,)
    RETURN_NAMES = ("plucker",)
    DESCRIPTION = (
        "Turns a camera path into per-pixel Plücker embeddings [frames, 6, height, width]: for each pixel's ray, "
        "the moment o x d then the unit direction d, with cameras taken relative to the first frame."
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "camera_path": _path_input(),
                "width": _size_option(DEFAULT_WIDTH, "Width of the embedding in pixels (the video's width)."),
                "height": _size_option(DEFAULT_HEIGHT, "Height of the embedding in pixels (the video's height)."),
            }
        }

    def embed(self, camera_path: Any, width: int, height: int) -> tuple[torch.Tensor]:
        path = _camera_path("CameraPluckerEmbedding", "camera_path", camera_path)
        for name, value in (("width", width), ("height", height)):
            _check_at_least("CameraPluckerEmbedding", name, value, 1)
        return (plucker_embedding(path, width, height),)


def _depth_from_image(node: str, depth_image: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    """Camera depth ``[H, W]`` from the first channel of an IMAGE's first frame.

    ``disparity`` (near is bright, as depth estimators show it): depth = 1 / value, values clamped to
    ``MIN_DISPARITY`` so the nearest white pixel is 1 unit away. ``depth`` (near is dark): the value is the depth
    and must be positive.
    """
    values = _image_frame(node, "depth", depth_image)[..., 0].to(torch.float64)
    if tuple(values.shape) != size:
        raise ValueError(
            f"{node}: depth is {values.shape[1]}x{values.shape[0]} but image is {size[1]}x{size[0]} "
            "(width x height); resize one to match"
        )
    if mode == "disparity":
        return 1.0 / values.clamp(min=MIN_DISPARITY)
    if not (values > 0).all():
        raise ValueError(f"{node}: depth has values <= 0; in 'depth' mode every pixel needs a positive distance")
    return values


class CameraWarpGuide:
    """A guide video for camera control without training: the first frame warped along the camera path."""

    FUNCTION = "guide"
    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE", "MASK")
    RETURN_NAMES = ("guide", "invalid_mask")
    DESCRIPTION = (
        "Warps an image along a camera path into a guide video, plus a mask of the pixels the image cannot show "
        "(1 = unknown, to be generated). Without depth only rotation and zoom move the picture; with a depth map, "
        "dolly, orbit and parallax do too."
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "image": ("IMAGE", {"tooltip": "The first frame (the first image of the batch is used)."}),
                "camera_path": _path_input("The camera path, starting at this image's view."),
            },
            "optional": {
                "depth": ("IMAGE", {"tooltip": "A depth map of the image, same size (its first channel is used)."}),
                "depth_mode": (
                    list(DEPTH_MODES),
                    {
                        "default": "disparity",
                        "tooltip": "disparity: near is bright (depth estimator output); depth: near is dark.",
                    },
                ),
            },
        }

    def guide(
        self, image: Any, camera_path: Any, depth: Any = None, depth_mode: str = "disparity"
    ) -> tuple[torch.Tensor, torch.Tensor]:
        node = "CameraWarpGuide"
        first = _image_frame(node, "image", image)
        path = _camera_path(node, "camera_path", camera_path)
        _check_choice(node, "depth_mode", depth_mode, DEPTH_MODES)
        depth_map = None if depth is None else _depth_from_image(node, depth, tuple(first.shape[:2]), depth_mode)
        with named_errors(node):
            return warp_guide(first, path, depth_map)


NODE_CLASS_MAPPINGS = {
    "CameraPath": CameraPath,
    "LoadCameraPath": LoadCameraPath,
    "SaveCameraPath": SaveCameraPath,
    "ResampleCameraPath": ResampleCameraPath,
    "CameraPathConcat": CameraPathConcat,
    "CameraPluckerEmbedding": CameraPluckerEmbedding,
    "CameraWarpGuide": CameraWarpGuide,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "CameraPath": "Camera Path",
    "LoadCameraPath": "Load Camera Path",
    "SaveCameraPath": "Save Camera Path",
    "ResampleCameraPath": "Resample Camera Path",
    "CameraPathConcat": "Concatenate Camera Paths",
    "CameraPluckerEmbedding": "Camera Plücker Embedding",
    "CameraWarpGuide": "Camera Warp Guide",
}
