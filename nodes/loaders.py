"""Model loader nodes in ComfyUI's vocabulary: ``UNETLoader``, ``CLIPLoader``, ``DualCLIPLoader``, ``VAELoader``,
``CLIPVisionLoader`` and ``CheckpointLoaderSimple``.

Each resolves its file in the model folders and loads it through the memory manager (shared between nodes and
prompts, offloaded and evicted as memory requires). Widgets keep ComfyUI's order; ``UNETLoader`` adds an optional
``offload`` choice after them, so workflows saved by ComfyUI map unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from graph.context import current_context
from models.diffusion_model import DiffusionModel
from models.encoders import ClipVisionEncoder, TextEncoder
from models.families.catalog import TEXT_ENCODER_KINDS
from models.latent_preview import LATENT_PREVIEWS_SERVICE
from models.memory import MODELS_SERVICE, ModelManager
from models.model_loaders import (
    OFFLOAD_CHOICES,
    WEIGHT_DTYPES,
    load_checkpoint,
    load_clip_vision,
    load_diffusion_model,
    load_image_only_checkpoint,
    load_text_encoder,
    load_vae,
)
from models.video_vae import VideoVAE
from nodes.model_files import MODEL_FOLDERS_SERVICE, ModelFolderBound, resolve_model_file

CATEGORY = "loaders"
SINGLE_TYPES = tuple(kind.name for kind in TEXT_ENCODER_KINDS if len(kind.parts) == 1)
DUAL_TYPES = tuple(kind.name for kind in TEXT_ENCODER_KINDS if len(kind.parts) == 2)
DEVICE_INPUT = (["default", "cpu"], {"tooltip": "Where the encoder runs."})


def _manager() -> ModelManager:
    return current_context().service(MODELS_SERVICE)


class UNETLoader(ModelFolderBound):
    """A diffusion model file (original key names, fp16/bf16/fp8, fp8 with per-weight scales)."""

    FUNCTION = "load_unet"
    CATEGORY = "advanced/loaders"
    RETURN_TYPES = ("MODEL",)
    DESCRIPTION = (
        "Loads a video diffusion model (Wan, LTX-Video, HunyuanVideo, Mochi) from the diffusion_models folder."
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "unet_name": cls.model_input("diffusion_models", "The diffusion model file."),
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

    def load_unet(self, unet_name: str, weight_dtype: str, offload: str = "auto") -> tuple[DiffusionModel]:
        path = resolve_model_file("diffusion_models", unet_name, "unet_name")
        return (load_diffusion_model(_manager(), path, weight_dtype, offload),)


class CLIPLoader(ModelFolderBound):
    """A text encoder file with the tokenizer its type needs."""

    FUNCTION = "load_clip"
    CATEGORY = "advanced/loaders"
    RETURN_TYPES = ("CLIP",)
    DESCRIPTION = (
        "Loads a text encoder from the text_encoders folder with its tokenizer (type wan: UMT5-XXL; ltxv and mochi: "
        "T5-XXL)."
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "clip_name": cls.model_input("text_encoders", "The text encoder file."),
                "type": (list(SINGLE_TYPES), {"tooltip": "The model family the encoder serves."}),
            },
            "optional": {"device": DEVICE_INPUT},
        }

    def load_clip(self, clip_name: str, type: str, device: str = "default") -> tuple[TextEncoder]:
        paths = [resolve_model_file("text_encoders", clip_name, "clip_name")]
        return (_text_encoder(paths, type, device),)


class DualCLIPLoader(ModelFolderBound):
    """The two text encoder files of a two-encoder type (HunyuanVideo: Llama and CLIP-L), in either order."""

    FUNCTION = "load_clip"
    CATEGORY = "advanced/loaders"
    RETURN_TYPES = ("CLIP",)
    DESCRIPTION = (
        "Loads two text encoders from the text_encoders folder as one (type hunyuan_video: the llava-llama-3 and "
        "CLIP-L files, with their tokenizers)."
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "clip_name1": cls.model_input("text_encoders", "One text encoder file."),
                "clip_name2": cls.model_input("text_encoders", "The other text encoder file."),
                "type": (list(DUAL_TYPES), {"tooltip": "The model family the encoders serve."}),
            },
            "optional": {"device": DEVICE_INPUT},
        }

    def load_clip(self, clip_name1: str, clip_name2: str, type: str, device: str = "default") -> tuple[TextEncoder]:
        paths = [
            resolve_model_file("text_encoders", clip_name1, "clip_name1"),
            resolve_model_file("text_encoders", clip_name2, "clip_name2"),
        ]
        return (_text_encoder(paths, type, device),)


def _text_encoder(paths: list[Path], kind: str, device: str) -> TextEncoder:
    manager = _manager()
    if device == "cpu" and manager.compute_device.type != "cpu":
        raise ValueError(
            "device: 'cpu' is not supported yet with a GPU; choose default (the memory manager offloads the "
            "encoder when the GPU is short of memory)"
        )
    folders = current_context().service(MODEL_FOLDERS_SERVICE)
    return load_text_encoder(manager, folders, paths, kind)


class VAELoader(ModelFolderBound):
    """A video VAE file."""

    FUNCTION = "load_vae"
    CATEGORY = CATEGORY
    RETURN_TYPES = ("VAE",)
    DESCRIPTION = "Loads a video VAE (Wan 2.1 / 2.2, LTX-Video, HunyuanVideo, Mochi) from the vae folder."

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"vae_name": cls.model_input("vae", "The VAE file.")}}

    def load_vae(self, vae_name: str) -> tuple[VideoVAE]:
        manager = _manager()
        vae = load_vae(manager, resolve_model_file("vae", vae_name, "vae_name"))
        _learn_previews(vae, manager)
        return (vae,)


class CLIPVisionLoader(ModelFolderBound):
    """A CLIP image encoder file (Wan 2.1 image-to-video uses ``clip_vision_h``)."""

    FUNCTION = "load_clip"
    CATEGORY = CATEGORY
    RETURN_TYPES = ("CLIP_VISION",)
    DESCRIPTION = "Loads a CLIP vision encoder from the clip_vision folder."

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"clip_name": cls.model_input("clip_vision", "The CLIP vision file.")}}

    def load_clip(self, clip_name: str) -> tuple[ClipVisionEncoder]:
        return (load_clip_vision(_manager(), resolve_model_file("clip_vision", clip_name, "clip_name")),)


class CheckpointLoaderSimple(ModelFolderBound):
    """A combined checkpoint: diffusion model, VAE and (Stable Diffusion 1.5) text encoder in one file."""

    FUNCTION = "load_checkpoint"
    CATEGORY = CATEGORY
    RETURN_TYPES = ("MODEL", "CLIP", "VAE")
    OUTPUT_TOOLTIPS = (
        "The diffusion model.",
        "The text encoder, when the file holds one (Stable Diffusion 1.5's do; LTX-Video's do not: load T5 with "
        "CLIPLoader type ltxv).",
        "The VAE, when the file holds one.",
    )
    DESCRIPTION = "Loads a checkpoint from the checkpoints folder: its diffusion model, text encoder and VAE."

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"ckpt_name": cls.model_input("checkpoints", "The checkpoint file.")}}

    def load_checkpoint(self, ckpt_name: str) -> tuple[DiffusionModel, TextEncoder | None, VideoVAE | None]:
        manager = _manager()
        folders = current_context().service(MODEL_FOLDERS_SERVICE)
        parts = load_checkpoint(manager, folders, resolve_model_file("checkpoints", ckpt_name, "ckpt_name"))
        if parts.vae is not None:
            _learn_previews(parts.vae, manager)
        return (parts.model, parts.clip, parts.vae)


class ImageOnlyCheckpointLoader(ModelFolderBound):
    """A checkpoint of an image-conditioned video model: its diffusion model, CLIP vision encoder and VAE."""

    FUNCTION = "load_checkpoint"
    CATEGORY = "loaders/video_models"
    RETURN_TYPES = ("MODEL", "CLIP_VISION", "VAE")
    DESCRIPTION = "Loads a Stable Video Diffusion checkpoint (svd, svd_xt) from the checkpoints folder."

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"ckpt_name": cls.model_input("checkpoints", "The checkpoint file.")}}

    def load_checkpoint(self, ckpt_name: str) -> tuple[DiffusionModel, ClipVisionEncoder, VideoVAE]:
        manager = _manager()
        parts = load_image_only_checkpoint(manager, resolve_model_file("checkpoints", ckpt_name, "ckpt_name"))
        _learn_previews(parts.vae, manager)
        return (parts.model, parts.clip_vision, parts.vae)


def _learn_previews(vae: VideoVAE, manager: ModelManager) -> None:
    """Samplers of this VAE's latent format show previews in its colours."""
    previews = current_context().services.get(LATENT_PREVIEWS_SERVICE)
    if previews is not None:
        previews.learn(vae, manager)


NODE_CLASS_MAPPINGS = {
    "UNETLoader": UNETLoader,
    "CLIPLoader": CLIPLoader,
    "DualCLIPLoader": DualCLIPLoader,
    "VAELoader": VAELoader,
    "CLIPVisionLoader": CLIPVisionLoader,
    "CheckpointLoaderSimple": CheckpointLoaderSimple,
    "ImageOnlyCheckpointLoader": ImageOnlyCheckpointLoader,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "UNETLoader": "Load Diffusion Model",
    "CLIPLoader": "Load CLIP",
    "DualCLIPLoader": "DualCLIPLoader",
    "VAELoader": "Load VAE",
    "CLIPVisionLoader": "Load CLIP Vision",
    "CheckpointLoaderSimple": "Load Checkpoint",
    "ImageOnlyCheckpointLoader": "Image Only Checkpoint Loader (img2vid model)",
}
