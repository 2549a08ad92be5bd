"""CogVideoX's latent space: ``AutoencoderKLCogVideoX`` codes 16 channels at 8x spatial and 4x temporal compression.

The pipelines multiply the VAE's raw latents by ``scaling_factor`` (1.15258426 for 2B, 0.7 for 5B and 1.5) and divide
them by it before decoding, so the network's space is ``raw / std`` with ``std = 1 / scaling_factor`` and no mean.
The image-to-video pipelines feed their image latents scaled by ``scaling_factor`` too, except where the VAE config
sets ``invert_scale_latents`` (CogVideoX 1.5 image-to-video was trained on raw latents divided by it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from models.families.base import LatentFormat

__all__ = ["DEFAULT_SCALING_FACTOR", "CogVideoXLatentFormat", "latent_format_from_config"]

DEFAULT_SCALING_FACTOR = 1.15258426  # AutoencoderKLCogVideoX's default (the 2B release's)
DEFAULT_TEMPORAL_RATIO = 4


@dataclass(frozen=True)
class CogVideoXLatentFormat(LatentFormat):
    """The CogVideoX latent space of one VAE config, with the factor its image latents are conditioned by.

    Args:
        image_scale: raw image latent -> the image-to-video network's image channels (``scaling_factor``, or its
            inverse under ``invert_scale_latents``).
    """

    image_scale: float = DEFAULT_SCALING_FACTOR


def latent_format_from_config(config: Mapping[str, Any]) -> CogVideoXLatentFormat:
    """The latent space an ``AutoencoderKLCogVideoX`` config (a diffusers ``vae/config.json``) describes."""
    channels = int(config.get("latent_channels", 16))
    scaling = float(config.get("scaling_factor", DEFAULT_SCALING_FACTOR))
    if not scaling > 0:
        raise ValueError(f"the CogVideoX VAE config has scaling_factor {scaling}; it must be positive")
    stages = len(config.get("block_out_channels", (128, 256, 256, 512)))
    return CogVideoXLatentFormat(
        name="CogVideoX",
        channels=channels,
        mean=(0.0,) * channels,
        std=(1.0 / scaling,) * channels,
        spatial_ratio=2 ** (stages - 1),
        temporal_ratio=int(config.get("temporal_compression_ratio", DEFAULT_TEMPORAL_RATIO)),
        image_scale=1.0 / scaling if config.get("invert_scale_latents", False) else scaling,
    )
