"""What Stable Diffusion 1.5 contributes to the generic loaders (``models.families.kinds``): its UNet and VAE from
single files in the LDM layout (checkpoints included), and from diffusers ``StableDiffusionPipeline`` folders."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from models.families.base import LatentFormat
from models.families.kinds import TransformerFamily, VaeFamily
from models.families.sd15.adapter import Sd15Adapter
from models.families.sd15.latents import latent_format_from_config
from models.families.sd15.lora import SD15_LORA
from models.families.sd15.unet_checkpoint import (
    detect_sd15_unet,
    is_sd15_unet,
    sd15_spec_from_config,
    sd15_unet_from_state_dict,
)
from models.families.sd15.vae_checkpoint import FramesVaeCodec, detect_sd15_vae, is_sd15_vae, sd15_vae_from_state_dict

__all__ = ["SD15_UNETS", "SD15_VAES"]


def _detect(state_dict: Mapping[str, torch.Tensor], metadata: Mapping[str, str]) -> Sd15Adapter:
    return Sd15Adapter(detect_sd15_unet(state_dict))


def _adapter_from_config(config: Mapping[str, Any]) -> Sd15Adapter:
    return Sd15Adapter(sd15_spec_from_config(config))


def _vae_latent_format(state_dict: Mapping[str, torch.Tensor]) -> LatentFormat:
    return latent_format_from_config(detect_sd15_vae(state_dict))


SD15_UNETS = TransformerFamily(
    name="sd15",
    label="a Stable Diffusion 1.5 UNet",
    matches=is_sd15_unet,
    detect=_detect,
    build=sd15_unet_from_state_dict,
    adapter_from_config=_adapter_from_config,
    diffusers_classes=("UNet2DConditionModel",),
    lora=SD15_LORA,
)

SD15_VAES = VaeFamily(
    name="sd15",
    label="a Stable Diffusion 1.5 VAE",
    matches=is_sd15_vae,
    latent_format=_vae_latent_format,
    build=sd15_vae_from_state_dict,
    latent_format_from_config=latent_format_from_config,
    diffusers_classes=("AutoencoderKL",),
    codec=FramesVaeCodec(),
)
