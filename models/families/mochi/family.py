"""What the Mochi family contributes to the generic loaders (``models.families.kinds``): its diffusion models and
its VAE, from single files in Genmo's layout or from diffusers folders (genmo/mochi-1-preview)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from models.families.base import LatentFormat
from models.families.kinds import TransformerFamily, VaeFamily
from models.families.mochi.adapter import MochiAdapter
from models.families.mochi.checkpoint import (
    detect_mochi_transformer,
    is_mochi_transformer,
    mochi_spec_from_config,
    mochi_transformer_from_state_dict,
)
from models.families.mochi.latents import MOCHI_LATENT, latent_format_from_config
from models.families.mochi.vae_checkpoint import detect_mochi_vae, is_mochi_vae, mochi_vae_from_state_dict

__all__ = ["MOCHI_TRANSFORMERS", "MOCHI_VAES"]


def _detect(state_dict: Mapping[str, torch.Tensor], metadata: Mapping[str, str]) -> MochiAdapter:
    return MochiAdapter(detect_mochi_transformer(state_dict))


def _adapter_from_config(config: Mapping[str, Any]) -> MochiAdapter:
    return MochiAdapter(mochi_spec_from_config(config))


def _vae_latent_format(state_dict: Mapping[str, torch.Tensor]) -> LatentFormat:
    detect_mochi_vae(state_dict)  # raises for a file that does not fit
    return MOCHI_LATENT


MOCHI_TRANSFORMERS = TransformerFamily(
    name="mochi",
    label="a Mochi diffusion model",
    matches=is_mochi_transformer,
    detect=_detect,
    build=mochi_transformer_from_state_dict,
    adapter_from_config=_adapter_from_config,
    diffusers_classes=("MochiTransformer3DModel",),
)

MOCHI_VAES = VaeFamily(
    name="mochi",
    label="a Mochi VAE",
    matches=is_mochi_vae,
    latent_format=_vae_latent_format,
    build=mochi_vae_from_state_dict,
    latent_format_from_config=latent_format_from_config,
    diffusers_classes=("AutoencoderKLMochi",),
)
