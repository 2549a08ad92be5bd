"""Depth preprocessing: ``DepthEstimationModelLoader`` loads a transformers depth estimation model (Depth Anything,
DPT, ...) from a folder in ``depth_estimation/``, and ``DepthEstimation`` turns frames into the depth images that
depth ControlNets and VACE take: gray, near bright and far dark, normalised over the whole clip so that a video's
depth does not flicker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from graph.context import ProgressBar, current_context
from models.control.depth import (
    CONFIG_FILE,
    DEFAULT_BATCH,
    DEPTH_FOLDER,
    FOLDER_LAYOUT,
    DepthModel,
    estimate_depth,
    load_depth_model,
)
from models.errors import ModelLoadError
from models.folders import ModelFolders, UnsafeModelPathError
from models.memory import MODELS_SERVICE, ModelManager
from nodes.frames import check_frames
from nodes.model_files import MODEL_FOLDERS_SERVICE, ModelFolderBound

MODEL_TYPE = "DEPTH_MODEL"
CATEGORY = "image/preprocessors"
MAX_BATCH = 256


def _manager() -> ModelManager:
    return current_context().service(MODELS_SERVICE)


def _model_folder(node: str, name: str) -> Path:
    """The folder ``name`` in the depth_estimation folders; ValueError naming the node and input when it is not
    there (a shared workflow naming a model this machine lacks) or the name is unsafe."""
    folders: ModelFolders = current_context().service(MODEL_FOLDERS_SERVICE)
    try:
        path = folders.resolve(DEPTH_FOLDER, name)
    except UnsafeModelPathError as error:
        raise ValueError(f"{node}: model_name: {error}") from None
    if not path.is_dir():
        searched = ", ".join(str(folder) for folder in folders.folders(DEPTH_FOLDER))
        raise ValueError(
            f"{node}: model_name: {name!r} is not a folder in the {DEPTH_FOLDER} folder (searched {searched}); "
            f"put the model there as {FOLDER_LAYOUT}"
        )
    return path


class DepthEstimationModelLoader(ModelFolderBound):
    """A transformers depth estimation model folder (Depth Anything V1/V2, DPT, ...)."""

    FUNCTION = "load"
    CATEGORY = "loaders"
    RETURN_TYPES = (MODEL_TYPE,)
    RETURN_NAMES = ("depth_model",)
    DESCRIPTION = (
        f"Loads a depth estimation model from the {DEPTH_FOLDER} folder: a folder as the model's Hugging Face "
        "release has it (config.json, model.safetensors, preprocessor_config.json), e.g. Depth-Anything-V2-Small-hf."
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        tooltip = f"A model folder (holding {CONFIG_FILE}) in the {DEPTH_FOLDER} folder."
        return {"required": {"model_name": cls.model_input(DEPTH_FOLDER, tooltip)}}

    def load(self, model_name: str) -> tuple[DepthModel]:
        node = "DepthEstimationModelLoader"
        folder = _model_folder(node, model_name)
        try:
            return (load_depth_model(_manager(), folder),)
        except ModelLoadError as error:
            raise ValueError(f"{node}: model_name: {error}") from error


class DepthEstimation:
    """Depth images of frames: gray, near bright, one scale over the whole clip."""

    FUNCTION = "estimate"
    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("depth",)
    DESCRIPTION = (
        "Estimates each frame's depth with the model and returns it as a gray image, near bright and far dark (the "
        "convention of depth ControlNets and VACE). The depth is stretched to 0..1 over the whole clip, not per "
        "frame, so a video's depth does not flicker."
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "depth_model": (MODEL_TYPE, {"tooltip": "From DepthEstimationModelLoader."}),
                "image": ("IMAGE", {"tooltip": "The frames (RGB) to estimate depth for."}),
            },
            "optional": {
                "batch_size": (
                    "INT",
                    {
                        "default": DEFAULT_BATCH,
                        "min": 1,
                        "max": MAX_BATCH,
                        "tooltip": "Frames sent to the device together (more is faster and takes more memory).",
                    },
                ),
            },
        }

    def estimate(
        self, depth_model: DepthModel, image: torch.Tensor, batch_size: int = DEFAULT_BATCH
    ) -> tuple[torch.Tensor]:
        node = "DepthEstimation"
        if not isinstance(depth_model, DepthModel):
            raise ValueError(f"{node}: depth_model must be a DEPTH_MODEL, got {type(depth_model).__name__}")
        count = check_frames(image, f"{node}: image")
        if image.shape[-1] != 3:
            raise ValueError(f"{node}: image must have 3 channels (RGB), got {image.shape[-1]}")
        if not 1 <= batch_size <= MAX_BATCH:
            raise ValueError(f"{node}: batch_size ({batch_size}) must be between 1 and {MAX_BATCH}")
        context = current_context()
        bar = ProgressBar(count)

        def after_batch(done: int) -> None:
            bar.update_absolute(done, count)
            context.check_interrupt()

        depth = estimate_depth(_manager(), depth_model, image, batch_size, after_batch)
        near_bright = depth if depth_model.inverse else 1.0 - depth
        return (near_bright.unsqueeze(-1).expand(-1, -1, -1, 3).contiguous(),)


NODE_CLASS_MAPPINGS = {
    "DepthEstimationModelLoader": DepthEstimationModelLoader,
    "DepthEstimation": DepthEstimation,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "DepthEstimationModelLoader": "Load Depth Estimation Model",
    "DepthEstimation": "Depth Estimation",
}
