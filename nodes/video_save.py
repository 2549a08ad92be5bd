"""Video output nodes: SaveVideo, SaveWEBM, SaveAnimatedWEBP, SaveAnimatedPNG, SaveVideoAs and PreviewVideo.

Every file embeds the API prompt and the editor workflow, and appears in the node's UI output with ComfyUI's
``animated`` flag so the editor plays it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from fractions import Fraction
from typing import Any

import torch

from graph.context import NodeContext, current_context
from nodes.folders import FOLDERS_SERVICE, Folders
from nodes.io import claim_numbered_file, png_metadata, resolve_save_path, temp_prefix, tensor_to_pil
from nodes.media.encode import FILE_EXTENSIONS, EncodeSettings, FrameBatches, encode_video, tensor_batches
from nodes.media.provenance import workflow_texts
from nodes.media.video import Video, VideoFromComponents, as_frame_rate

HIDDEN = {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"}
FPS_OPTIONS = {"min": 0.01, "max": 1000.0, "step": 0.01}
WEBP_METHODS = {"default": 4, "fastest": 0, "slowest": 6}
FORMATS = {
    "mp4 (h264)": ("mp4", "h264"),
    "mp4 (h265)": ("mp4", "h265"),
    "webm (vp9)": ("webm", "vp9"),
    "webm (av1)": ("webm", "av1"),
    "gif": ("gif", "gif"),
    "webp": ("webp", "webp"),
    "apng": ("apng", "apng"),
}
PNG_SEQUENCE = "png sequence"
VIDEO_CONTAINERS = ("mp4", "webm")
PIXEL_FORMATS = ("auto", "yuv420p", "yuv444p", "yuv420p10le")


def _prefix_input(default: str) -> tuple[str, dict[str, Any]]:
    return (
        "STRING",
        {"default": default, "tooltip": "The start of the file name; may include a subfolder, e.g. 'video/shot1'."},
    )


def save_encoded(
    frames: FrameBatches,
    frame_count: int,
    settings: EncodeSettings,
    filename_prefix: str,
    *,
    folder_type: str = "output",
    audio: Mapping[str, Any] | None = None,
    prompt: Mapping[str, Any] | None = None,
    extra_pnginfo: Mapping[str, Any] | None = None,
) -> dict[str, str]:
    """Encode frames to the next numbered file for ``filename_prefix``; returns its UI entry.

    The prompt and workflow are embedded; progress goes to the running node and interrupts stop the encode.
    """
    context = current_context()
    folders: Folders = context.service(FOLDERS_SERVICE)
    target = resolve_save_path(filename_prefix, folders.by_type(folder_type))
    path, _counter = claim_numbered_file(target, target.counter, FILE_EXTENSIONS[settings.container])
    settings = replace(settings, metadata={**settings.metadata, **workflow_texts(prompt, extra_pnginfo)})
    try:
        encode_video(path, frames, settings, audio=audio, on_frame=_progress(context, frame_count))
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return {"filename": path.name, "subfolder": target.subfolder, "type": folder_type}


def _progress(context: NodeContext, total: int) -> Any:
    def on_frame(done: int) -> None:
        context.report_progress(done, max(total, done))

    return on_frame


def _check_images(images: torch.Tensor) -> torch.Tensor:
    if images.ndim != 4 or images.shape[0] == 0:
        raise ValueError(
            f"images: need at least one frame [frames, height, width, channels], got {tuple(images.shape)}"
        )
    return images


def _animated(entry: dict[str, str]) -> dict[str, Any]:
    return {"ui": {"images": [entry], "animated": (True,)}, "result": ()}


def save_frames(
    images: torch.Tensor,
    settings: EncodeSettings,
    filename_prefix: str,
    prompt: Mapping[str, Any] | None,
    extra_pnginfo: Mapping[str, Any] | None,
    *,
    folder_type: str = "output",
    audio: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Encode an IMAGE batch to one file; returns the UI output. Videos are always ``animated`` for the editor,
    image animations (webp, apng, gif) only when they have more than one frame."""
    images = _check_images(images)
    entry = save_encoded(
        tensor_batches(images),
        len(images),
        settings,
        filename_prefix,
        folder_type=folder_type,
        audio=audio,
        prompt=prompt,
        extra_pnginfo=extra_pnginfo,
    )
    return {"images": [entry], "animated": (settings.container in VIDEO_CONTAINERS or len(images) > 1,)}


class SaveVideo:
    """Saves a VIDEO as an h264 mp4 with its audio, in the output folder."""

    FUNCTION = "save_video"
    CATEGORY = "image/video"
    RETURN_TYPES = ()
    OUTPUT_NODE = True
    DESCRIPTION = "Saves the video (h264 mp4, with its audio) to the output folder, with the workflow embedded."

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "video": ("VIDEO", {"tooltip": "The video to save."}),
                "filename_prefix": _prefix_input("video/ComfyUI"),
                "format": (["auto", "mp4"], {"default": "auto"}),
                "codec": (["auto", "h264"], {"default": "auto"}),
            },
            "hidden": HIDDEN,
        }

    def save_video(
        self,
        video: Video,
        filename_prefix: str,
        format: str = "auto",
        codec: str = "auto",
        prompt: dict[str, Any] | None = None,
        extra_pnginfo: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        settings = EncodeSettings(container="mp4", codec="h264", frame_rate=video.get_frame_rate())
        entry = save_encoded(
            video.frame_batches(),
            video.get_frame_count(),
            settings,
            filename_prefix,
            audio=video.get_audio(),
            prompt=prompt,
            extra_pnginfo=extra_pnginfo,
        )
        return _animated(entry)


class SaveWEBM:
    """Saves frames as a VP9 or AV1 WebM."""

    FUNCTION = "save_images"
    CATEGORY = "image/video"
    RETURN_TYPES = ()
    OUTPUT_NODE = True
    DESCRIPTION = "Saves the frames as a WebM video (VP9 or AV1) with the workflow embedded."

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "images": ("IMAGE",),
                "filename_prefix": _prefix_input("ComfyUI"),
                "codec": (["vp9", "av1"],),
                "fps": ("FLOAT", {"default": 24.0, **FPS_OPTIONS}),
                "crf": (
                    "FLOAT",
                    {"default": 32.0, "min": 0, "max": 63.0, "step": 1, "tooltip": "Higher is smaller and worse."},
                ),
            },
            "hidden": HIDDEN,
        }

    def save_images(
        self,
        images: torch.Tensor,
        filename_prefix: str,
        codec: str,
        fps: float,
        crf: float,
        prompt: dict[str, Any] | None = None,
        extra_pnginfo: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        settings = EncodeSettings(container="webm", codec=codec, frame_rate=as_frame_rate(fps), crf=crf)
        return {"ui": save_frames(images, settings, filename_prefix, prompt, extra_pnginfo), "result": ()}


class SaveAnimatedWEBP:
    """Saves frames as an animated WebP."""

    FUNCTION = "save_images"
    CATEGORY = "image/animation"
    RETURN_TYPES = ()
    OUTPUT_NODE = True
    DESCRIPTION = "Saves the frames as an animated WebP with the workflow embedded."

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "images": ("IMAGE",),
                "filename_prefix": _prefix_input("ComfyUI"),
                "fps": ("FLOAT", {"default": 6.0, **FPS_OPTIONS}),
                "lossless": ("BOOLEAN", {"default": True}),
                "quality": ("INT", {"default": 80, "min": 0, "max": 100}),
                "method": (list(WEBP_METHODS),),
            },
            "hidden": HIDDEN,
        }

    def save_images(
        self,
        images: torch.Tensor,
        filename_prefix: str,
        fps: float,
        lossless: bool,
        quality: int,
        method: str,
        prompt: dict[str, Any] | None = None,
        extra_pnginfo: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        settings = EncodeSettings(
            container="webp",
            codec="webp",
            frame_rate=as_frame_rate(fps),
            lossless=lossless,
            quality=quality,
            method=WEBP_METHODS[method],
        )
        return {"ui": save_frames(images, settings, filename_prefix, prompt, extra_pnginfo), "result": ()}


class SaveAnimatedPNG:
    """Saves frames as an animated PNG (APNG)."""

    FUNCTION = "save_images"
    CATEGORY = "image/animation"
    RETURN_TYPES = ()
    OUTPUT_NODE = True
    DESCRIPTION = "Saves the frames as an animated PNG with the workflow embedded."

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "images": ("IMAGE",),
                "filename_prefix": _prefix_input("ComfyUI"),
                "fps": ("FLOAT", {"default": 6.0, **FPS_OPTIONS}),
                "compress_level": ("INT", {"default": 4, "min": 0, "max": 9}),
            },
            "hidden": HIDDEN,
        }

    def save_images(
        self,
        images: torch.Tensor,
        filename_prefix: str,
        fps: float,
        compress_level: int,
        prompt: dict[str, Any] | None = None,
        extra_pnginfo: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        settings = EncodeSettings(
            container="apng", codec="apng", frame_rate=as_frame_rate(fps), compress_level=compress_level
        )
        return {"ui": save_frames(images, settings, filename_prefix, prompt, extra_pnginfo), "result": ()}


class SaveVideoAs:
    """Saves frames in a chosen format and quality, with audio where the format carries it."""

    FUNCTION = "save"
    CATEGORY = "image/video"
    RETURN_TYPES = ("VIDEO",)
    OUTPUT_NODE = True
    DESCRIPTION = (
        "Saves frames as mp4 (h264/h265), webm (vp9/av1), gif (generated palette), animated webp, apng or a PNG "
        "sequence, with the chosen frame rate, quality and pixel format; audio is muxed into mp4 and webm."
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "images": ("IMAGE", {"tooltip": "The frames to save."}),
                "filename_prefix": _prefix_input("video/Reelgraph"),
                "format": ([*FORMATS, PNG_SEQUENCE], {"default": "mp4 (h264)"}),
                "fps": ("FLOAT", {"default": 24.0, **FPS_OPTIONS}),
                "crf": (
                    "INT",
                    {
                        "default": 19,
                        "min": 0,
                        "max": 63,
                        "tooltip": "mp4/webm quality: lower is better and larger (h264/h265 up to 51).",
                    },
                ),
                "pixel_format": (list(PIXEL_FORMATS), {"default": "auto"}),
                "save_output": (
                    "BOOLEAN",
                    {"default": True, "tooltip": "Off: write to the temp folder as a preview only."},
                ),
            },
            "optional": {"audio": ("AUDIO", {"tooltip": "Sound to mux into mp4 or webm."})},
            "hidden": HIDDEN,
        }

    def save(
        self,
        images: torch.Tensor,
        filename_prefix: str,
        format: str,
        fps: float,
        crf: int,
        pixel_format: str,
        save_output: bool,
        audio: dict[str, Any] | None = None,
        prompt: dict[str, Any] | None = None,
        extra_pnginfo: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        images = _check_images(images)
        folder_type = "output" if save_output else "temp"
        video = VideoFromComponents(images, fps, audio)
        if format == PNG_SEQUENCE:
            entries = save_png_sequence(images, filename_prefix, folder_type, prompt, extra_pnginfo)
            return {"ui": {"images": entries}, "result": (video,)}
        container, codec = FORMATS[format]
        is_video_codec = container in VIDEO_CONTAINERS  # crf and pixel format mean nothing to gif/webp/apng
        settings = EncodeSettings(
            container=container,
            codec=codec,
            frame_rate=video.get_frame_rate(),
            crf=float(crf) if is_video_codec else None,
            pixel_format=None if pixel_format == "auto" or not is_video_codec else pixel_format,
        )
        ui = save_frames(images, settings, filename_prefix, prompt, extra_pnginfo, folder_type=folder_type, audio=audio)
        return {"ui": ui, "result": (video,)}


def save_png_sequence(
    images: torch.Tensor,
    filename_prefix: str,
    folder_type: str,
    prompt: Mapping[str, Any] | None,
    extra_pnginfo: Mapping[str, Any] | None,
) -> list[dict[str, str]]:
    """One numbered PNG per frame, each carrying the workflow."""
    context = current_context()
    folders: Folders = context.service(FOLDERS_SERVICE)
    target = resolve_save_path(filename_prefix, folders.by_type(folder_type))
    metadata = png_metadata(prompt, extra_pnginfo)
    counter = target.counter
    entries: list[dict[str, str]] = []
    for index, frame in enumerate(images):
        context.report_progress(index, len(images))
        path, counter = claim_numbered_file(target, counter, "png")
        tensor_to_pil(frame).save(path, format="PNG", pnginfo=metadata, compress_level=4)
        entries.append({"filename": path.name, "subfolder": target.subfolder, "type": folder_type})
        counter += 1
    return entries


class PreviewVideo:
    """Shows a VIDEO in the editor: a quick h264 mp4 in the temp folder."""

    FUNCTION = "preview"
    CATEGORY = "image/video"
    RETURN_TYPES = ()
    OUTPUT_NODE = True
    DESCRIPTION = "Plays the video in the node; the file goes to the temp folder, not the outputs."

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"video": ("VIDEO", {"tooltip": "The video to preview."})}, "hidden": HIDDEN}

    def preview(
        self,
        video: Video,
        prompt: dict[str, Any] | None = None,
        extra_pnginfo: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        settings = EncodeSettings(
            container="mp4", codec="h264", frame_rate=Fraction(video.get_frame_rate()), crf=23.0, preset="veryfast"
        )
        entry = save_encoded(
            video.frame_batches(),
            video.get_frame_count(),
            settings,
            temp_prefix("Reelgraph_temp"),
            folder_type="temp",
            audio=video.get_audio(),
            prompt=prompt,
            extra_pnginfo=extra_pnginfo,
        )
        return _animated(entry)


NODE_CLASS_MAPPINGS = {
    "SaveVideo": SaveVideo,
    "SaveWEBM": SaveWEBM,
    "SaveAnimatedWEBP": SaveAnimatedWEBP,
    "SaveAnimatedPNG": SaveAnimatedPNG,
    "SaveVideoAs": SaveVideoAs,
    "PreviewVideo": PreviewVideo,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "SaveVideo": "Save Video",
    "SaveWEBM": "Save WEBM",
    "SaveAnimatedWEBP": "Save Animated WEBP",
    "SaveAnimatedPNG": "Save Animated PNG",
    "SaveVideoAs": "Save Video As (format, quality, audio)",
    "PreviewVideo": "Preview Video",
}
