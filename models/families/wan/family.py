"""The Wan family's entries for the loaders' catalog: its diffusion models, VAEs, UMT5 text encoder (``CLIPLoader``
type ``wan``) and diffusers pipeline folders."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import torch

from models.families.base import LatentFormat
from models.families.kinds import (
    PartRunner,
    PipelineLayout,
    PromptEncoding,
    TextEncoderKind,
    TextEncoderPart,
    TransformerFamily,
    VaeFamily,
)
from models.families.wan.adapter import WanAdapter
from models.families.wan.checkpoint import detect_wan_transformer, is_wan_transformer, wan_transformer_from_state_dict
from models.families.wan.diffusers_config import wan_spec_from_config
from models.families.wan.latents import WAN21_LATENT, latent_format_for_channels
from models.families.wan.lora import WAN_LORA
from models.families.wan.vae_checkpoint import detect_wan_vae, is_wan_vae, wan_vae_from_state_dict
from models.text_encoders.umt5 import is_umt5, umt5_from_state_dict
from models.text_encoders.wan_prompt import WAN_MAX_LENGTH, encode_wan_prompts

__all__ = ["WAN_PIPELINES", "WAN_TEXT", "WAN_TRANSFORMERS", "WAN_VAES"]

UMT5_XXL_FFN = 10240


def _detect_transformer(tensors: Mapping[str, torch.Tensor], _metadata: Mapping[str, str]) -> WanAdapter:
    return WanAdapter(detect_wan_transformer(tensors))


def _adapter_from_config(config: Mapping[str, Any]) -> WanAdapter:
    return WanAdapter(wan_spec_from_config(config))


def _vae_latent_format(tensors: Mapping[str, torch.Tensor]) -> LatentFormat:
    return latent_format_for_channels(int(detect_wan_vae(tensors).config["z_dim"]))


def _vae_latent_format_from_config(config: Mapping[str, Any]) -> LatentFormat:
    return latent_format_for_channels(int(config.get("z_dim", WAN21_LATENT.channels)))


def _encode(run: PartRunner, tokenizers: tuple[Any, ...], text: str, dtype: torch.dtype) -> PromptEncoding:
    """UMT5-XXL embeddings as the Wan pipelines compute them: 512 tokens, zero past the prompt."""

    def encode(module: torch.nn.Module) -> torch.Tensor:
        return encode_wan_prompts(tokenizers[0], module, [text], WAN_MAX_LENGTH, dtype=dtype)

    return PromptEncoding(run(0, encode), MappingProxyType({}))


WAN_TRANSFORMERS = TransformerFamily(
    name="wan",
    label="a Wan diffusion model",
    matches=is_wan_transformer,
    detect=_detect_transformer,
    build=wan_transformer_from_state_dict,
    adapter_from_config=_adapter_from_config,
    diffusers_classes=("WanTransformer3DModel", "WanVACETransformer3DModel"),
    lora=WAN_LORA,
)
WAN_VAES = VaeFamily(
    name="wan",
    label="a Wan VAE",
    matches=is_wan_vae,
    latent_format=_vae_latent_format,
    build=wan_vae_from_state_dict,
    latent_format_from_config=_vae_latent_format_from_config,
    diffusers_classes=("AutoencoderKLWan",),
)
UMT5_XXL = TextEncoderPart(
    label="a UMT5 text encoder",
    matches=is_umt5,
    build=umt5_from_state_dict,
    tokenizer="umt5-xxl",
    tokenizer_repo="google/umt5-xxl",
    diffusers_classes=("UMT5EncoderModel",),
    work_bytes=WAN_MAX_LENGTH * UMT5_XXL_FFN * 16,  # a layer's feed-forward activations, with slack
)
WAN_TEXT = TextEncoderKind(name="wan", parts=(UMT5_XXL,), encode=_encode)
WAN_PIPELINES = PipelineLayout(
    pipelines=("WanPipeline", "WanImageToVideoPipeline", "WanVACEPipeline"),
    transformer=WAN_TRANSFORMERS,
    vae=WAN_VAES,
    text=WAN_TEXT,
    extra=MappingProxyType({"image_encoder": ("CLIPVisionModel", "CLIPVisionModelWithProjection")}),
)
