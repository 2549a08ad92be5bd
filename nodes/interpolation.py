"""Frame interpolation nodes: a loader for the ``frame_interpolation`` folder's models (RIFE, FILM) or the
weights-free classical method, and nodes that make a clip smoother by a multiplier or to a target frame rate, with
no blending across scene cuts. Input names follow ComfyUI-Frame-Interpolation where it has them (``multiplier``,
``clear_cache_after_n_frames``)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from fractions import Fraction
from typing import Any

import torch

from graph.context import ProgressBar, current_context
from graph.spec import MODEL_FOLDER_OPTION
from models.interpolation.base import FrameInterpolator
from models.interpolation.classical import FlowBlendInterpolator
from models.interpolation.rife import SCALE_FACTORS
from models.interpolation.run import check_run_settings, interpolate_clip, interpolate_stream
from models.interpolation.timing import (
    MAX_MULTIPLIER,
    MIN_MULTIPLIER,
    Timeline,
    check_scene_cut_threshold,
    detect_scene_cuts,
    multiplier_timeline,
    scene_cuts,
    streamed_frame_differences,
    target_fps_timeline,
)
from models.memory import MODELS_SERVICE, ModelManager
from nodes.media.streaming import frame_bytes, output_mode_input, streams
from nodes.media.video import Video, VideoFromBatches, VideoFromComponents
from nodes.model_files import ModelFolderBound, resolve_model_file

FOLDER = "frame_interpolation"
CLASSICAL_CHOICE = "classical (no model)"
MODEL_TYPE = "FRAME_INTERPOLATION_MODEL"
CATEGORY = "image/frames"
MAX_FPS = 1000.0
DEFAULT_SCENE_CUT_THRESHOLD = 4.0
STREAM_BATCH = 16
"""Source frames read at a time when streaming (each window makes the output frames up to its last frame)."""

logger = logging.getLogger(__name__)


class FrameInterpolationModelLoader(ModelFolderBound):
    """A frame interpolation model file (its architecture read from its weights), or the classical method."""

    FUNCTION = "load"
    CATEGORY = "loaders"
    RETURN_TYPES = (MODEL_TYPE,)
    RETURN_NAMES = ("interpolation_model",)
    DESCRIPTION = (
        "Loads a frame interpolation model (RIFE, FILM) from the frame_interpolation folder; "
        f"'{CLASSICAL_CHOICE}' blends along classical optical flow and needs no download."
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        choices = [CLASSICAL_CHOICE, *cls.model_choices(FOLDER)]
        tooltip = f"A model file in the {FOLDER} folder, or the classical method (no file, slower and softer)."
        scale = "RIFE: estimate the flow at this multiple of the frames' size (0.5 or 0.25 for 4K; others take 1)."
        ensemble = (
            "RIFE 4.2 to 4.21: also estimate from the swapped pair and average; smoother where motion is ambiguous, "
            "twice the time."
        )
        return {
            "required": {"model_name": (choices, {"tooltip": tooltip, MODEL_FOLDER_OPTION: FOLDER})},
            "optional": {
                "scale_factor": (list(SCALE_FACTORS), {"default": 1.0, "tooltip": scale}),
                "ensemble": ("BOOLEAN", {"default": False, "tooltip": ensemble}),
            },
        }

    def load(self, model_name: str, scale_factor: float = 1.0, ensemble: bool = False) -> tuple[FrameInterpolator]:
        if model_name == CLASSICAL_CHOICE:
            if scale_factor != 1.0 or ensemble:
                raise ValueError(f"'{CLASSICAL_CHOICE}' has no scale_factor nor ensemble (RIFE's); use 1 and off")
            return (FlowBlendInterpolator(),)
        from models.interpolation.loading import load_frame_interpolator

        path = resolve_model_file(FOLDER, model_name, "model_name")
        return (load_frame_interpolator(_manager(), path, scale_factor=float(scale_factor), ensemble=ensemble),)


def _manager() -> ModelManager:
    return current_context().service(MODELS_SERVICE)


def _timing_inputs() -> dict[str, tuple[str, dict[str, Any]]]:
    """The inputs both interpolate nodes share, after the frames and the model."""
    return {
        "multiplier": (
            "INT",
            {
                "default": 2,
                "min": MIN_MULTIPLIER,
                "max": MAX_MULTIPLIER,
                "step": 1,
                "tooltip": "Frames out per frame in: (frames - 1) * multiplier + 1 frames at fps * multiplier. "
                "Ignored when target_fps is set.",
            },
        ),
        "target_fps": (
            "FLOAT",
            {
                "default": 0.0,
                "min": 0.0,
                "max": MAX_FPS,
                "step": 0.001,
                "tooltip": "Resample the clip to this frame rate instead (24 -> 60 keeps every second original); "
                "0 uses multiplier.",
            },
        ),
    }


def _run_inputs() -> dict[str, tuple[str, dict[str, Any]]]:
    """Scene cuts and batching, shared by both interpolate nodes."""
    return {
        "scene_cut_threshold": (
            "FLOAT",
            {
                "default": DEFAULT_SCENE_CUT_THRESHOLD,
                "min": 0.0,
                "max": 100.0,
                "step": 0.1,
                "tooltip": "A pair of frames is a scene cut when it differs this many times more than the frames "
                "around it; frames between a cut repeat the nearer original instead of blending two scenes. "
                "0 turns detection off.",
            },
        ),
        "batch_size": (
            "INT",
            {"default": 1, "min": 1, "max": 256, "step": 1, "tooltip": "Frames made per model call."},
        ),
        "clear_cache_after_n_frames": (
            "INT",
            {
                "default": 10,
                "min": 0,
                "max": 1000,
                "step": 1,
                "tooltip": "Release the device's cached memory after this many made frames (long clips); 0 never.",
            },
        ),
    }


def interpolate_frames(
    node: str,
    frames: torch.Tensor,
    interpolation_model: FrameInterpolator,
    fps: float | Fraction,
    multiplier: int,
    target_fps: float,
    scene_cut_threshold: float,
    batch_size: int,
    clear_cache_after_n_frames: int,
) -> tuple[torch.Tensor, Timeline]:
    """The interpolated frames and their timeline; ValueError naming ``node`` for bad input."""
    if not isinstance(frames, torch.Tensor) or frames.ndim != 4 or frames.shape[0] == 0 or frames.shape[-1] != 3:
        shape = tuple(frames.shape) if isinstance(frames, torch.Tensor) else type(frames).__name__
        raise ValueError(f"{node}: frames must be an IMAGE [frames, height, width, 3] with a frame, got {shape}")
    _check_model(node, interpolation_model)
    timeline = _timeline(node, frames.shape[0], fps, multiplier, target_fps)
    try:
        timeline = timeline.with_scene_cuts(detect_scene_cuts(frames, scene_cut_threshold))
    except ValueError as error:
        raise ValueError(f"{node}: {error}") from error
    bar = ProgressBar(max(1, timeline.made_frames))
    images = interpolate_clip(
        _manager(),
        interpolation_model,
        frames,
        timeline,
        batch_size,
        clear_cache_after_n_frames,
        lambda done, total: bar.update_absolute(done, total),
    )
    return images, timeline


def _check_model(node: str, interpolation_model: object) -> None:
    if not isinstance(interpolation_model, FrameInterpolator):
        raise ValueError(
            f"{node}: interpolation_model must come from FrameInterpolationModelLoader, "
            f"got {type(interpolation_model).__name__}"
        )


def _timeline(node: str, frame_count: int, fps: float | Fraction, multiplier: int, target_fps: float) -> Timeline:
    """The output timeline (before scene cuts); ValueError naming ``node`` for bad settings."""
    try:
        if target_fps > 0:
            return target_fps_timeline(frame_count, float(fps), target_fps)
        return multiplier_timeline(frame_count, float(fps), multiplier)
    except ValueError as error:
        raise ValueError(f"{node}: {error}") from error


class FrameInterpolate:
    """More frames between the frames of a clip, by a multiplier or to a target frame rate."""

    FUNCTION = "interpolate"
    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE", "FLOAT")
    RETURN_NAMES = ("images", "fps")
    DESCRIPTION = (
        "Makes frames between the frames of a clip (smoother motion or a higher frame rate); original frames are "
        "kept exactly and nothing is blended across a scene cut. Outputs the new frame rate."
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "frames": ("IMAGE", {"tooltip": "The clip's frames."}),
                "interpolation_model": (MODEL_TYPE, {"tooltip": "From FrameInterpolationModelLoader."}),
                **_timing_inputs(),
                "fps": (
                    "FLOAT",
                    {
                        "default": 16.0,
                        "min": 0.001,
                        "max": MAX_FPS,
                        "step": 0.001,
                        "tooltip": "The clip's frame rate (Wan makes 16, LTX-Video 24 or 25).",
                    },
                ),
                **_run_inputs(),
            }
        }

    def interpolate(
        self,
        frames: torch.Tensor,
        interpolation_model: FrameInterpolator,
        multiplier: int,
        target_fps: float,
        fps: float,
        scene_cut_threshold: float,
        batch_size: int,
        clear_cache_after_n_frames: int,
    ) -> tuple[torch.Tensor, float]:
        images, timeline = interpolate_frames(
            "FrameInterpolate",
            frames,
            interpolation_model,
            fps,
            multiplier,
            target_fps,
            scene_cut_threshold,
            batch_size,
            clear_cache_after_n_frames,
        )
        return images, timeline.fps


class FrameInterpolateVideo:
    """A VIDEO with frames made between its frames; its audio is kept and its frame rate set."""

    FUNCTION = "interpolate"
    CATEGORY = "image/video"
    RETURN_TYPES = ("VIDEO",)
    RETURN_NAMES = ("video",)
    DESCRIPTION = (
        "Makes a video smoother: frames between its frames by a multiplier or to a target frame rate, original "
        "frames kept exactly, no blending across scene cuts; the audio is kept and the frame rate raised. A clip too "
        "large to hold in RAM is streamed: decoded, interpolated and encoded batch by batch as the next node reads it."
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "video": ("VIDEO", {"tooltip": "The video; its frame rate is read from it."}),
                "interpolation_model": (MODEL_TYPE, {"tooltip": "From FrameInterpolationModelLoader."}),
                **_timing_inputs(),
                **_run_inputs(),
            },
            "optional": {"output": output_mode_input()},
        }

    def interpolate(
        self,
        video: Video,
        interpolation_model: FrameInterpolator,
        multiplier: int,
        target_fps: float,
        scene_cut_threshold: float,
        batch_size: int,
        clear_cache_after_n_frames: int,
        output: str = "auto",
    ) -> tuple[Video]:
        node = "FrameInterpolateVideo"
        if not isinstance(video, Video):
            raise ValueError(f"{node}: video must be a VIDEO, got {type(video).__name__}")
        rate = video.get_frame_rate()
        frame_rate = target_fps if target_fps > 0 else rate * multiplier
        width, height = video.get_dimensions()
        timeline = _timeline(node, video.get_frame_count(), rate, multiplier, target_fps)
        manager = _manager()
        held = frame_bytes(len(timeline.frames) + timeline.source_frames, width, height)  # output and input
        if not streams(node, output, held, manager.probe.ram_available()):
            components = video.get_components()
            images, _ = interpolate_frames(
                node,
                components.images,
                interpolation_model,
                components.frame_rate,
                multiplier,
                target_fps,
                scene_cut_threshold,
                batch_size,
                clear_cache_after_n_frames,
            )
            return (VideoFromComponents(images, frame_rate, components.audio, video.metadata),)
        _check_model(node, interpolation_model)
        try:
            check_scene_cut_threshold(scene_cut_threshold)
            check_run_settings(batch_size, clear_cache_after_n_frames)
        except ValueError as error:
            raise ValueError(f"{node}: {error}") from error
        logger.info(
            "%s: streaming %d frames at %dx%d into the node that reads them", node, len(timeline.frames), width, height
        )
        cuts: list[tuple[int, ...]] = []  # found on the first read, kept for the next

        def interpolated() -> Iterable[torch.Tensor]:
            if not cuts:  # a pass over the clip's differences, only when cuts are looked for
                found = scene_cut_threshold and scene_cuts(
                    streamed_frame_differences(video.frame_batches(STREAM_BATCH)()), scene_cut_threshold
                )
                cuts.append(found or ())
            return interpolate_stream(
                manager,
                interpolation_model,
                video.frame_batches(STREAM_BATCH)(),
                timeline.with_scene_cuts(cuts[0]),
                batch_size,
                clear_cache_after_n_frames,
            )

        size = (width, height)
        streamed = VideoFromBatches(
            node, interpolated, size, len(timeline.frames), frame_rate, video.get_audio(), video.metadata
        )
        return (streamed,)


NODE_CLASS_MAPPINGS = {
    "FrameInterpolationModelLoader": FrameInterpolationModelLoader,
    "FrameInterpolate": FrameInterpolate,
    "FrameInterpolateVideo": FrameInterpolateVideo,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "FrameInterpolationModelLoader": "Load Frame Interpolation Model",
    "FrameInterpolate": "Interpolate Frames (multiplier or target fps)",
    "FrameInterpolateVideo": "Interpolate Video (multiplier or target fps)",
}
