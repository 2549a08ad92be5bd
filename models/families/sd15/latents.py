"""The Stable Diffusion 1.5 VAE's latent space: 4 channels, 8x spatial compression, frames coded one by one (a
video is a batch of images), and the scaling factor 0.18215 as the only statistic (``AnimateDiffPipeline`` divides
latents by it before decoding)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from models.families.base import LatentFormat

__all__ = ["SCALING_FACTOR", "SD15_LATENT", "latent_format_from_config"]

SCALING_FACTOR = 0.18215
CHANNELS = 4
SPATIAL_RATIO = 8

SD15_LATENT = LatentFormat(
    name="Stable Diffusion 1.5",
    channels=CHANNELS,
    mean=(0.0,) * CHANNELS,
    std=(1.0 / SCALING_FACTOR,) * CHANNELS,
    spatial_ratio=SPATIAL_RATIO,
    temporal_ratio=1,
)


def latent_format_from_config(config: Mapping[str, Any]) -> LatentFormat:
    """The latent space of an ``AutoencoderKL`` config (a diffusers ``vae/config.json``): its latent channels,
    ``scaling_factor`` and spatial ratio (2 per down block after the first)."""
    channels = int(config.get("latent_channels", CHANNELS))
    scale = float(config.get("scaling_factor", SCALING_FACTOR))
    ratio = 2 ** (len(config.get("block_out_channels", (0,) * 4)) - 1)
    if (channels, scale, ratio) == (CHANNELS, SCALING_FACTOR, SPATIAL_RATIO):
        return SD15_LATENT
    return LatentFormat(SD15_LATENT.name, channels, (0.0,) * channels, (1.0 / scale,) * channels, ratio, 1)
