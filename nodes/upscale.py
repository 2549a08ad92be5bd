"""Super-resolution nodes: ``UpscaleModelLoader`` and ``ImageUpscaleWithModel`` with ComfyUI's sockets, and
``VideoUpscaleWithModel``, which streams a VIDEO through the model a batch of frames at a time and keeps its frame
rate, audio and metadata.

Models load through spandrel (``models.upscale``); frames run in feathered tiles sized to free memory
(``models.upscale.tiling``), so a long or large clip never sits on the device at once.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import torch

from graph.context import ProgressBar, current_context
from models.memory import MODELS_SERVICE, ModelManager
from models.upscale.model import UpscaleModel, load_upscale_model
from models.upscale.tiling import MIN_TILE, TileOptions, upscale_batches
from nodes.media.streaming import frame_bytes, output_mode_input, streams
from nodes.media.video import Video, VideoFromBatches, VideoFromComponents, joined_frames
from nodes.model_files import ModelFolderBound, resolve_model_file

logger = logging.getLogger(__name__)

MAX_TILE = 4096
MAX_OVERLAP = 512
MAX_FRAME_BATCH = 256


def _manager() -> ModelManager:
    return current_context().service(MODELS_SERVICE)


def _check_image(node: str, image: Any) -> torch.Tensor:
    if not isinstance(image, torch.Tensor) or image.ndim != 4 or image.shape[-1] != 3 or image.shape[0] == 0:
        shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise ValueError(f"{node}: image must be an IMAGE [frames, height, width, 3] with frames, got {shape}")
    return image


def _upscaled(model: UpscaleModel, batches: Iterable[torch.Tensor], frames: int, options: TileOptions) -> torch.Tensor:
    """Every batch upscaled and joined, with progress per batch and a stop between batches when interrupted."""
    context = current_context()
    bar = ProgressBar(frames)

    def after_batch(done: int) -> None:
        bar.update_absolute(done, max(frames, done))
        context.check_interrupt()

    try:
        return joined_frames(upscale_batches(_manager(), model, batches, options, after_batch), frames)
    except ValueError as error:
        raise ValueError(f"upscaling: {error}") from error


class UpscaleModelLoader(ModelFolderBound):
    """An upscale model file (ESRGAN, Real-ESRGAN Compact, SPAN, SwinIR, HAT, DAT and more, through spandrel)."""

    FUNCTION = "load_model"
    CATEGORY = "loaders"
    RETURN_TYPES = ("UPSCALE_MODEL",)
    DESCRIPTION = (
        "Loads a super-resolution model from the upscale_models folder (.safetensors or .pth); its architecture and "
        "scale are read from its weights."
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"model_name": cls.model_input("upscale_models", "The upscale model file.")}}

    def load_model(self, model_name: str) -> tuple[UpscaleModel]:
        path = resolve_model_file("upscale_models", model_name, "model_name")
        return (load_upscale_model(_manager(), path),)


class ImageUpscaleWithModel:
    """Upscales images (or video frames) with an upscale model, in tiles sized to free memory, a frame at a time."""

    FUNCTION = "upscale"
    CATEGORY = "image/upscaling"
    RETURN_TYPES = ("IMAGE",)
    DESCRIPTION = (
        "Upscales the images with the model (2x, 4x, ...). Tiles are chosen from free memory and blended without "
        "seams; frames go to the device one at a time."
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "upscale_model": ("UPSCALE_MODEL", {"tooltip": "From UpscaleModelLoader."}),
                "image": ("IMAGE", {"tooltip": "The images to upscale."}),
            }
        }

    def upscale(self, upscale_model: UpscaleModel, image: torch.Tensor) -> tuple[torch.Tensor]:
        image = _check_image("ImageUpscaleWithModel", image)
        return (_upscaled(upscale_model, [image], image.shape[0], TileOptions()),)


class VideoUpscaleWithModel:
    """Upscales a VIDEO with an upscale model, streaming it through the device in frame batches."""

    FUNCTION = "upscale"
    CATEGORY = "image/upscaling"
    RETURN_TYPES = ("VIDEO",)
    DESCRIPTION = (
        "Upscales every frame of a video with the model, a batch of frames at a time (a video file is decoded batch "
        "by batch), keeping its frame rate, audio and metadata. A clip too large to hold in RAM is streamed: its "
        "frames are decoded, upscaled and encoded batch by batch as the next node (Save Video) reads them."
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "upscale_model": ("UPSCALE_MODEL", {"tooltip": "From UpscaleModelLoader."}),
                "video": ("VIDEO", {"tooltip": "The video to upscale."}),
                "tile_size": (
                    "INT",
                    {
                        "default": 0,
                        "min": 0,
                        "max": MAX_TILE,
                        "step": 16,
                        "tooltip": f"Tile side in input pixels; 0 chooses from free memory (at least {MIN_TILE}).",
                    },
                ),
                "overlap": (
                    "INT",
                    {
                        "default": 32,
                        "min": 0,
                        "max": MAX_OVERLAP,
                        "tooltip": "Pixels neighbouring tiles share; their seams are blended across it.",
                    },
                ),
                "frame_batch_size": (
                    "INT",
                    {
                        "default": 4,
                        "min": 1,
                        "max": MAX_FRAME_BATCH,
                        "tooltip": "Frames sent to the device together (more is faster and takes more memory).",
                    },
                ),
            },
            "optional": {"output": output_mode_input()},
        }

    def upscale(
        self,
        upscale_model: UpscaleModel,
        video: Video,
        tile_size: int,
        overlap: int,
        frame_batch_size: int,
        output: str = "auto",
    ) -> tuple[Video]:
        try:
            options = TileOptions(tile_size, overlap, frame_batch_size)
        except ValueError as error:
            raise ValueError(f"VideoUpscaleWithModel: {error}") from error
        width, height = video.get_dimensions()
        size = (width * upscale_model.scale, height * upscale_model.scale)
        count = video.get_frame_count()
        manager = _manager()
        output_bytes = frame_bytes(count, *size)
        if not streams("VideoUpscaleWithModel", output, output_bytes, manager.probe.ram_available()):
            frames = _upscaled(upscale_model, video.frame_batches(frame_batch_size)(), count, options)
            return (VideoFromComponents(frames, video.get_frame_rate(), video.get_audio(), video.metadata),)
        logger.info(
            "VideoUpscaleWithModel: streaming %d frames at %dx%d (%.1f GB as float32) into the node that reads them",
            count,
            *size,
            output_bytes / 1e9,
        )

        def upscaled() -> Iterable[torch.Tensor]:
            return upscale_batches(manager, upscale_model, video.frame_batches(frame_batch_size)(), options)

        streamed = VideoFromBatches(
            "VideoUpscaleWithModel", upscaled, size, count, video.get_frame_rate(), video.get_audio(), video.metadata
        )
        return (streamed,)


NODE_CLASS_MAPPINGS = {
    "UpscaleModelLoader": UpscaleModelLoader,
    "ImageUpscaleWithModel": ImageUpscaleWithModel,
    "VideoUpscaleWithModel": VideoUpscaleWithModel,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "UpscaleModelLoader": "Load Upscale Model",
    "ImageUpscaleWithModel": "Upscale Image (using Model)",
    "VideoUpscaleWithModel": "Upscale Video (using Model)",
}
