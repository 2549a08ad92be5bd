"""What a model family contributes to the generic loaders: its diffusion-model files, VAE files, text encoders and
diffusers pipeline folders, each described by one frozen object of this module.

Loaders never name a family: they ask each entry of ``models.families.catalog`` whether a file ``matches`` (from
tensor shapes, before any weight loads), then let the entry detect the variant, build the diffusers module and
describe how to call it. A new family is a package under ``models/families/`` plus its entries in the catalog.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch

from models.families.base import FamilyAdapter, LatentFormat
from models.lora_weights import LoraFormat
from models.sampling.model_sampling import ModelSampling
from models.vae_tiling import TileSettings, tiled_coding

__all__ = [
    "PartRunner",
    "PipelineLayout",
    "PromptEncoding",
    "TextEncoderKind",
    "TextEncoderPart",
    "TransformerFamily",
    "VaeCodec",
    "VaeFamily",
]

T = TypeVar("T")

StateDict = Mapping[str, torch.Tensor]
Matcher = Callable[[StateDict], bool]
"""Whether a file's tensors (meta tensors: shapes and dtypes only) are this kind; any key prefix the releases use."""


@dataclass(frozen=True)
class TransformerFamily:
    """A family's diffusion networks (``MODEL``), from single files in the releases' original key layout or from
    a diffusers ``transformer/`` folder.

    Args:
        name: the family's short name (``"wan"``, ``"ltxv"``, ``"hunyuan_video"``, ``"mochi"``).
        label: what a file of it is, for messages (``"a Wan diffusion model"``).
        matches: whether a single file's tensors are such a network (combined checkpoints included).
        detect: the adapter of the variant a single file holds (``StateDictError`` naming what does not fit);
            takes the tensors (meta tensors) and the safetensors metadata.
        build: the diffusers module, in the given dtype, from a single file's state dict (and metadata); the state
            dict may hold other models' keys too (a combined checkpoint), which it ignores.
        adapter_from_config: the adapter for a diffusers ``transformer/config.json``.
        diffusers_classes: the diffusers class names of its ``transformer`` components.
        lora: its LoRA files' layouts and their conversion to the network's names; ``None``: ``LoraLoader`` refuses
            its models.
    """

    name: str
    label: str
    matches: Matcher
    detect: Callable[[StateDict, Mapping[str, str]], FamilyAdapter]
    build: Callable[[dict[str, torch.Tensor], torch.dtype, Mapping[str, str]], torch.nn.Module]
    adapter_from_config: Callable[[Mapping[str, Any]], FamilyAdapter]
    diffusers_classes: tuple[str, ...]
    lora: LoraFormat | None = None


class VaeCodec:
    """How a VAE module is called: video ``[B, 3, N, H, W]`` in -1..1 to the ``LATENT`` a family's nodes pass
    around, and back. The default is the plain diffusers call (posterior mode; decode's first output); families
    whose ``LATENT`` is normalised by the VAE (LTX-Video, as in ComfyUI) override both."""

    def encode(self, module: torch.nn.Module, video: torch.Tensor) -> torch.Tensor:
        return module.encode(video).latent_dist.mode()

    def decode(self, module: torch.nn.Module, latent: torch.Tensor) -> torch.Tensor:
        return module.decode(latent, return_dict=False)[0]

    def decode_tiled(self, module: torch.nn.Module, latent: torch.Tensor, tiles: TileSettings) -> torch.Tensor:
        """``decode`` with the VAE's own tiling on (``ValueError`` for a VAE without)."""
        with tiled_coding(module, tiles):
            return self.decode(module, latent)

    def encode_tiled(self, module: torch.nn.Module, video: torch.Tensor, tiles: TileSettings) -> torch.Tensor:
        """``encode`` with the VAE's own tiling on (``ValueError`` for a VAE without)."""
        with tiled_coding(module, tiles):
            return self.encode(module, video)


@dataclass(frozen=True)
class VaeFamily:
    """A family's video VAEs (``VAE``).

    Args:
        name: the family's short name.
        label: what a file of it is, for messages (``"a Wan VAE"``).
        matches: whether a single file's tensors are such a VAE (a combined checkpoint's ``vae.`` part included).
        latent_format: the latent space a single file codes, from its tensors (meta tensors).
        build: the diffusers module, in the given dtype, from a single file's state dict (other keys ignored).
        latent_format_from_config: the latent space of a diffusers ``vae/config.json``.
        diffusers_classes: the diffusers class names of its ``vae`` components.
        codec: how its module encodes and decodes.
    """

    name: str
    label: str
    matches: Matcher
    latent_format: Callable[[StateDict], LatentFormat]
    build: Callable[[dict[str, torch.Tensor], torch.dtype], torch.nn.Module]
    latent_format_from_config: Callable[[Mapping[str, Any]], LatentFormat]
    diffusers_classes: tuple[str, ...]
    codec: VaeCodec = field(default_factory=VaeCodec)


PartRunner = Callable[[int, Callable[[torch.nn.Module], T]], T]
"""Runs a function on part ``i`` of a text encoder once the memory manager has it on the compute device."""


@dataclass(frozen=True)
class PromptEncoding:
    """One prompt encoded: ``embeds [1, tokens, dim]`` and the conditioning extras the family's adapter reads
    (e.g. ``attention_mask`` ``[1, tokens]``, ``pooled_output`` ``[1, dim]``)."""

    embeds: torch.Tensor
    extras: Mapping[str, torch.Tensor]


@dataclass(frozen=True)
class TextEncoderPart:
    """One network of a text encoder (UMT5-XXL for Wan; Llama and CLIP-L for HunyuanVideo).

    Args:
        label: what a file of it is, for messages (``"a T5-XXL text encoder"``).
        matches: whether a single file's tensors are this network.
        build: the transformers module, in the given dtype, from a single file's state dict and metadata.
        tokenizer: the folder name under ``models/tokenizers/`` of its tokenizer (``"t5-xxl"``).
        tokenizer_repo: the public repo ``download`` fetches that tokenizer from.
        diffusers_classes: the transformers class names of this part in diffusers pipeline folders.
        work_bytes: working memory of one encode, for the memory manager.
    """

    label: str
    matches: Matcher
    build: Callable[[dict[str, torch.Tensor], torch.dtype, Mapping[str, str]], torch.nn.Module]
    tokenizer: str
    tokenizer_repo: str
    diffusers_classes: tuple[str, ...]
    work_bytes: int


@dataclass(frozen=True)
class TextEncoderKind:
    """A ``CLIPLoader`` / ``DualCLIPLoader`` type: its networks, in the order ``encode`` takes them, and how a prompt
    becomes conditioning, exactly as the family's diffusers pipeline encodes it.

    ``encode(run, tokenizers, text, dtype)`` gets a runner for its parts (in ``parts`` order), their tokenizers, and
    the compute dtype; it returns the encoding on any device (the caller moves it to the CPU in float32).
    """

    name: str
    parts: tuple[TextEncoderPart, ...]
    encode: Callable[[PartRunner, tuple[Any, ...], str, torch.dtype], PromptEncoding]


@dataclass(frozen=True)
class PipelineLayout:
    """The diffusers pipeline folders of a family: their ``model_index.json`` class names, and the kinds of their
    components. Text-encoder parts are the components ``text_encoder``, ``text_encoder_2``, ... with tokenizers
    ``tokenizer``, ``tokenizer_2``, ...

    Args:
        pipelines: the ``_class_name`` values this layout reads (``"LTXPipeline"``, ...).
        transformer: the family of the diffusion network component (and its ``_2`` expert).
        vae: the family of ``vae``.
        text: the text encoder kind of ``text_encoder`` (and ``text_encoder_2``); ``None`` for pipelines conditioned
            on images only (Stable Video Diffusion).
        extra: other components and their class names (``image_encoder`` for Wan 2.1 image-to-video).
        network: the diffusion network's component name: ``transformer``, or ``unet`` for UNet pipelines.
        sampling_from_scheduler: the noise parametrisation a folder's ``scheduler/scheduler_config.json`` describes,
            for families whose releases differ there (CogVideoX's ``snr_shift_scale``); without it, or without that
            file, the adapter's default sampling.
    """

    pipelines: tuple[str, ...]
    transformer: TransformerFamily
    vae: VaeFamily
    text: TextEncoderKind | None
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    network: str = "transformer"
    sampling_from_scheduler: Callable[[Mapping[str, Any]], ModelSampling] | None = None
