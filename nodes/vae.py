"""VAE nodes: ``VAEDecode``, ``VAEEncode``, ``VAEDecodeTiled`` for video latents."""

from __future__ import annotations

from typing import Any

import torch

from graph.context import current_context
from models.memory import MODELS_SERVICE
from models.vae_tiling import TileSettings
from models.video_vae import VideoVAE
from nodes.latent import latent_samples

CATEGORY = "latent"


class VAEDecode:
    FUNCTION = "decode"
    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE",)
    DESCRIPTION = "Decodes a latent into video frames (out of memory: retried in tiles)."

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"samples": ("LATENT", {}), "vae": ("VAE", {})}}

    def decode(self, samples: dict[str, Any], vae: VideoVAE) -> tuple[torch.Tensor]:
        return (vae.decode(current_context().service(MODELS_SERVICE), latent_samples(samples, "samples")),)


class VAEDecodeTiled:
    FUNCTION = "decode"
    CATEGORY = "_for_testing"
    RETURN_TYPES = ("IMAGE",)
    DESCRIPTION = (
        "Decodes a latent in tiles to save memory: spatial tiles of tile_size pixels overlapping by overlap, and for "
        "the VAEs that also tile time (HunyuanVideo, LTX-Video) temporal tiles of temporal_size frames overlapping "
        "by temporal_overlap. The Wan VAEs already decode one latent frame at a time (a causal cache); SVD's temporal "
        "decoder cannot tile space and decodes temporal_size frames at a time instead."
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "samples": ("LATENT", {}),
                "vae": ("VAE", {}),
                "tile_size": ("INT", {"default": 512, "min": 64, "max": 4096, "step": 32}),
                "overlap": ("INT", {"default": 64, "min": 0, "max": 4096, "step": 32}),
                "temporal_size": ("INT", {"default": 64, "min": 8, "max": 4096, "step": 4}),
                "temporal_overlap": ("INT", {"default": 8, "min": 4, "max": 4096, "step": 4}),
            }
        }

    def decode(
        self,
        samples: dict[str, Any],
        vae: VideoVAE,
        tile_size: int,
        overlap: int,
        temporal_size: int = 64,
        temporal_overlap: int = 8,
    ) -> tuple[torch.Tensor]:
        if overlap >= tile_size // 2:
            raise ValueError(f"overlap: {overlap} must be below half the tile size ({tile_size})")
        if temporal_overlap >= temporal_size:
            raise ValueError(f"temporal_overlap: {temporal_overlap} must be below temporal_size ({temporal_size})")
        tiles = TileSettings(tile_size, overlap, temporal_size, temporal_overlap)
        return (vae.decode(current_context().service(MODELS_SERVICE), latent_samples(samples, "samples"), tiles),)


class VAEEncode:
    FUNCTION = "encode"
    CATEGORY = CATEGORY
    RETURN_TYPES = ("LATENT",)
    DESCRIPTION = "Encodes video frames (1 + 4k of them) into a latent."

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"pixels": ("IMAGE", {}), "vae": ("VAE", {})}}

    def encode(self, pixels: torch.Tensor, vae: VideoVAE) -> tuple[dict[str, torch.Tensor]]:
        return ({"samples": vae.encode(current_context().service(MODELS_SERVICE), pixels)},)


NODE_CLASS_MAPPINGS = {"VAEDecode": VAEDecode, "VAEDecodeTiled": VAEDecodeTiled, "VAEEncode": VAEEncode}
NODE_DISPLAY_NAME_MAPPINGS = {
    "VAEDecode": "VAE Decode",
    "VAEDecodeTiled": "VAE Decode (Tiled)",
    "VAEEncode": "VAE Encode",
}
