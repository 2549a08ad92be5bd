"""LTX-Video's latent space and VAE codec.

As in ComfyUI, an LTX-Video ``LATENT`` holds the VAE-normalised latent ``(mode - latents_mean) * scaling_factor /
latents_std`` (the statistics are buffers of the VAE, read from its file), which is also what the network works on:
the adapter's ``LatentFormat`` is the identity. The codec normalises on encode and un-normalises on decode, where
VAEs with ``timestep_conditioning`` (0.9.1 and later) are given the decode timestep of ``LTXPipeline``'s defaults
(``decode_timestep=0.0``, so no noise is mixed in).
"""

from __future__ import annotations

import torch

from models.families.base import LatentFormat
from models.families.kinds import VaeCodec

__all__ = ["DECODE_TIMESTEP", "LTXV_LATENT", "LtxvCodec", "denormalize", "normalize"]

CHANNELS = 128
SPATIAL_RATIO = 32
TEMPORAL_RATIO = 8
DECODE_TIMESTEP = 0.0
"""``LTXPipeline``'s default ``decode_timestep`` (with ``decode_noise_scale`` defaulting to it: no noise added)."""

LTXV_LATENT = LatentFormat(
    name="LTX-Video",
    channels=CHANNELS,
    mean=(0.0,) * CHANNELS,
    std=(1.0,) * CHANNELS,
    spatial_ratio=SPATIAL_RATIO,
    temporal_ratio=TEMPORAL_RATIO,
)
"""Identity statistics: the ``LATENT`` is already normalised by the VAE's own (see ``LtxvCodec``)."""


def _stats(module: torch.nn.Module, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float]:
    mean = module.latents_mean.view(1, -1, 1, 1, 1).to(like.device, like.dtype)
    std = module.latents_std.view(1, -1, 1, 1, 1).to(like.device, like.dtype)
    return mean, std, float(module.config.scaling_factor)


def normalize(module: torch.nn.Module, raw: torch.Tensor) -> torch.Tensor:
    """A raw ``AutoencoderKLLTXVideo`` latent as the normalised ``LATENT`` (``LTXPipeline._normalize_latents``)."""
    mean, std, scale = _stats(module, raw)
    return (raw - mean) * scale / std


def denormalize(module: torch.nn.Module, latent: torch.Tensor) -> torch.Tensor:
    """A normalised ``LATENT`` as the raw latent the VAE decodes (``LTXPipeline._denormalize_latents``)."""
    mean, std, scale = _stats(module, latent)
    return latent * std / scale + mean


class LtxvCodec(VaeCodec):
    """``AutoencoderKLLTXVideo`` between video in -1..1 and the normalised ``LATENT`` (posterior mode on encode)."""

    def encode(self, module: torch.nn.Module, video: torch.Tensor) -> torch.Tensor:
        return normalize(module, module.encode(video).latent_dist.mode())

    def decode(self, module: torch.nn.Module, latent: torch.Tensor) -> torch.Tensor:
        raw = denormalize(module, latent)
        timestep = None
        if module.config.timestep_conditioning:
            timestep = torch.full((latent.shape[0],), DECODE_TIMESTEP, device=latent.device, dtype=latent.dtype)
        return module.decode(raw, timestep, return_dict=False)[0]
