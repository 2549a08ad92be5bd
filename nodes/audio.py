"""Audio nodes: LoadAudio (from an audio file or a video's sound track) and TrimAudioDuration."""

from __future__ import annotations

from typing import Any

from graph.context import current_context
from nodes.folders import FOLDERS_SERVICE, FolderBound, Folders
from nodes.media.audio import load_audio, trim_audio
from nodes.video import VIDEO_EXTENSIONS, file_stamp

AUDIO_EXTENSIONS = frozenset({"wav", "mp3", "flac", "ogg", "opus", "m4a", "aac"})
MAX_SECONDS = 1.0e9


class LoadAudio(FolderBound):
    """Loads the sound of an audio file, or of a video file, from the input folder."""

    FUNCTION = "load"
    CATEGORY = "audio"
    RETURN_TYPES = ("AUDIO",)
    DESCRIPTION = "Loads audio (its own sample rate and channels) from an audio or video file in the input folder."

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "audio": (
                    cls.input_choices(AUDIO_EXTENSIONS | VIDEO_EXTENSIONS),
                    {"audio_upload": True, "tooltip": "An audio or video file in the input folder."},
                )
            }
        }

    @classmethod
    def IS_CHANGED(cls, audio: str) -> str:
        if cls.FOLDERS is None:
            return audio
        try:
            return file_stamp(cls.FOLDERS.resolve_annotated(audio, "audio file"))
        except (OSError, ValueError):
            return audio

    def load(self, audio: str) -> tuple[dict[str, Any]]:
        folders: Folders = current_context().service(FOLDERS_SERVICE)
        return (load_audio(folders.resolve_annotated(audio, "audio file")),)


class TrimAudioDuration:
    """Cuts a stretch of audio by start time and duration in seconds."""

    FUNCTION = "trim"
    CATEGORY = "audio"
    RETURN_TYPES = ("AUDIO",)
    DESCRIPTION = "Keeps `duration` seconds of audio from `start_index`; a negative start counts from the end."

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "audio": ("AUDIO",),
                "start_index": (
                    "FLOAT",
                    {
                        "default": 0.0,
                        "min": -MAX_SECONDS,
                        "max": MAX_SECONDS,
                        "step": 0.01,
                        "tooltip": "Start time in seconds; negative counts back from the end.",
                    },
                ),
                "duration": (
                    "FLOAT",
                    {"default": 60.0, "min": 0.0, "max": MAX_SECONDS, "step": 0.01, "tooltip": "Seconds to keep."},
                ),
            }
        }

    def trim(self, audio: dict[str, Any], start_index: float, duration: float) -> tuple[dict[str, Any]]:
        return (trim_audio(audio, start_index, duration),)


NODE_CLASS_MAPPINGS = {"LoadAudio": LoadAudio, "TrimAudioDuration": TrimAudioDuration}

NODE_DISPLAY_NAME_MAPPINGS = {"LoadAudio": "Load Audio", "TrimAudioDuration": "Trim Audio Duration"}
