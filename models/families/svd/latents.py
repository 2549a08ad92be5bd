"""The SVD VAE's latent space: Stable Diffusion's 4-channel latent (8x spatial compression), scaled by 0.18215 for
the UNet, with frames coded one by one (no temporal compression: frames are the VAE's batch)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from models.families.base import LatentFormat

__all__ = ["SCALING_FACTOR", "SVD_LATENT", "latent_format_from_config"]

SCALING_FACTOR = 0.18215
"""``AutoencoderKLTemporalDecoder``'s ``scaling_factor`` in the released configs (the UNet works on raw * factor)."""

SVD_LATENT = LatentFormat(
    name="SVD",
    channels=4,
    mean=(0.0,) * 4,
    std=(1.0 / SCALING_FACTOR,) * 4,
    spatial_ratio=8,
    temporal_ratio=1,
)


def latent_format_from_config(config: Mapping[str, Any]) -> LatentFormat:
    """The latent space of an ``AutoencoderKLTemporalDecoder`` config (a diffusers ``vae/config.json``)."""
    channels = int(config.get("latent_channels", SVD_LATENT.channels))
    scale = float(config.get("scaling_factor", SCALING_FACTOR))
    spatial = 2 ** (len(config.get("block_out_channels", (0,) * 4)) - 1)
    if (channels, scale, spatial) == (SVD_LATENT.channels, SCALING_FACTOR, SVD_LATENT.spatial_ratio):
        return SVD_LATENT
    return LatentFormat("SVD", channels, (0.0,) * channels, (1.0 / scale,) * channels, spatial, 1)
