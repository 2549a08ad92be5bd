"""The LTX-Video kinds the generic loaders dispatch over (``models.families.catalog``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from models.errors import StateDictError
from models.families.base import LatentFormat
from models.families.kinds import TransformerFamily, VaeFamily
from models.families.ltx.adapter import LTXAdapter, ltx_adapter_from_config
from models.families.ltx.checkpoint import detect_ltx_transformer, is_ltx_transformer, ltx_transformer_from_state_dict
from models.families.ltx.latents import LTXV_LATENT, LtxvCodec
from models.families.ltx.vae_checkpoint import is_ltx_vae, ltx_vae_from_state_dict, ltx_vae_latent_format

__all__ = ["LTX_TRANSFORMERS", "LTX_VAES", "ltx_latent_format_from_config"]


def _detect(state_dict: Mapping[str, torch.Tensor], metadata: Mapping[str, str]) -> LTXAdapter:
    return LTXAdapter(detect_ltx_transformer(state_dict))


def ltx_latent_format_from_config(config: Mapping[str, Any]) -> LatentFormat:
    """``LTXV_LATENT`` for a diffusers ``AutoencoderKLLTXVideo`` config with its 128 channels, 32x and 8x."""
    found = (
        config.get("latent_channels", 128),
        config.get("spatial_compression_ratio") or 32,
        config.get("temporal_compression_ratio") or 8,
    )
    if found != (LTXV_LATENT.channels, LTXV_LATENT.spatial_ratio, LTXV_LATENT.temporal_ratio):
        raise StateDictError(
            "an LTX-Video VAE config with {} latent channels, {}x spatial and {}x temporal compression; the "
            "LTX-Video models take 128, 32x and 8x".format(*found)
        )
    return LTXV_LATENT


LTX_TRANSFORMERS = TransformerFamily(
    name="ltxv",
    label="an LTX-Video diffusion model",
    matches=is_ltx_transformer,
    detect=_detect,
    build=ltx_transformer_from_state_dict,
    adapter_from_config=ltx_adapter_from_config,
    diffusers_classes=("LTXVideoTransformer3DModel",),
)

LTX_VAES = VaeFamily(
    name="ltxv",
    label="an LTX-Video VAE",
    matches=is_ltx_vae,
    latent_format=ltx_vae_latent_format,
    build=ltx_vae_from_state_dict,
    latent_format_from_config=ltx_latent_format_from_config,
    diffusers_classes=("AutoencoderKLLTXVideo",),
    codec=LtxvCodec(),
)
