"""Loader nodes for diffusers pipeline folders: ComfyUI's ``DiffusersLoader`` (MODEL, CLIP, VAE) and
``DiffusersPipelineLoader``, which adds the expert choice of Wan 2.2 A14B, ``weight_dtype``, ``offload`` and the
CLIP_VISION output.

Choices list the folders holding ``model_index.json`` in the ``diffusers`` model folders. The outputs are the
objects ``UNETLoader``, ``CLIPLoader``, ``VAELoader`` and ``CLIPVisionLoader`` give, so the same weights sample the
same video either way. A pipeline without an image encoder gives an ``ExecutionBlocker`` as CLIP_VISION: nodes fed
it are skipped, and an output node that depends on it fails with the blocker's message (a workflow that never uses
it runs; one that does says why, rather than a later node failing on a missing model).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from graph.context import current_context
from graph.node_call import ExecutionBlocker
from models.diffusion_model import DiffusionModel
from models.encoders import ClipVisionEncoder, TextEncoder
from models.errors import ModelLoadError
from models.folders import DIFFUSERS_KEY, ModelFolders, UnsafeModelPathError
from models.memory import MODELS_SERVICE, ModelManager
from models.model_loaders import OFFLOAD_CHOICES, WEIGHT_DTYPES
from models.pipeline_folder import (
    TRANSFORMERS,
    PipelineFolder,
    load_pipeline_clip_vision,
    load_pipeline_text_encoder,
    load_pipeline_transformer,
    load_pipeline_vae,
    read_pipeline_folder,
)
from models.video_vae import VideoVAE
from nodes.model_files import MODEL_FOLDERS_SERVICE, ModelFolderBound

MODEL_PATH = "model_path"
LOW_NOISE = TRANSFORMERS[1]  # transformer_2
DOWNLOAD_HINT = "./start.sh download Wan-AI/<repo>-Diffusers"


class DiffusersLoader(ModelFolderBound):
    """A diffusers pipeline folder's diffusion model (Wan 2.2 A14B: the high-noise expert), text encoder and VAE
    (ComfyUI's node, kept for old workflows)."""

    FUNCTION = "load_checkpoint"
    CATEGORY = "advanced/loaders/deprecated"
    RETURN_TYPES = ("MODEL", "CLIP", "VAE")
    DESCRIPTION = "Loads a diffusers pipeline folder from the diffusers folder."

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {MODEL_PATH: _model_path_input(cls)}}

    def load_checkpoint(self, model_path: str) -> tuple[DiffusionModel, TextEncoder | ExecutionBlocker, VideoVAE]:
        folder = _pipeline_folder(model_path)
        manager = _manager()
        with _naming_input(MODEL_PATH):
            model = load_pipeline_transformer(manager, folder)
            clip = load_pipeline_text_encoder(manager, folder) if folder.layout.text else _no_text(folder)
            return model, clip, load_pipeline_vae(manager, folder)


class DiffusersPipelineLoader(ModelFolderBound):
    """A diffusers pipeline folder as MODEL, CLIP, VAE and CLIP_VISION, with the Wan 2.2 A14B expert to load."""

    FUNCTION = "load_pipeline"
    CATEGORY = "advanced/loaders"
    RETURN_TYPES = ("MODEL", "CLIP", "VAE", "CLIP_VISION")
    RETURN_NAMES = ("MODEL", "CLIP", "VAE", "CLIP_VISION")
    OUTPUT_TOOLTIPS = (
        "The chosen diffusion model.",
        "The text encoder(s) with the folder's tokenizer(s); image-only pipelines (Stable Video Diffusion) have "
        "none, and using it stops the run with a message.",
        "The VAE.",
        "The image encoder of image-to-video pipelines that have one (Wan 2.1, SVD); others have none, and using "
        "it stops the run with a message.",
    )
    DESCRIPTION = (
        "Loads a diffusers pipeline folder from the diffusers folder: the same models as the single-file loaders give."
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                MODEL_PATH: _model_path_input(cls),
                "transformer": (
                    list(TRANSFORMERS),
                    {
                        "tooltip": "transformer: the pipeline's diffusion model (its transformer or unet; Wan 2.2 "
                        "A14B: the high-noise expert); transformer_2: the A14B low-noise expert."
                    },
                ),
                "weight_dtype": (
                    list(WEIGHT_DTYPES),
                    {"tooltip": "default: compute precision; fp8: store weights in 8 bits (half the memory)."},
                ),
            },
            "optional": {
                "offload": (
                    list(OFFLOAD_CHOICES),
                    {
                        "default": "auto",
                        "tooltip": "Where the weights live while sampling: auto chooses from free memory; resident, "
                        "model, block, leaf and disk force a policy (each saves more memory, more slowly).",
                    },
                ),
            },
        }

    def load_pipeline(
        self, model_path: str, transformer: str, weight_dtype: str, offload: str = "auto"
    ) -> tuple[DiffusionModel, TextEncoder | ExecutionBlocker, VideoVAE, ClipVisionEncoder | ExecutionBlocker]:
        folder = _pipeline_folder(model_path)
        if transformer == LOW_NOISE and not folder.has(folder.network_component(LOW_NOISE)):
            raise ValueError(
                f"transformer: {folder.name} has no {LOW_NOISE!r} (only Wan 2.2 A14B pipelines have one, the "
                "low-noise expert); choose transformer"
            )
        manager = _manager()
        with _naming_input(MODEL_PATH):
            model = load_pipeline_transformer(manager, folder, transformer, weight_dtype, offload)
            clip = load_pipeline_text_encoder(manager, folder) if folder.layout.text else _no_text(folder)
            vae = load_pipeline_vae(manager, folder)
            vision = load_pipeline_clip_vision(manager, folder) if folder.has("image_encoder") else _no_vision(folder)
        return model, clip, vae, vision


def _model_path_input(node_class: type[ModelFolderBound]) -> tuple[list[str], dict[str, Any]]:
    return node_class.model_input(DIFFUSERS_KEY, "A pipeline folder (with model_index.json) in the diffusers folder.")


def _manager() -> ModelManager:
    return current_context().service(MODELS_SERVICE)


def _pipeline_folder(model_path: str) -> PipelineFolder:
    """The checked pipeline folder ``model_path`` of the ``diffusers`` folders; errors name the input."""
    folders: ModelFolders = current_context().service(MODEL_FOLDERS_SERVICE)
    try:
        path = folders.resolve(DIFFUSERS_KEY, model_path)
    except UnsafeModelPathError as exc:
        raise ValueError(f"{MODEL_PATH}: {exc}") from exc
    if not path.exists():
        searched = ", ".join(str(folder) for folder in folders.folders(DIFFUSERS_KEY))
        raise ValueError(
            f"{MODEL_PATH}: {model_path!r} is not in the {DIFFUSERS_KEY} folder (searched {searched}); put the "
            f"pipeline folder there or fetch it with {DOWNLOAD_HINT}"
        )
    with _naming_input(MODEL_PATH):
        return read_pipeline_folder(path)


@contextmanager
def _naming_input(input_name: str) -> Iterator[None]:
    """Re-raise a model load error as ``ValueError("<input_name>: <folder>: <reason>")``, caused by the original."""
    try:
        yield
    except ModelLoadError as exc:
        raise ValueError(f"{input_name}: {exc}") from exc


def _no_text(folder: PipelineFolder) -> ExecutionBlocker:
    return ExecutionBlocker(
        f"{folder.name} is a {folder.pipeline_class}, conditioned on images only: it has no text encoder, so its CLIP "
        "output is empty"
    )


def _no_vision(folder: PipelineFolder) -> ExecutionBlocker:
    return ExecutionBlocker(
        f"DiffusersPipelineLoader: {folder.name} has no image_encoder, so its CLIP_VISION output is empty (the "
        "Wan 2.1 and SkyReels-V2 image-to-video pipelines have one); load clip_vision_h with CLIPVisionLoader instead"
    )


NODE_CLASS_MAPPINGS = {
    "DiffusersLoader": DiffusersLoader,
    "DiffusersPipelineLoader": DiffusersPipelineLoader,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "DiffusersLoader": "Diffusers Loader",
    "DiffusersPipelineLoader": "Load Diffusers Pipeline",
}
