"""What the HunyuanVideo family contributes to the generic loaders (``models.families.kinds``): its diffusion
models and its VAE, from single files or diffusers folders."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import torch

from models.families.base import LatentFormat
from models.families.hunyuan.adapter import HunyuanAdapter
from models.families.hunyuan.checkpoint import (
    HunyuanTransformerSpec,
    detect_hunyuan_transformer,
    hunyuan_transformer_from_state_dict,
    is_hunyuan_transformer,
    variant_of_config,
)
from models.families.hunyuan.latents import HUNYUAN_LATENT, SCALING_FACTOR
from models.families.hunyuan.vae_checkpoint import detect_hunyuan_vae, hunyuan_vae_from_state_dict, is_hunyuan_vae
from models.families.kinds import TransformerFamily, VaeFamily

__all__ = [
    "HUNYUAN_TRANSFORMERS",
    "HUNYUAN_VAES",
    "hunyuan_adapter_from_config",
    "hunyuan_latent_format_from_config",
    "hunyuan_spec_from_config",
]

FAMILY = "hunyuan_video"


def hunyuan_spec_from_config(config: Mapping[str, Any]) -> HunyuanTransformerSpec:
    """The spec of a ``HunyuanVideoTransformer3DModel`` config (a diffusers ``transformer/config.json``): its
    constructor arguments, with diffusers' defaults for those the file leaves out."""
    from diffusers import HunyuanVideoTransformer3DModel

    parameters = inspect.signature(HunyuanVideoTransformer3DModel.__init__).parameters
    kwargs = {
        name: config.get(name, parameter.default)
        for name, parameter in parameters.items()
        if parameter.default is not inspect.Parameter.empty
    }
    kwargs["rope_axes_dim"] = tuple(kwargs["rope_axes_dim"])  # JSON keeps a list
    return HunyuanTransformerSpec(variant_of_config(kwargs), MappingProxyType(kwargs))


def hunyuan_adapter_from_config(config: Mapping[str, Any]) -> HunyuanAdapter:
    """The adapter for a diffusers ``transformer/config.json`` of HunyuanVideo."""
    return HunyuanAdapter(hunyuan_spec_from_config(config))


def hunyuan_latent_format_from_config(config: Mapping[str, Any]) -> LatentFormat:
    """The latent space of a diffusers ``AutoencoderKLHunyuanVideo`` ``vae/config.json`` (its ``scaling_factor``)."""
    channels = int(config.get("latent_channels", HUNYUAN_LATENT.channels))
    if channels != HUNYUAN_LATENT.channels:
        raise ValueError(f"a HunyuanVideo VAE with {channels} latent channels; HunyuanVideo's has 16")
    scaling = float(config.get("scaling_factor", SCALING_FACTOR))
    if scaling == SCALING_FACTOR:
        return HUNYUAN_LATENT
    return LatentFormat(
        name=HUNYUAN_LATENT.name,
        channels=channels,
        mean=HUNYUAN_LATENT.mean,
        std=(1.0 / scaling,) * channels,
        spatial_ratio=HUNYUAN_LATENT.spatial_ratio,
        temporal_ratio=HUNYUAN_LATENT.temporal_ratio,
    )


def _detect(state_dict: Mapping[str, torch.Tensor], _metadata: Mapping[str, str]) -> HunyuanAdapter:
    return HunyuanAdapter(detect_hunyuan_transformer(state_dict))


def _vae_latent_format(state_dict: Mapping[str, torch.Tensor]) -> LatentFormat:
    detect_hunyuan_vae(state_dict)  # raises for a file that does not fit
    return HUNYUAN_LATENT


HUNYUAN_TRANSFORMERS = TransformerFamily(
    name=FAMILY,
    label="a HunyuanVideo diffusion model",
    matches=is_hunyuan_transformer,
    detect=_detect,
    build=hunyuan_transformer_from_state_dict,
    adapter_from_config=hunyuan_adapter_from_config,
    diffusers_classes=("HunyuanVideoTransformer3DModel",),
)
"""HunyuanVideo text-to-video and image-to-video (v1 concat, v2 replace) diffusion models."""

HUNYUAN_VAES = VaeFamily(
    name=FAMILY,
    label="a HunyuanVideo VAE",
    matches=is_hunyuan_vae,
    latent_format=_vae_latent_format,
    build=hunyuan_vae_from_state_dict,
    latent_format_from_config=hunyuan_latent_format_from_config,
    diffusers_classes=("AutoencoderKLHunyuanVideo",),
)
"""The HunyuanVideo VAE (``hunyuan_video_vae_bf16``)."""
