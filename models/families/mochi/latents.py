"""The Mochi VAE's latent space: 12 channels, 8x spatial and 6x temporal compression, and the published per-channel
statistics (``latents_mean`` / ``latents_std`` of the genmo/mochi-1-preview diffusers VAE config, which are also
``AutoencoderKLMochi``'s defaults; ``MochiPipeline`` un-normalises its latents with them before decoding)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from models.families.base import LatentFormat

__all__ = ["MOCHI_LATENT", "latent_format_from_config"]

# fmt: off
MOCHI_LATENT = LatentFormat(
    name="Mochi",
    channels=12,
    mean=(-0.06730895953510081, -0.038011381506090416, -0.07477820912866141, -0.05565264470995561,
          0.012767231469026969, -0.04703542746246419, 0.043896967884726704, -0.09346305707025976,
          -0.09918314763016893, -0.008729793427399178, -0.011931556316503654, -0.0321993391887285),
    std=(0.9263795028493863, 0.9248894543193766, 0.9393059390890617, 0.959253732819592,
         0.8244560132752793, 0.917259975397747, 0.9294154431013696, 1.3720942357788521,
         0.881393668867029, 0.9168315692124348, 0.9185249279345552, 0.9274757570805041),
    spatial_ratio=8,
    temporal_ratio=6,
)
# fmt: on


def latent_format_from_config(config: Mapping[str, Any]) -> LatentFormat:
    """The latent space an ``AutoencoderKLMochi`` config (a diffusers ``vae/config.json``) describes: its
    ``latents_mean`` and ``latents_std`` divided by ``scaling_factor``, as ``MochiPipeline`` un-normalises (the
    published values where the file leaves them out)."""
    channels = int(config.get("latent_channels", MOCHI_LATENT.channels))
    mean = _floats(config.get("latents_mean"), MOCHI_LATENT.mean)
    scale = float(config.get("scaling_factor", 1.0))
    std = tuple(value / scale for value in _floats(config.get("latents_std"), MOCHI_LATENT.std))
    if len(mean) != channels or len(std) != channels:
        raise ValueError(
            f"the Mochi VAE config has {channels} latent channels but {len(mean)} latents_mean and {len(std)} "
            "latents_std values"
        )
    spatial = math.prod(config.get("spatial_expansions", (2, 2, 2)))
    temporal = math.prod(config.get("temporal_expansions", (1, 2, 3)))
    if (channels, mean, std, spatial, temporal) == (
        MOCHI_LATENT.channels,
        MOCHI_LATENT.mean,
        MOCHI_LATENT.std,
        MOCHI_LATENT.spatial_ratio,
        MOCHI_LATENT.temporal_ratio,
    ):
        return MOCHI_LATENT
    return LatentFormat("Mochi", channels, mean, std, spatial, temporal)


def _floats(values: Sequence[float] | None, default: tuple[float, ...]) -> tuple[float, ...]:
    return default if values is None else tuple(float(value) for value in values)
