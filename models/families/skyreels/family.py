"""The SkyReels-V2 family's entries for the loaders' catalog: its diffusion models (single files with the fps
embedding, and the ``transformer`` of its diffusers folders) and its pipeline folders, whose VAE (Wan 2.1's) and
UMT5 text encoder (``CLIPLoader`` type ``wan``) are the Wan family's."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import torch

from models.families.kinds import PipelineLayout, TransformerFamily
from models.families.skyreels.adapter import SkyReelsAdapter
from models.families.skyreels.checkpoint import (
    detect_skyreels_transformer,
    is_skyreels_transformer,
    skyreels_transformer_from_state_dict,
)
from models.families.skyreels.diffusers_config import skyreels_spec_from_config
from models.families.wan.family import WAN_TEXT, WAN_VAES
from models.families.wan.lora import WAN_LORA

__all__ = ["SKYREELS_PIPELINES", "SKYREELS_TRANSFORMERS"]


def _detect(tensors: Mapping[str, torch.Tensor], _metadata: Mapping[str, str]) -> SkyReelsAdapter:
    return SkyReelsAdapter(detect_skyreels_transformer(tensors))


def _adapter_from_config(config: Mapping[str, Any]) -> SkyReelsAdapter:
    return SkyReelsAdapter(skyreels_spec_from_config(config))


SKYREELS_TRANSFORMERS = TransformerFamily(
    name="skyreels",
    label="a SkyReels-V2 diffusion model",
    matches=is_skyreels_transformer,
    detect=_detect,
    build=skyreels_transformer_from_state_dict,
    adapter_from_config=_adapter_from_config,
    diffusers_classes=("SkyReelsV2Transformer3DModel",),
    lora=WAN_LORA,  # the Wan 2.1 network's layer names: Wan 2.1 LoRAs fit
)
SKYREELS_PIPELINES = PipelineLayout(
    pipelines=(
        "SkyReelsV2Pipeline",
        "SkyReelsV2ImageToVideoPipeline",
        "SkyReelsV2DiffusionForcingPipeline",
        "SkyReelsV2DiffusionForcingImageToVideoPipeline",
    ),
    transformer=SKYREELS_TRANSFORMERS,
    vae=WAN_VAES,
    text=WAN_TEXT,
    extra=MappingProxyType({"image_encoder": ("CLIPVisionModel", "CLIPVisionModelWithProjection")}),
)
