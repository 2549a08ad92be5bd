"""The SVD VAE from a single file in the SGM layout, built as diffusers' ``AutoencoderKLTemporalDecoder``, and how it
codes frames (``SvdCodec``).

In ``svd.safetensors`` the VAE is split: the temporal decoder under ``first_stage_model.decoder.`` and the image
encoder with its ``quant_conv`` under ``conditioner.embedders.3.encoder.`` (the encoder that made the training's
conditioning latents; ``first_stage_model.encoder.`` holds one too, without ``quant_conv``). The encoder is taken
from the conditioner when the file has it, else from ``first_stage_model.`` with an identity ``quant_conv``.

SGM names (LDM's ``Encoder`` and SGM's ``VideoDecoder``): ``down.I.block.J`` / ``up.I.block.J`` (the decoder's up
levels numbered from the lowest resolution's end, diffusers' in reverse), ``mid.block_{1,2}``, ``mid.attn_1.{norm,
q, k, v, proj_out}`` (1x1 convolutions; diffusers' are linear), ``norm_out``, ``conv_out``. Each decoder resnet is a
``VideoResBlock``: the spatial layers, a temporal ``time_stack`` (``in_layers.{0,2}``, ``out_layers.{0,3}``) and
``mix_factor``; ``conv_out.time_mix_conv`` is diffusers' ``time_conv_out``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import torch

from models.errors import StateDictError
from models.families.kinds import VaeCodec
from models.families.single_file import StateShapes, build_from_state_dict, key_prefix
from models.families.svd.latents import SCALING_FACTOR
from models.vae_tiling import TileSettings

if TYPE_CHECKING:
    from diffusers import AutoencoderKLTemporalDecoder

__all__ = [
    "CONDITIONER_ENCODER_PREFIX",
    "DECODER_PREFIX",
    "SvdCodec",
    "SvdVaeSpec",
    "detect_svd_vae",
    "is_svd_vae",
    "svd_vae_from_state_dict",
    "svd_vae_to_original",
    "vae_original_name",
]

DECODER_PREFIX = "first_stage_model."
CONDITIONER_ENCODER_PREFIX = "conditioner.embedders.3.encoder."
FAMILY = "SVD VAE"
_DECODER_IDENTITY = ("decoder.mid.block_1.mix_factor", "decoder.conv_out.time_mix_conv.weight")
_ENCODER_IDENTITY = ("encoder.conv_in.weight", "quant_conv.weight")

_RESNET_LAYERS = (
    ("norm1.", "norm1."),
    ("conv1.", "conv1."),
    ("norm2.", "norm2."),
    ("conv2.", "conv2."),
    ("conv_shortcut.", "nin_shortcut."),
)
"""diffusers ``ResnetBlock2D`` -> LDM ``ResnetBlock``."""
_TEMPORAL_LAYERS = (
    ("norm1.", "in_layers.0."),
    ("conv1.", "in_layers.2."),
    ("norm2.", "out_layers.0."),
    ("conv2.", "out_layers.3."),
)
"""diffusers ``TemporalResnetBlock`` -> SGM's ``time_stack`` ``ResBlock``."""
_ATTENTION = (
    ("group_norm.", "norm."),
    ("to_q.", "q."),
    ("to_k.", "k."),
    ("to_v.", "v."),
    ("to_out.0.", "proj_out."),
)
_SIDE_TOP_LEVEL = (
    ("conv_in.", "conv_in."),
    ("conv_norm_out.", "norm_out."),
    ("conv_out.", "conv_out."),
    ("time_conv_out.", "conv_out.time_mix_conv."),
)
_STAGE_KEY = re.compile(r"(down_blocks|up_blocks)\.(\d+)\.(resnets|downsamplers|upsamplers)\.(\d+)\.(.+)")
_MID_KEY = re.compile(r"mid_block\.(resnets|attentions)\.(\d+)\.(.+)")


@dataclass(frozen=True)
class SvdVaeSpec:
    """An SVD VAE's ``AutoencoderKLTemporalDecoder`` kwargs."""

    config: Mapping[str, Any]

    @property
    def levels(self) -> int:
        return len(self.config["block_out_channels"])

    def describe(self) -> str:
        widths = "-".join(str(width) for width in self.config["block_out_channels"])
        return f"{FAMILY}, channels {widths}, {self.config['latent_channels']} latent channels"


class SvdCodec(VaeCodec):
    """Frames are the VAE's batch: ``[B, 3, N, H, W]`` is encoded as ``B * N`` images (posterior mode, as the
    pipeline encodes its image) and decoded by the temporal decoder ``N`` frames at a time (``num_frames``, as
    ``StableVideoDiffusionPipeline.decode_latents`` with a chunk of all frames)."""

    def encode(self, module: torch.nn.Module, video: torch.Tensor) -> torch.Tensor:
        batch, _, frames = video.shape[:3]
        images = video.transpose(1, 2).flatten(0, 1)
        latent = module.encode(images).latent_dist.mode()
        return latent.unflatten(0, (batch, frames)).transpose(1, 2)

    def decode(self, module: torch.nn.Module, latent: torch.Tensor) -> torch.Tensor:
        batch, _, frames = latent.shape[:3]
        images = module.decode(latent.transpose(1, 2).flatten(0, 1), num_frames=frames, return_dict=False)[0]
        return images.unflatten(0, (batch, frames)).transpose(1, 2)

    def decode_tiled(self, module: torch.nn.Module, latent: torch.Tensor, tiles: TileSettings) -> torch.Tensor:
        """The temporal decoder cannot tile space: ``tiles.frames`` frames at a time (the pipeline's
        ``decode_chunk_size``), whole frames each."""
        chunks = [self.decode(module, part) for part in latent.split(tiles.frames, dim=2)]
        return torch.cat(chunks, dim=2)

    def encode_tiled(self, module: torch.nn.Module, video: torch.Tensor, tiles: TileSettings) -> torch.Tensor:
        """The encoder cannot tile space either: ``tiles.frames`` frames at a time, whole frames each."""
        return torch.cat([self.encode(module, part) for part in video.split(tiles.frames, dim=2)], dim=2)


def is_svd_vae(state_dict: Mapping[str, torch.Tensor]) -> bool:
    """Whether the tensors hold an SVD VAE in the SGM layout: a temporal decoder (``mix_factor`` in its resnets,
    ``conv_out.time_mix_conv``) and an encoder."""
    return _decoder_prefix(state_dict) is not None and _encoder_prefixes(state_dict) is not None


def detect_svd_vae(state_dict: Mapping[str, torch.Tensor]) -> SvdVaeSpec:
    """The diffusers config of an SVD VAE from its tensor shapes (meta tensors do); ``StateDictError`` when it is
    none or incomplete."""
    decoder = _decoder_prefix(state_dict)
    encoders = _encoder_prefixes(state_dict)
    if decoder is None or encoders is None:
        raise StateDictError(
            f"not an SVD VAE: needs a temporal decoder ({' and '.join(_DECODER_IDENTITY)}) and an encoder"
        )
    encoder = StateShapes(state_dict, encoders[0] + "encoder.", FAMILY)
    levels = encoder.count("down")
    widths = tuple(encoder.get(f"down.{level}.block.0.conv1.weight", 4)[0] for level in range(levels))
    layers = encoder.count("down.0.block")
    latent = StateShapes(state_dict, decoder + "decoder.", FAMILY).get("conv_in.weight", 4)[1]
    out_channels = StateShapes(state_dict, decoder + "decoder.", FAMILY).get("conv_out.weight", 4)[0]
    config = {
        "in_channels": encoder.get("conv_in.weight", 4)[1],
        "out_channels": out_channels,
        "down_block_types": ("DownEncoderBlock2D",) * levels,
        "block_out_channels": widths,
        "layers_per_block": layers,
        "latent_channels": latent,
        "sample_size": 768,
        "scaling_factor": SCALING_FACTOR,
        "force_upcast": True,
    }
    return SvdVaeSpec(MappingProxyType(config))


def svd_vae_from_state_dict(state_dict: Mapping[str, torch.Tensor], dtype: torch.dtype) -> AutoencoderKLTemporalDecoder:
    """An ``AutoencoderKLTemporalDecoder`` (eval mode) holding a single file's VAE in ``dtype``; other tensors of a
    combined checkpoint are ignored."""
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKLTemporalDecoder

    spec = detect_svd_vae(state_dict)
    sources = _sources(state_dict)
    with init_empty_weights():
        expected = AutoencoderKLTemporalDecoder(**spec.config).state_dict()
    converted = {}
    for key, target in expected.items():
        name = _source_name(key, spec, sources)
        if name in state_dict:
            tensor = state_dict[name]
            if ".attentions." in key and tensor.dim() == 4 and target.dim() == 2:
                tensor = tensor.flatten(1)  # SGM's 1x1 convolutions are diffusers' linear layers
            converted[key] = tensor
        elif key.startswith("quant_conv.") and sources.quant_conv is None:
            converted[key] = _identity_quant_conv(key, target.shape)
    return build_from_state_dict(
        AutoencoderKLTemporalDecoder,
        spec.config,
        converted,
        dtype,
        spec.describe(),
        lambda key: _source_name(key, spec, sources),
    )


def svd_vae_to_original(diffusers_state_dict: Mapping[str, torch.Tensor], spec: SvdVaeSpec) -> dict[str, torch.Tensor]:
    """An ``AutoencoderKLTemporalDecoder`` state dict in SGM's names, placed as ``svd.safetensors`` places them
    (decoder and encoder under ``first_stage_model.``, encoder and ``quant_conv`` again under the conditioner);
    attention weights as 1x1 convolutions."""
    original = {}
    for key, tensor in diffusers_state_dict.items():
        name = vae_original_name(key, spec)
        if ".mid.attn_1." in name and name.endswith("weight") and tensor.dim() == 2:
            tensor = tensor[:, :, None, None]
        if key.startswith("decoder."):
            original[DECODER_PREFIX + name] = tensor
        else:
            original[CONDITIONER_ENCODER_PREFIX + name] = tensor
            if key.startswith("encoder."):
                original[DECODER_PREFIX + name] = tensor
    return original


def vae_original_name(key: str, spec: SvdVaeSpec) -> str:
    """The SGM name (no prefix) of the diffusers VAE tensor ``key``; unknown names come back unchanged."""
    side, _, rest = key.partition(".")
    if side not in ("encoder", "decoder"):
        return key
    for new, old in _SIDE_TOP_LEVEL:
        if rest.startswith(new):
            return f"{side}.{old}{rest.removeprefix(new)}"
    if match := _MID_KEY.fullmatch(rest):
        kind, index, inner = match.groups()
        if kind == "attentions":
            return f"{side}.mid.attn_1.{_renamed(inner, _ATTENTION)}"
        return f"{side}.mid.block_{int(index) + 1}.{_resnet(inner)}"
    match = _STAGE_KEY.fullmatch(rest)
    if match is None:
        return key
    stages, stage, kind, index, inner = match.groups()
    level = int(stage) if stages == "down_blocks" else spec.levels - 1 - int(stage)
    head = f"{side}.{'down' if stages == 'down_blocks' else 'up'}.{level}."
    if kind == "downsamplers":
        return f"{head}downsample.{inner}"
    if kind == "upsamplers":
        return f"{head}upsample.{inner}"
    return f"{head}block.{index}.{_resnet(inner)}"


@dataclass(frozen=True)
class _Sources:
    """Where a file keeps each part: the decoder's prefix, the encoder's, and ``quant_conv``'s (None: absent)."""

    decoder: str
    encoder: str
    quant_conv: str | None


def _sources(state_dict: Mapping[str, torch.Tensor]) -> _Sources:
    decoder = _decoder_prefix(state_dict)
    encoders = _encoder_prefixes(state_dict)
    assert decoder is not None and encoders is not None  # detect_svd_vae has checked
    return _Sources(decoder, *encoders)


def _source_name(key: str, spec: SvdVaeSpec, sources: _Sources) -> str:
    name = vae_original_name(key, spec)
    if key.startswith("decoder."):
        return sources.decoder + name
    if key.startswith("quant_conv."):
        return (sources.quant_conv or sources.encoder) + name
    return sources.encoder + name


def _resnet(inner: str) -> str:
    """The SGM name inside a resnet: an encoder ``ResnetBlock`` or a decoder ``VideoResBlock``."""
    if inner.startswith("spatial_res_block."):
        return _renamed(inner.removeprefix("spatial_res_block."), _RESNET_LAYERS)
    if inner.startswith("temporal_res_block."):
        return "time_stack." + _renamed(inner.removeprefix("temporal_res_block."), _TEMPORAL_LAYERS)
    if inner == "time_mixer.mix_factor":
        return "mix_factor"
    return _renamed(inner, _RESNET_LAYERS)


def _renamed(name: str, table: tuple[tuple[str, str], ...]) -> str:
    for new, old in table:
        if name.startswith(new):
            return old + name.removeprefix(new)
    return name


def _identity_quant_conv(key: str, shape: torch.Size) -> torch.Tensor:
    """``quant_conv`` doing nothing, for files whose encoder has none (as ComfyUI's engine computes it)."""
    if key.endswith("bias"):
        return torch.zeros(shape)
    return torch.eye(shape[0]).reshape(shape)


def _decoder_prefix(state_dict: Mapping[str, torch.Tensor]) -> str | None:
    return key_prefix(state_dict, *_DECODER_IDENTITY)


def _encoder_prefixes(state_dict: Mapping[str, torch.Tensor]) -> tuple[str, str | None] | None:
    """The prefixes of the encoder and of ``quant_conv``: the conditioner's pair when the file has one, else the
    decoder's encoder without ``quant_conv``."""
    paired = key_prefix(state_dict, *_ENCODER_IDENTITY)
    if paired is not None:
        return paired, paired
    decoder = _decoder_prefix(state_dict)
    if decoder is not None and decoder + _ENCODER_IDENTITY[0] in state_dict:
        return decoder, None
    return None
