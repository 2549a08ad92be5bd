"""The HunyuanVideo VAE's latent space: 16 channels, 8x spatial and 4x temporal compression, scaled by the VAE's
``scaling_factor`` 0.476986 and not shifted (diffusers' HunyuanVideo pipelines multiply raw latents by it before the
transformer and divide after; ComfyUI's HunyuanVideo latent format does the same)."""

from __future__ import annotations

from models.families.base import LatentFormat

__all__ = ["HUNYUAN_LATENT", "SCALING_FACTOR"]

SCALING_FACTOR = 0.476986
"""``AutoencoderKLHunyuanVideo``'s ``scaling_factor`` (the released VAE config's)."""
CHANNELS = 16

HUNYUAN_LATENT = LatentFormat(
    name="HunyuanVideo",
    channels=CHANNELS,
    mean=(0.0,) * CHANNELS,
    std=(1.0 / SCALING_FACTOR,) * CHANNELS,
    spatial_ratio=8,
    temporal_ratio=4,
)
"""``process_in(raw) = raw * 0.476986`` (up to float rounding of the division by ``1 / 0.476986``)."""
