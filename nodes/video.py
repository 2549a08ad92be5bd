"""Video nodes that load and take apart videos: LoadVideo, LoadVideoFrames, CreateVideo, GetVideoComponents."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from graph.context import ProgressBar, current_context
from nodes.folders import FOLDERS_SERVICE, FolderBound, Folders
from nodes.image import MAX_RESOLUTION
from nodes.media.audio import load_audio_if_present
from nodes.media.decode import FrameSelection, load_video_frames, probe_video, selected_time_span
from nodes.media.video import Video, VideoFromComponents, VideoFromFile

VIDEO_EXTENSIONS = frozenset({"mp4", "webm", "mkv", "mov", "m4v", "avi", "gif"})
MAX_FRAMES = 1_000_000


def file_stamp(path: Path) -> str:
    """Size and modification time: enough to notice a replaced video without hashing gigabytes."""
    stat = path.stat()
    return f"{stat.st_size}-{stat.st_mtime_ns}"


class _VideoFileInput(FolderBound):
    """Shared by the loaders: the input folder's videos as choices, re-run when the chosen file changes."""

    @classmethod
    def video_choice(cls) -> tuple[list[str], dict[str, Any]]:
        return (
            cls.input_choices(VIDEO_EXTENSIONS),
            {"video_upload": True, "tooltip": "A video in the input folder; upload to add one."},
        )

    @classmethod
    def stamp(cls, name: str) -> str:
        if cls.FOLDERS is None:
            return name
        try:
            return file_stamp(cls.FOLDERS.resolve_annotated(name, "video"))
        except (OSError, ValueError):
            return name

    @staticmethod
    def resolve(name: str) -> Path:
        folders: Folders = current_context().service(FOLDERS_SERVICE)
        return folders.resolve_annotated(name, "video")


class LoadVideo(_VideoFileInput):
    """Opens a video from the input folder; frames are decoded only when a node asks for them."""

    FUNCTION = "load_video"
    CATEGORY = "image/video"
    RETURN_TYPES = ("VIDEO",)
    DESCRIPTION = "Loads a video file (frames, frame rate and audio) from the input folder."

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"file": cls.video_choice()}}

    @classmethod
    def IS_CHANGED(cls, file: str) -> str:
        return cls.stamp(file)

    def load_video(self, file: str) -> tuple[Video]:
        return (VideoFromFile.probed(self.resolve(file)),)


class LoadVideoFrames(_VideoFileInput):
    """Decodes the frames a workflow needs from a video: frame cap, skipping, every nth, forced rate and resize."""

    FUNCTION = "load_frames"
    CATEGORY = "image/video"
    RETURN_TYPES = ("IMAGE", "INT", "AUDIO", "FLOAT")
    RETURN_NAMES = ("images", "frame_count", "audio", "fps")
    DESCRIPTION = (
        "Loads frames from a video with VideoHelperSuite's options, decoding only what is kept; "
        "the audio is cut to the loaded frames."
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        def count(default: int, low: int, tooltip: str) -> tuple[str, dict[str, Any]]:
            return ("INT", {"default": default, "min": low, "max": MAX_FRAMES, "step": 1, "tooltip": tooltip})

        def size(tooltip: str) -> tuple[str, dict[str, Any]]:
            return ("INT", {"default": 0, "min": 0, "max": MAX_RESOLUTION, "step": 8, "tooltip": tooltip})

        return {
            "required": {
                "video": cls.video_choice(),
                "force_rate": (
                    "FLOAT",
                    {
                        "default": 0.0,
                        "min": 0.0,
                        "max": 240.0,
                        "step": 1.0,
                        "tooltip": "Resample to this rate by dropping or repeating frames; 0 keeps the source rate.",
                    },
                ),
                "custom_width": size("Resize to this width; 0 keeps the aspect ratio (or the source size)."),
                "custom_height": size("Resize to this height; 0 keeps the aspect ratio (or the source size)."),
                "frame_load_cap": count(0, 0, "Load at most this many frames; 0 loads all."),
                "skip_first_frames": count(0, 0, "Frames to skip at the start (after force_rate)."),
                "select_every_nth": count(1, 1, "Keep one frame in every n (after skipping)."),
            }
        }

    @classmethod
    def IS_CHANGED(cls, video: str, **_options: Any) -> str:
        return cls.stamp(video)

    def load_frames(
        self,
        video: str,
        force_rate: float = 0.0,
        custom_width: int = 0,
        custom_height: int = 0,
        frame_load_cap: int = 0,
        skip_first_frames: int = 0,
        select_every_nth: int = 1,
    ) -> tuple[torch.Tensor, int, dict[str, Any] | None, float]:
        path = self.resolve(video)
        selection = FrameSelection(
            force_rate=force_rate,
            skip_first_frames=skip_first_frames,
            select_every_nth=select_every_nth,
            frame_load_cap=frame_load_cap,
            width=custom_width,
            height=custom_height,
        )
        info = probe_video(path)
        bar = ProgressBar(max(1, frame_load_cap or info.frame_count))

        def on_frame(done: int, expected: int | None) -> None:
            bar.update_absolute(done, expected or None)

        images = load_video_frames(path, selection, on_frame)
        start, duration = selected_time_span(info, selection, int(images.shape[0]))
        audio = load_audio_if_present(path, start, duration)
        return images, int(images.shape[0]), audio, float(selection.output_rate(info.frame_rate))


class CreateVideo:
    """Makes a VIDEO from frames, a frame rate and optional audio."""

    FUNCTION = "create_video"
    CATEGORY = "image/video"
    RETURN_TYPES = ("VIDEO",)
    DESCRIPTION = "Combines frames, a frame rate and optional audio into a video."

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "images": ("IMAGE", {"tooltip": "The frames."}),
                "fps": ("FLOAT", {"default": 30.0, "min": 1.0, "max": 120.0, "step": 1.0}),
            },
            "optional": {"audio": ("AUDIO", {"tooltip": "Sound to carry with the video."})},
        }

    def create_video(self, images: torch.Tensor, fps: float, audio: dict[str, Any] | None = None) -> tuple[Video]:
        if images.ndim != 4 or images.shape[0] == 0:
            raise ValueError(f"images: need at least one frame [frames, height, width, 3], got {tuple(images.shape)}")
        return (VideoFromComponents(images, fps, audio),)


class GetVideoComponents:
    """Takes a VIDEO apart into frames, audio and frame rate."""

    FUNCTION = "get_components"
    CATEGORY = "image/video"
    RETURN_TYPES = ("IMAGE", "AUDIO", "FLOAT")
    RETURN_NAMES = ("images", "audio", "fps")
    DESCRIPTION = "Decodes a video into its frames, its audio and its frame rate."

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"video": ("VIDEO", {"tooltip": "The video to take apart."})}}

    def get_components(self, video: Video) -> tuple[torch.Tensor, dict[str, Any] | None, float]:
        components = video.get_components()
        return components.images, components.audio, float(components.frame_rate)


NODE_CLASS_MAPPINGS = {
    "LoadVideo": LoadVideo,
    "LoadVideoFrames": LoadVideoFrames,
    "CreateVideo": CreateVideo,
    "GetVideoComponents": GetVideoComponents,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "LoadVideo": "Load Video",
    "LoadVideoFrames": "Load Video Frames (cap, skip, every nth)",
    "CreateVideo": "Create Video",
    "GetVideoComponents": "Get Video Components",
}
