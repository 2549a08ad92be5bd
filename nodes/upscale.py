"""Super-resolution nodes: ``UpscaleModelLoader`` and ``ImageUpscaleWithModel`` with ComfyUI's sockets, and
``VideoUpscaleWithModel``, which streams a VIDEO through the model a batch of frames at a time and keeps its frame
rate, audio and metadata.

Models load through spandrel (``models.upscale``); frames run in feathered tiles sized to free memory
(``models.upscale.tiling``), so a long or large clip never sits on the device at once.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from graph.context import ProgressBar, current_context
from models.memory import MODELS_SERVICE, ModelManager
from models.upscale.model import UpscaleModel, load_upscale_model
from models.upscale.tiling import MIN_TILE, TileOptions, upscale_batches
from nodes.media.video import Video, VideoFromComponents
from nodes.model_files import ModelFolderBound, resolve_model_file

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

    return _joined(upscale_batches(_manager(), model, batches, options, after_batch), frames)


def _joined(batches: Iterable[torch.Tensor], frames: int) -> torch.Tensor:
    """The upscaled batches written into one output of ``frames`` frames as they come, so the result never sits in
    RAM twice (as a list of batches and their concatenation); a video whose probed frame count was off still gives
    all its frames."""
    output: torch.Tensor | None = None
    filled = 0
    overflow: list[torch.Tensor] = []
    for batch in batches:
        if output is None:
            output = batch.new_empty((frames, *batch.shape[1:]))
        fits = max(0, min(batch.shape[0], frames - filled))
        output[filled : filled + fits] = batch[:fits]
        filled += fits
        if fits < batch.shape[0]:
            overflow.append(batch[fits:])
    if output is None:
        raise ValueError("upscaling: no frames came in")
    return torch.cat([output, *overflow]) if overflow else output[:filled]


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
        "by batch), keeping its frame rate, audio and metadata."
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
            }
        }

    def upscale(
        self, upscale_model: UpscaleModel, video: Video, tile_size: int, overlap: int, frame_batch_size: int
    ) -> tuple[Video]:
        try:
            options = TileOptions(tile_size, overlap, frame_batch_size)
        except ValueError as error:
            raise ValueError(f"VideoUpscaleWithModel: {error}") from error
        frames = _upscaled(upscale_model, video.frame_batches(frame_batch_size)(), video.get_frame_count(), options)
        return (VideoFromComponents(frames, video.get_frame_rate(), video.get_audio(), video.metadata),)


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
