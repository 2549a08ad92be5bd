"""LTX-Video VAEs from single files in Lightricks' original key layout (a combined checkpoint's ``vae.`` part, or a
VAE file with any prefix), built as diffusers' ``AutoencoderKLLTXVideo``; ``ltx_vae_to_original`` writes that layout
back (for tiny stand-in files).

The layout is the one of 0.9.5 and later (0.9.6, 0.9.7, 0.9.8: what ComfyUI's LTX-Video workflows load): the
encoder's stages are flat ``encoder.down_blocks.K`` (even K: a stage's residual blocks, odd K: its downsampler
``conv.conv``, the last K: the middle block); the decoder's are flat ``decoder.up_blocks.K`` (0: the middle block,
then per stage its upsampler and its residual blocks). The keys are mapped here in both directions rather than by
diffusers' ``convert_ltx_vae_checkpoint_to_diffusers``, which tells this layout from the older ones by the
released encoder width (2048) and so cannot convert narrower stand-ins; a test checks the mapping against it on the
released 0.9.5 layout. The 0.9.0 / 0.9.1 layouts (strided-convolution downsamplers) are recognised and refused.

Read from shapes: channels per stage (encoder and decoder), residual blocks per stage, latent channels, the patch
size, timestep conditioning and noise injection. Fixed by the released 0.9.5+ configs: downsamplers spatial,
temporal, spatiotemporal, spatiotemporal (32x spatial with the patch 4, 8x temporal), residual 2x upsamplers
(``upsample_factor`` 2), causal encoder, non-causal decoder, eps 1e-6, scaling factor 1.0. The per-channel latent
statistics are the file's ``per_channel_statistics`` (``mean-of-means`` and ``std-of-means``: diffusers'
``latents_mean`` and ``latents_std``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import torch

from models.errors import StateDictError
from models.families.base import LatentFormat
from models.families.ltx.latents import LTXV_LATENT
from models.families.single_file import build_from_state_dict, key_prefix

if TYPE_CHECKING:
    from diffusers import AutoencoderKLLTXVideo

__all__ = [
    "STATISTICS",
    "LtxVaeSpec",
    "detect_ltx_vae",
    "is_ltx_vae",
    "ltx_vae_from_state_dict",
    "ltx_vae_latent_format",
    "ltx_vae_to_original",
]

RGB_CHANNELS = 3
DOWNSAMPLE_TYPES = ("spatial", "temporal", "spatiotemporal", "spatiotemporal")
_STRIDES = MappingProxyType({"spatial": (1, 2, 2), "temporal": (2, 1, 1), "spatiotemporal": (2, 2, 2)})
UPSAMPLE_FACTOR = 2
STATISTICS = "per_channel_statistics."
_MEAN = STATISTICS + "mean-of-means"
_STD = STATISTICS + "std-of-means"
_OTHER_STATISTICS = ("channel", "mean-of-stds", "mean-of-stds_over_std-of-means")
"""Statistics the files carry besides the two diffusers keeps (written by ``ltx_vae_to_original`` as the releases
hold them, dropped on load)."""

_IDENTITY = "decoder.conv_in.conv.weight"
_TOP_LEVEL = (("last_time_embedder.", "time_embedder."), ("last_scale_shift_table", "scale_shift_table"))
# Inside blocks (original, diffusers):
_BLOCK_PARTS = (("res_blocks.", "resnets."), ("conv_shortcut.", "conv_shortcut.conv."), ("norm3.norm.", "norm3."))


@dataclass(frozen=True)
class LtxVaeSpec:
    """An LTX-Video VAE's ``AutoencoderKLLTXVideo`` kwargs."""

    config: Mapping[str, Any]

    def describe(self) -> str:
        """E.g. ``"LTX-Video VAE, 128 latent channels, widths 128-2048"``."""
        widths = self.config["block_out_channels"]
        return f"LTX-Video VAE, {self.config['latent_channels']} latent channels, widths {widths[0]}-{widths[-1]}"


def is_ltx_vae(state_dict: Mapping[str, torch.Tensor]) -> bool:
    """Whether ``state_dict`` holds an LTX-Video VAE in the original layout (any prefix; a combined checkpoint's
    ``vae.`` part counts)."""
    return _prefix_of(state_dict) is not None


def detect_ltx_vae(state_dict: Mapping[str, torch.Tensor]) -> LtxVaeSpec:
    """The diffusers config of an LTX-Video VAE from its tensor shapes alone (meta tensors do)."""
    prefix = _prefix_of(state_dict)
    if prefix is None:
        raise StateDictError("not an LTX-Video VAE: no decoder.conv_in.conv.weight next to per_channel_statistics")
    shapes = {key[len(prefix) :]: tuple(t.shape) for key, t in state_dict.items() if key.startswith(prefix)}
    if "encoder.down_blocks.1.conv.weight" in shapes or "encoder.down_blocks.1.conv.conv.weight" not in shapes:
        raise StateDictError(
            "an LTX-Video 0.9.0 / 0.9.1 VAE (strided-convolution downsamplers): only the 0.9.5 and later layout "
            "is supported"
        )
    base, patch_channels = _shape(shapes, "encoder.conv_in.conv.weight", 5)[:2]
    patch = math.isqrt(patch_channels // RGB_CHANNELS)
    if patch_channels != RGB_CHANNELS * patch * patch:
        raise StateDictError(f"encoder.conv_in.conv.weight takes {patch_channels} channels, not RGB patches")
    encoder = _groups(shapes, "encoder.down_blocks")
    stages = len(DOWNSAMPLE_TYPES)
    if len(encoder) != 2 * stages + 1:
        raise StateDictError(
            f"the LTX-Video VAE encoder has {len(encoder)} down_blocks; the 0.9.5 layout has {2 * stages + 1}"
        )
    widths = [base]
    for stage, kind in enumerate(DOWNSAMPLE_TYPES):
        rows = _shape(shapes, f"encoder.down_blocks.{2 * stage + 1}.conv.conv.weight", 5)[0]
        widths.append(rows * math.prod(_STRIDES[kind]))
    layers = [encoder[2 * stage] for stage in range(stages)] + [encoder[2 * stages]]
    latent_rows = _shape(shapes, "encoder.conv_out.conv.weight", 5)[0]
    latent_channels = latent_rows - 1  # one shared log-variance channel
    decoder = _groups(shapes, "decoder.up_blocks")
    if len(decoder) % 2 != 1:
        raise StateDictError(f"the LTX-Video VAE decoder has {len(decoder)} up_blocks; expected an odd number")
    up_stages = len(decoder) // 2
    # an upsampler's convolution takes its stage's width (its residual blocks run at half of it)
    decoder_widths = [_shape(shapes, f"decoder.up_blocks.{2 * i + 1}.conv.conv.weight", 5)[1] for i in range(up_stages)]
    decoder_layers = [decoder[0]] + [decoder[2 * stage + 2] for stage in range(up_stages)]
    timestep = "decoder.last_time_embedder.timestep_embedder.linear_1.weight" in shapes
    inject = [f"decoder.up_blocks.{2 * i}.res_blocks.0.per_channel_scale1" in shapes for i in range(up_stages + 1)]
    config: dict[str, Any] = {
        "in_channels": RGB_CHANNELS,
        "out_channels": _shape(shapes, "decoder.conv_out.conv.weight", 5)[0] // (patch * patch),
        "latent_channels": latent_channels,
        "block_out_channels": tuple(widths),
        "down_block_types": ("LTXVideo095DownBlock3D",) * stages,
        "decoder_block_out_channels": tuple(reversed(decoder_widths)),
        "layers_per_block": tuple(layers),
        "decoder_layers_per_block": tuple(reversed(decoder_layers)),
        "spatio_temporal_scaling": (True,) * stages,
        "decoder_spatio_temporal_scaling": (True,) * up_stages,
        "decoder_inject_noise": tuple(reversed(inject)),
        "downsample_type": DOWNSAMPLE_TYPES,
        "upsample_residual": (True,) * up_stages,
        "upsample_factor": (UPSAMPLE_FACTOR,) * up_stages,
        "timestep_conditioning": timestep,
        "patch_size": patch,
        "patch_size_t": 1,
        "resnet_norm_eps": 1e-6,
        "scaling_factor": 1.0,
        "encoder_causal": True,
        "decoder_causal": False,
        "spatial_compression_ratio": patch * math.prod(_STRIDES[kind][1] for kind in DOWNSAMPLE_TYPES),
        "temporal_compression_ratio": math.prod(_STRIDES[kind][0] for kind in DOWNSAMPLE_TYPES),
    }
    return LtxVaeSpec(MappingProxyType(config))


def ltx_vae_latent_format(state_dict: Mapping[str, torch.Tensor]) -> LatentFormat:
    """The latent space of an LTX-Video VAE file: ``LTXV_LATENT`` (its statistics live in the VAE; see
    ``models.families.ltx.latents``); ``StateDictError`` for another latent width or compression."""
    config = detect_ltx_vae(state_dict).config
    found = (config["latent_channels"], config["spatial_compression_ratio"], config["temporal_compression_ratio"])
    expected = (LTXV_LATENT.channels, LTXV_LATENT.spatial_ratio, LTXV_LATENT.temporal_ratio)
    if found != expected:
        raise StateDictError(
            "an LTX-Video VAE with {} latent channels, {}x spatial and {}x temporal compression; the LTX-Video "
            "models take {}, {}x and {}x".format(*found, *expected)
        )
    return LTXV_LATENT


def ltx_vae_from_state_dict(state_dict: Mapping[str, torch.Tensor], dtype: torch.dtype) -> AutoencoderKLLTXVideo:
    """An ``AutoencoderKLLTXVideo`` (eval mode) holding a single file's weights in ``dtype`` (its latent statistics
    in float32); other models' tensors (a combined checkpoint's transformer) are ignored."""
    from diffusers import AutoencoderKLLTXVideo

    spec = detect_ltx_vae(state_dict)
    prefix = _prefix_of(state_dict) or ""
    converted: dict[str, torch.Tensor] = {}
    for key, tensor in state_dict.items():
        if key.startswith(prefix) and not any(key.endswith(STATISTICS + name) for name in _OTHER_STATISTICS):
            converted[_diffusers_key(key[len(prefix) :], spec.config)] = tensor
    model = build_from_state_dict(
        AutoencoderKLLTXVideo,
        spec.config,
        converted,
        dtype,
        spec.describe(),
        lambda key: _original_key(key, spec.config),
    )
    model.latents_mean.data = model.latents_mean.data.float()
    model.latents_std.data = model.latents_std.data.float()
    return model


def ltx_vae_to_original(diffusers_state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """An ``AutoencoderKLLTXVideo`` state dict (0.9.5 layout) in the original key names (no prefix), the same
    tensors, plus the statistics the releases carry besides mean and std (``channel`` indices, and the mean of the
    stds and its ratio to the std of the means, derived from ``latents_std``)."""
    stages = 1 + max(
        int(m.group(1)) for key in diffusers_state_dict if (m := re.match(r"encoder\.down_blocks\.(\d+)\.", key))
    )
    config = {"down_block_types": ("LTXVideo095DownBlock3D",) * stages}
    original = {_original_key(key, config): tensor for key, tensor in diffusers_state_dict.items()}
    std = diffusers_state_dict["latents_std"]
    original[STATISTICS + "channel"] = torch.arange(std.shape[0], dtype=std.dtype)
    original[STATISTICS + "mean-of-stds"] = torch.ones_like(std)
    original[STATISTICS + "mean-of-stds_over_std-of-means"] = 1.0 / std
    return original


def _diffusers_key(key: str, config: Mapping[str, Any]) -> str:
    """One original VAE key (no prefix) in diffusers' naming."""
    if key == _MEAN:
        return "latents_mean"
    if key == _STD:
        return "latents_std"
    side, _, rest = key.partition(".")
    stages = len(config["down_block_types"])
    match = re.match(r"(down|up)_blocks\.(\d+)\.(.*)", rest)
    if match:
        direction, index, inner = match.group(1), int(match.group(2)), match.group(3)
        rest = _block_name(direction, index, stages) + _swap(inner, _BLOCK_PARTS, to_diffusers=True)
    elif side == "decoder":
        rest = _swap(rest, _TOP_LEVEL, to_diffusers=True)
    return f"{side}.{rest}"


def _original_key(key: str, config: Mapping[str, Any]) -> str:
    """One ``AutoencoderKLLTXVideo`` key in the original naming (no prefix)."""
    if key == "latents_mean":
        return _MEAN
    if key == "latents_std":
        return _STD
    side, _, rest = key.partition(".")
    stages = len(config["down_block_types"])
    if side == "encoder":
        match = re.match(r"(?:down_blocks\.(\d+)\.(downsamplers\.0\.)?|mid_block\.)(.*)", rest)
        if match:
            stage, sampler, inner = match.groups()
            index = 2 * stages if stage is None else 2 * int(stage) + (1 if sampler else 0)
            return f"encoder.down_blocks.{index}.{_swap(inner, _BLOCK_PARTS, to_diffusers=False)}"
    elif side == "decoder":
        match = re.match(r"(?:up_blocks\.(\d+)\.(upsamplers\.0\.)?|mid_block\.)(.*)", rest)
        if match:
            stage, sampler, inner = match.groups()
            index = 0 if stage is None else 2 * int(stage) + (1 if sampler else 2)
            return f"decoder.up_blocks.{index}.{_swap(inner, _BLOCK_PARTS, to_diffusers=False)}"
        return f"decoder.{_swap(rest, _TOP_LEVEL, to_diffusers=False)}"
    return key


def _block_name(direction: str, index: int, stages: int) -> str:
    """The diffusers module (with a trailing dot) of original ``encoder.down_blocks.K`` / ``decoder.up_blocks.K``."""
    if direction == "down":
        if index == 2 * stages:
            return "mid_block."
        return f"down_blocks.{index // 2}." + ("downsamplers.0." if index % 2 else "")
    if index == 0:
        return "mid_block."
    return f"up_blocks.{(index - 1) // 2}." + ("upsamplers.0." if index % 2 else "")


def _swap(name: str, pairs: tuple[tuple[str, str], ...], to_diffusers: bool) -> str:
    """``name`` with every part of ``pairs`` (original, diffusers) turned into the other side's."""
    for original, diffusers in pairs:
        source, target = (original, diffusers) if to_diffusers else (diffusers, original)
        name = name.replace(source, target)
    return name


def _prefix_of(state_dict: Mapping[str, torch.Tensor]) -> str | None:
    """The shortest prefix under which both ``decoder.conv_in.conv.weight`` and ``per_channel_statistics`` exist."""
    return key_prefix(state_dict, _IDENTITY, _STD)


def _shape(shapes: Mapping[str, tuple[int, ...]], name: str, ndim: int) -> tuple[int, ...]:
    shape = shapes.get(name)
    if shape is None:
        raise StateDictError(f"an LTX-Video VAE needs {name}, which is missing: is the file complete?")
    if len(shape) != ndim:
        raise StateDictError(f"{name} has shape {shape}; LTX-Video's has {ndim} dimensions")
    return shape


def _groups(shapes: Mapping[str, tuple[int, ...]], group: str) -> list[int]:
    """For each ``group.K`` (K = 0, 1, ...): how many residual blocks it holds (0 for a resampler); gaps raise."""
    pattern = re.compile(re.escape(group) + r"\.(\d+)\.(?:res_blocks\.(\d+)\.)?")
    blocks: dict[int, int] = {}
    for key in shapes:
        match = pattern.match(key)
        if match:
            index = int(match.group(1))
            count = int(match.group(2)) + 1 if match.group(2) is not None else 0
            blocks[index] = max(blocks.get(index, 0), count)
    if not blocks or sorted(blocks) != list(range(len(blocks))):
        raise StateDictError(f"the LTX-Video VAE's {group} are missing or numbered with gaps: is the file complete?")
    return [blocks[index] for index in range(len(blocks))]
