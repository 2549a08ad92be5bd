"""Every model family the loaders know, as the kinds of ``models.families.kinds``: loaders look files up here by
their tensors, ``CLIPLoader`` types by name, and diffusers pipeline folders by their class name."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from models.families.animatediff.family import SD15_PIPELINES
from models.families.cogvideox.family import COGVIDEOX_PIPELINES, COGVIDEOX_TRANSFORMERS, COGVIDEOX_VAES
from models.families.hunyuan.family import HUNYUAN_TRANSFORMERS, HUNYUAN_VAES
from models.families.kinds import PipelineLayout, TextEncoderKind, TextEncoderPart, TransformerFamily, VaeFamily
from models.families.ltx.family import LTX_TRANSFORMERS, LTX_VAES
from models.families.mochi.family import MOCHI_TRANSFORMERS, MOCHI_VAES
from models.families.sd15.family import SD15_UNETS, SD15_VAES
from models.families.skyreels.family import SKYREELS_PIPELINES, SKYREELS_TRANSFORMERS
from models.families.svd.family import SVD_PIPELINES, SVD_UNETS, SVD_VAES
from models.families.wan.family import WAN_PIPELINES, WAN_TEXT, WAN_TRANSFORMERS, WAN_VAES
from models.text_encoders.kinds import COGVIDEOX_TEXT, HUNYUAN_VIDEO_TEXT, LTXV_TEXT, MOCHI_TEXT, STABLE_DIFFUSION_TEXT

__all__ = [
    "PIPELINE_LAYOUTS",
    "TEXT_ENCODER_KINDS",
    "TRANSFORMER_FAMILIES",
    "VAE_FAMILIES",
    "family_of_network_class",
    "layout_for_pipeline",
    "network_families",
    "text_encoder_kind",
    "text_part_of",
    "transformer_family_of",
    "vae_family_of",
]

TRANSFORMER_FAMILIES: tuple[TransformerFamily, ...] = (
    WAN_TRANSFORMERS,
    LTX_TRANSFORMERS,
    HUNYUAN_TRANSFORMERS,
    MOCHI_TRANSFORMERS,
    COGVIDEOX_TRANSFORMERS,
    SKYREELS_TRANSFORMERS,
    SVD_UNETS,
    SD15_UNETS,
)
VAE_FAMILIES: tuple[VaeFamily, ...] = (
    WAN_VAES,
    LTX_VAES,
    HUNYUAN_VAES,
    MOCHI_VAES,
    COGVIDEOX_VAES,
    SVD_VAES,
    SD15_VAES,
)
TEXT_ENCODER_KINDS: tuple[TextEncoderKind, ...] = (
    WAN_TEXT,
    LTXV_TEXT,
    MOCHI_TEXT,
    HUNYUAN_VIDEO_TEXT,
    COGVIDEOX_TEXT,
    STABLE_DIFFUSION_TEXT,
)
PIPELINE_LAYOUTS: tuple[PipelineLayout, ...] = (
    WAN_PIPELINES,
    PipelineLayout(("LTXPipeline", "LTXImageToVideoPipeline"), LTX_TRANSFORMERS, LTX_VAES, LTXV_TEXT),
    PipelineLayout(("HunyuanVideoPipeline",), HUNYUAN_TRANSFORMERS, HUNYUAN_VAES, HUNYUAN_VIDEO_TEXT),
    PipelineLayout(("MochiPipeline",), MOCHI_TRANSFORMERS, MOCHI_VAES, MOCHI_TEXT),
    COGVIDEOX_PIPELINES,
    SKYREELS_PIPELINES,
    SVD_PIPELINES,
    *SD15_PIPELINES,
)

StateDict = Mapping[str, torch.Tensor]


def transformer_family_of(tensors: StateDict) -> TransformerFamily | None:
    """The family whose diffusion network a file's tensors hold, if any."""
    return next((family for family in TRANSFORMER_FAMILIES if family.matches(tensors)), None)


def vae_family_of(tensors: StateDict) -> VaeFamily | None:
    """The family whose VAE a file's tensors hold, if any."""
    return next((family for family in VAE_FAMILIES if family.matches(tensors)), None)


def text_part_of(tensors: StateDict) -> TextEncoderPart | None:
    """The text-encoder network a file's tensors hold, if any."""
    parts = (part for kind in TEXT_ENCODER_KINDS for part in kind.parts)
    return next((part for part in parts if part.matches(tensors)), None)


def text_encoder_kind(name: str) -> TextEncoderKind:
    """The ``CLIPLoader`` type ``name``; ``ValueError`` listing the supported ones."""
    for kind in TEXT_ENCODER_KINDS:
        if kind.name == name:
            return kind
    supported = ", ".join(kind.name for kind in TEXT_ENCODER_KINDS)
    raise ValueError(f"text encoder type {name!r} is not supported; supported: {supported}")


def layout_for_pipeline(class_name: object) -> PipelineLayout | None:
    """The layout of diffusers pipeline class ``class_name``, if Reelgraph reads it."""
    return next((layout for layout in PIPELINE_LAYOUTS if class_name in layout.pipelines), None)


def network_families() -> tuple[TransformerFamily, ...]:
    """Every diffusion-network family, those of pipeline folders only (AnimateDiff's motion UNet) included."""
    return (*TRANSFORMER_FAMILIES, *(layout.transformer for layout in PIPELINE_LAYOUTS))


def family_of_network_class(class_name: str) -> TransformerFamily | None:
    """The family whose diffusers network classes include ``class_name``, if any."""
    return next((family for family in network_families() if class_name in family.diffusers_classes), None)
