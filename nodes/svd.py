"""Stable Video Diffusion nodes in ComfyUI's vocabulary: ``SVD_img2vid_Conditioning`` (a start image as the
conditioning the SVD adapter reads, and the empty latent) and ``VideoLinearCFGGuidance`` (CFG rising over the
frames, as ``StableVideoDiffusionPipeline``'s ``min_guidance_scale`` / ``max_guidance_scale``). Its checkpoints load
with ``ImageOnlyCheckpointLoader`` (``nodes.loaders``)."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from graph.context import current_context
from models.clip_vision import ClipVisionOutput
from models.diffusion_model import DiffusionModel
from models.encoders import ClipVisionEncoder
from models.families.svd.latents import SVD_LATENT
from models.memory import MODELS_SERVICE, ModelManager
from models.video_vae import VideoVAE
from nodes.image import fit_frames
from nodes.latent import MAX_SIZE

CATEGORY = "conditioning/video_models"
AUGMENTATION_SEED = 0
"""The seed of ``augmentation_level``'s noise: a prompt reruns identically (ComfyUI draws it from the global RNG)."""


def _manager() -> ModelManager:
    return current_context().service(MODELS_SERVICE)


class SVD_img2vid_Conditioning:
    """A start image as SVD conditioning (CLIP image embedding, its VAE latent, fps, motion and augmentation) with an
    unconditional negative (zeros, as the pipeline's) and the empty latent to sample."""

    FUNCTION = "encode"
    CATEGORY = CATEGORY
    RETURN_TYPES = ("CONDITIONING", "CONDITIONING", "LATENT")
    RETURN_NAMES = ("positive", "negative", "latent")
    DESCRIPTION = (
        "Encodes a start image for Stable Video Diffusion: its CLIP image embedding and its VAE latent at the video "
        "size, with the fps and motion the video is conditioned on."
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "clip_vision": ("CLIP_VISION", {}),
                "init_image": ("IMAGE", {"tooltip": "The start image (one image)."}),
                "vae": ("VAE", {}),
                "width": ("INT", {"default": 1024, "min": 16, "max": MAX_SIZE, "step": 8}),
                "height": ("INT", {"default": 576, "min": 16, "max": MAX_SIZE, "step": 8}),
                "video_frames": ("INT", {"default": 14, "min": 1, "max": 4096}),
                "motion_bucket_id": (
                    "INT",
                    {"default": 127, "min": 1, "max": 1023, "tooltip": "Higher values give more motion."},
                ),
                "fps": (
                    "INT",
                    {"default": 6, "min": 1, "max": 1024, "tooltip": "The frame rate the video is made for."},
                ),
                "augmentation_level": (
                    "FLOAT",
                    {
                        "default": 0.0,
                        "min": 0.0,
                        "max": 10.0,
                        "step": 0.01,
                        "tooltip": "Noise added to the start image (0..1 pixels) before it is encoded.",
                    },
                ),
            }
        }

    def encode(
        self,
        clip_vision: ClipVisionEncoder,
        init_image: torch.Tensor,
        vae: VideoVAE,
        width: int,
        height: int,
        video_frames: int,
        motion_bucket_id: int,
        fps: int,
        augmentation_level: float,
    ) -> tuple[list[list[Any]], list[list[Any]], dict[str, torch.Tensor]]:
        fmt = vae.latent_format
        if (fmt.channels, fmt.spatial_ratio, fmt.temporal_ratio) != (SVD_LATENT.channels, SVD_LATENT.spatial_ratio, 1):
            raise ValueError(
                f"vae: {vae.name} codes a {fmt.name} latent; SVD_img2vid_Conditioning needs the SVD VAE (load the "
                "checkpoint with ImageOnlyCheckpointLoader)"
            )
        for name, value in (("width", width), ("height", height)):
            if value % fmt.spatial_ratio:
                raise ValueError(f"{name}: {value} is not a multiple of {fmt.spatial_ratio}")
        if isinstance(init_image, torch.Tensor) and init_image.dim() == 4 and init_image.shape[0] != 1:
            raise ValueError(
                f"init_image: {init_image.shape[0]} images; SVD starts from one (pick one with ImageFromBatch)"
            )
        pixels = fit_frames(init_image, width, height, 1, "init_image")
        manager = _manager()
        embeds = _image_embeds(clip_vision.encode(manager, init_image, "center"), clip_vision)
        if augmentation_level > 0:
            generator = torch.Generator().manual_seed(AUGMENTATION_SEED)
            pixels = pixels + torch.randn(pixels.shape, generator=generator) * augmentation_level
        image_latent = vae.encode(manager, pixels)
        extras = {"motion_bucket_id": motion_bucket_id, "fps": fps, "augmentation_level": augmentation_level}
        positive = [[embeds, {**extras, "concat_latent_image": image_latent}]]
        negative = [[torch.zeros_like(embeds), {**extras, "concat_latent_image": torch.zeros_like(image_latent)}]]
        shape = (1, fmt.channels, video_frames, height // fmt.spatial_ratio, width // fmt.spatial_ratio)
        return positive, negative, {"samples": torch.zeros(shape)}


def _image_embeds(output: ClipVisionOutput, clip_vision: ClipVisionEncoder) -> torch.Tensor:
    """The projected image embedding as conditioning ``[1, 1, dim]``."""
    if output.image_embeds is None:
        raise ValueError(
            f"clip_vision: {clip_vision.name} has no visual projection, so it gives no image embedding; SVD needs "
            "the checkpoint's own CLIP vision encoder"
        )
    return output.image_embeds.unsqueeze(0)


class VideoLinearCFGGuidance:
    """The model with CFG rising linearly over the frames: ``min_cfg`` at the first, the sampler's ``cfg`` at the
    last."""

    FUNCTION = "patch"
    CATEGORY = "sampling/video_models"
    RETURN_TYPES = ("MODEL",)
    DESCRIPTION = "Guides the first frame at min_cfg and each later frame more, up to the sampler's cfg at the last."

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "model": ("MODEL", {}),
                "min_cfg": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 100.0, "step": 0.5, "round": 0.01}),
            }
        }

    def patch(self, model: DiffusionModel, min_cfg: float) -> tuple[DiffusionModel]:
        return (dataclasses.replace(model, video_min_cfg=float(min_cfg)),)


NODE_CLASS_MAPPINGS = {
    "SVD_img2vid_Conditioning": SVD_img2vid_Conditioning,
    "VideoLinearCFGGuidance": VideoLinearCFGGuidance,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "SVD_img2vid_Conditioning": "SVD_img2vid_Conditioning",
    "VideoLinearCFGGuidance": "VideoLinearCFGGuidance",
}
