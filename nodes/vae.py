"""VAE nodes: ``VAEDecode``, ``VAEEncode``, ``VAEDecodeTiled`` for video latents, and ``VAEMemoryOptions``, which
sets how a VAE tiles and slices wherever it codes."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from graph.context import current_context
from models.memory import MODELS_SERVICE
from models.vae_tiling import TILING_MODES, TileSettings, VaeMemoryOptions
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


def _tile_inputs() -> dict[str, tuple[str, dict[str, Any]]]:
    """``VAEDecodeTiled``'s tile inputs (ComfyUI's sockets)."""
    return {
        "tile_size": ("INT", {"default": 512, "min": 64, "max": 4096, "step": 32}),
        "overlap": ("INT", {"default": 64, "min": 0, "max": 4096, "step": 32}),
        "temporal_size": ("INT", {"default": 64, "min": 8, "max": 4096, "step": 4}),
        "temporal_overlap": ("INT", {"default": 8, "min": 4, "max": 4096, "step": 4}),
    }


def _tile_settings(tile_size: int, overlap: int, temporal_size: int, temporal_overlap: int) -> TileSettings:
    """The tiles of the four inputs; ``ValueError`` naming the input at fault."""
    if overlap >= tile_size // 2:
        raise ValueError(f"overlap: {overlap} must be below half the tile size ({tile_size})")
    if temporal_overlap >= temporal_size:
        raise ValueError(f"temporal_overlap: {temporal_overlap} must be below temporal_size ({temporal_size})")
    return TileSettings(tile_size, overlap, temporal_size, temporal_overlap)


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
                **_tile_inputs(),
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
        tiles = _tile_settings(tile_size, overlap, temporal_size, temporal_overlap)
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


class VAEMemoryOptions:
    """The VAE with tiling and slicing set for every node that encodes or decodes with it."""

    FUNCTION = "configure"
    CATEGORY = CATEGORY
    RETURN_TYPES = ("VAE",)
    OUTPUT_TOOLTIPS = ("The VAE, coding with these options (the input VAE stays as it was).",)
    DESCRIPTION = (
        "How the VAE encodes and decodes wherever it is used (VAEDecode, VAEEncode, image-to-video nodes). tiling: "
        "auto codes whole and retries in tiles after running out of memory; always codes in tiles (less memory, "
        "seams possible at small overlaps); never codes whole and reports running out of memory. slicing codes the "
        "videos of a batch one at a time, and for image VAEs (SD1.5, AnimateDiff) one frame at a time."
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "vae": ("VAE", {}),
                "tiling": (list(TILING_MODES), {"default": "auto", "tooltip": "When to code in tiles."}),
                **_tile_inputs(),
                "slicing": ("BOOLEAN", {"default": False, "tooltip": "Code one video (or image frame) at a time."}),
            }
        }

    def configure(
        self,
        vae: VideoVAE,
        tiling: str,
        tile_size: int,
        overlap: int,
        temporal_size: int,
        temporal_overlap: int,
        slicing: bool,
    ) -> tuple[VideoVAE]:
        if tiling not in TILING_MODES:
            raise ValueError(f"tiling: {tiling!r} is not one of {', '.join(TILING_MODES)}")
        tiles = _tile_settings(tile_size, overlap, temporal_size, temporal_overlap)
        options = VaeMemoryOptions(tiling, tiles, slicing)  # type: ignore[arg-type]
        return (dataclasses.replace(vae, options=options),)


NODE_CLASS_MAPPINGS = {
    "VAEDecode": VAEDecode,
    "VAEDecodeTiled": VAEDecodeTiled,
    "VAEEncode": VAEEncode,
    "VAEMemoryOptions": VAEMemoryOptions,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "VAEMemoryOptions": "VAE Memory Options (tiling, slicing)",
    "VAEDecode": "VAE Decode",
    "VAEDecodeTiled": "VAE Decode (Tiled)",
    "VAEEncode": "VAE Encode",
}
