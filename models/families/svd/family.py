"""What Stable Video Diffusion contributes to the generic loaders (``models.families.kinds``): its UNet and its VAE
from single-file checkpoints in the SGM layout, and ``StableVideoDiffusionPipeline`` folders (network ``unet``,
no text encoder, CLIP vision ``image_encoder``)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import torch

from models.families.base import LatentFormat
from models.families.kinds import PipelineLayout, TransformerFamily, VaeFamily
from models.families.svd.adapter import SvdAdapter
from models.families.svd.latents import latent_format_from_config
from models.families.svd.unet_checkpoint import (
    detect_svd_unet,
    is_svd_unet,
    svd_spec_from_config,
    svd_unet_from_state_dict,
)
from models.families.svd.vae_checkpoint import SvdCodec, detect_svd_vae, is_svd_vae, svd_vae_from_state_dict

__all__ = ["SVD_PIPELINES", "SVD_UNETS", "SVD_VAES"]


def _detect(state_dict: Mapping[str, torch.Tensor], metadata: Mapping[str, str]) -> SvdAdapter:
    return SvdAdapter(detect_svd_unet(state_dict))


def _adapter_from_config(config: Mapping[str, Any]) -> SvdAdapter:
    return SvdAdapter(svd_spec_from_config(config))


def _vae_latent_format(state_dict: Mapping[str, torch.Tensor]) -> LatentFormat:
    return latent_format_from_config(detect_svd_vae(state_dict).config)  # raises for a file that does not fit


SVD_UNETS = TransformerFamily(
    name="svd",
    label="a Stable Video Diffusion UNet",
    matches=is_svd_unet,
    detect=_detect,
    build=svd_unet_from_state_dict,
    adapter_from_config=_adapter_from_config,
    diffusers_classes=("UNetSpatioTemporalConditionModel",),
)

SVD_VAES = VaeFamily(
    name="svd",
    label="a Stable Video Diffusion VAE",
    matches=is_svd_vae,
    latent_format=_vae_latent_format,
    build=svd_vae_from_state_dict,
    latent_format_from_config=latent_format_from_config,
    diffusers_classes=("AutoencoderKLTemporalDecoder",),
    codec=SvdCodec(),
)

SVD_PIPELINES = PipelineLayout(
    pipelines=("StableVideoDiffusionPipeline",),
    transformer=SVD_UNETS,
    vae=SVD_VAES,
    text=None,
    extra=MappingProxyType({"image_encoder": ("CLIPVisionModelWithProjection",)}),
    network="unet",
)
