"""Latent nodes for video: empty latents and trimming (``EmptyHunyuanLatentVideo``, ``EmptyMochiLatentVideo``,
``TrimVideoLatent``)."""

from __future__ import annotations

from typing import Any

import torch

from models.families.mochi.latents import MOCHI_LATENT

CATEGORY = "latent/video"
MAX_SIZE = 16384
SPATIAL_RATIO, TEMPORAL_RATIO, CHANNELS = 8, 4, 16  # the 16-channel, 8x / 4x latent of Wan 2.1 and HunyuanVideo


class EmptyHunyuanLatentVideo:
    """Zeros in the 16-channel video latent (Wan 2.1 and 2.2 14B text-to-video start from it)."""

    FUNCTION = "generate"
    CATEGORY = CATEGORY
    RETURN_TYPES = ("LATENT",)
    DESCRIPTION = "An empty video latent: width/8 x height/8, (length - 1)/4 + 1 latent frames, 16 channels."

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "width": ("INT", {"default": 848, "min": 16, "max": MAX_SIZE, "step": 16}),
                "height": ("INT", {"default": 480, "min": 16, "max": MAX_SIZE, "step": 16}),
                "length": ("INT", {"default": 25, "min": 1, "max": MAX_SIZE, "step": 4, "tooltip": "Video frames."}),
                "batch_size": ("INT", {"default": 1, "min": 1, "max": 4096}),
            }
        }

    def generate(self, width: int, height: int, length: int, batch_size: int) -> tuple[dict[str, torch.Tensor]]:
        check_video_size(width, height, length)
        frames = (length - 1) // TEMPORAL_RATIO + 1
        samples = torch.zeros(batch_size, CHANNELS, frames, height // SPATIAL_RATIO, width // SPATIAL_RATIO)
        return ({"samples": samples},)


class TrimVideoLatent:
    """Drops the first latent frames (after sampling with reference frames prepended)."""

    FUNCTION = "trim"
    CATEGORY = "latent/video"
    RETURN_TYPES = ("LATENT",)
    DESCRIPTION = "Removes trim_amount latent frames from the start of a video latent."

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "samples": ("LATENT", {}),
                "trim_amount": ("INT", {"default": 0, "min": 0, "max": 99999}),
            }
        }

    def trim(self, samples: dict[str, Any], trim_amount: int) -> tuple[dict[str, Any]]:
        latent = latent_samples(samples, "samples")
        if latent.dim() != 5:
            raise ValueError(
                f"samples: a video latent is [batch, channels, frames, height, width], got {tuple(latent.shape)}"
            )
        if trim_amount >= latent.shape[2]:
            raise ValueError(f"trim_amount: {trim_amount} would remove all {latent.shape[2]} latent frames")
        trimmed = dict(samples)
        trimmed["samples"] = latent[:, :, trim_amount:].clone()
        if isinstance(samples.get("noise_mask"), torch.Tensor) and samples["noise_mask"].dim() == 5:
            trimmed["noise_mask"] = samples["noise_mask"][:, :, trim_amount:].clone()
        return (trimmed,)


def latent_samples(value: Any, name: str) -> torch.Tensor:
    """The ``samples`` tensor of a ``LATENT`` input; ``ValueError`` naming the input for anything else."""
    if not isinstance(value, dict) or not isinstance(value.get("samples"), torch.Tensor):
        raise ValueError(f"{name}: not a LATENT (a dict with a 'samples' tensor)")
    return value["samples"]


def check_video_size(width: int, height: int, length: int, spatial_ratio: int = SPATIAL_RATIO) -> None:
    """``ValueError`` naming the input unless the size is a multiple of ``2 * spatial_ratio`` (the VAE's
    compression and the model's 2x2 patches) and ``length`` is 1 + 4k."""
    multiple = 2 * spatial_ratio
    for name, value in (("width", width), ("height", height)):
        if value % multiple:
            raise ValueError(
                f"{name}: {value} is not a multiple of {multiple} (the latent is 1/{spatial_ratio} the size and the "
                f"model patches it in 2x2); use {value - value % multiple or multiple}"
            )
    if (length - 1) % TEMPORAL_RATIO:
        raise ValueError(
            f"length: {length} frames cannot be coded; video VAEs take 1 + 4k frames (e.g. {length - (length - 1) % 4})"
        )


class EmptyMochiLatentVideo:
    """Zeros in Mochi's 12-channel video latent (8x spatial, 6x temporal compression)."""

    FUNCTION = "generate"
    CATEGORY = CATEGORY
    RETURN_TYPES = ("LATENT",)
    DESCRIPTION = "An empty Mochi video latent: width/8 x height/8, (length - 1)/6 + 1 latent frames, 12 channels."

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "width": ("INT", {"default": 848, "min": 16, "max": MAX_SIZE, "step": 16}),
                "height": ("INT", {"default": 480, "min": 16, "max": MAX_SIZE, "step": 16}),
                "length": ("INT", {"default": 25, "min": 7, "max": MAX_SIZE, "step": 6, "tooltip": "Video frames."}),
                "batch_size": ("INT", {"default": 1, "min": 1, "max": 4096}),
            }
        }

    def generate(self, width: int, height: int, length: int, batch_size: int) -> tuple[dict[str, torch.Tensor]]:
        fmt = MOCHI_LATENT
        check_video_size(width, height, 1, fmt.spatial_ratio)  # the size; Mochi's frame count is checked next
        if (length - 1) % fmt.temporal_ratio:
            raise ValueError(
                f"length: {length} frames cannot be coded; the Mochi VAE takes 1 + {fmt.temporal_ratio}k frames "
                f"(e.g. {length - (length - 1) % fmt.temporal_ratio})"
            )
        size = (height // fmt.spatial_ratio, width // fmt.spatial_ratio)
        return ({"samples": torch.zeros(batch_size, fmt.channels, fmt.latent_frames(length), *size)},)


NODE_CLASS_MAPPINGS = {
    "EmptyHunyuanLatentVideo": EmptyHunyuanLatentVideo,
    "TrimVideoLatent": TrimVideoLatent,
    "EmptyMochiLatentVideo": EmptyMochiLatentVideo,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "EmptyHunyuanLatentVideo": "Empty HunyuanVideo Latent",
    "TrimVideoLatent": "Trim Video Latent",
    "EmptyMochiLatentVideo": "Empty Mochi Latent Video",
}
