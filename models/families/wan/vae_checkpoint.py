"""Wan VAEs from single files in Wan's original key layout (``wan_2.1_vae.safetensors``,
``wan2.2_vae.safetensors``), built as diffusers' ``AutoencoderKLWan``; ``wan_vae_to_original`` writes that layout
back (for tiny stand-in files).

Wan 2.1 (z 16, 8x spatial, 4x temporal): keys converted by diffusers' ``convert_wan_vae_to_diffusers``, which knows
only the released layout (4 stages of 2 residual blocks; the inverse here is written for that layout too).
Wan 2.2 (z 48, residual stages, input patchified 2x2 into 12 channels, 16x spatial, 4x temporal): diffusers has no
single-file conversion, so the mapping is here, in both directions, from the module names of Wan's ``vae2_2``
(``encoder.downsamples.I.downsamples.J`` residual blocks then the resample) and of ``AutoencoderKLWan`` with
``is_residual=True`` (``encoder.down_blocks.I.resnets.J``, ``encoder.down_blocks.I.downsampler``).

Read from shapes: base dims (the 2.2 decoder is wider than its encoder: 256 vs 160), z_dim, dim_mult,
num_res_blocks, which downsamples are temporal, in/out channels and the patch size. Assumed: no attention outside
the middle blocks (``attn_scales`` empty, as released) and dropout 0. The per-channel latent statistics are not in
the files: they are the published ones of the detected version (``models.families.wan.latents``), which only fit
z 16 (2.1) and z 48 (2.2).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

import torch

from models.errors import StateDictError
from models.families.base import LatentFormat
from models.families.single_file import build_from_state_dict, key_prefix
from models.families.wan.latents import WAN21_LATENT, WAN22_LATENT

if TYPE_CHECKING:
    from diffusers import AutoencoderKLWan

__all__ = ["WanVaeSpec", "detect_wan_vae", "is_wan_vae", "wan_vae_from_state_dict", "wan_vae_to_original"]

Version = Literal["2.1", "2.2"]
LATENTS: Mapping[str, LatentFormat] = MappingProxyType({"2.1": WAN21_LATENT, "2.2": WAN22_LATENT})
RGB_CHANNELS = 3

_IDENTITY = "decoder.middle.0.residual.0.gamma"
_RESIDUAL_2_2 = "encoder.downsamples.0.downsamples.0.residual.0.gamma"
RELEASED_2_1_LAYOUT = (4, 2)  # stages, residual blocks each: the only layout diffusers' 2.1 conversion handles

# Parts that both versions and both sides share: (original, diffusers).
_RESIDUAL_PARTS = (
    ("residual.0.", "norm1."),
    ("residual.2.", "conv1."),
    ("residual.3.", "norm2."),
    ("residual.6.", "conv2."),
    ("shortcut.", "conv_shortcut."),
)
_SIDE_PARTS = (("conv1.", "conv_in."), ("head.0.", "norm_out."), ("head.2.", "conv_out."))
_MIDDLE = (
    ("middle.0.", "mid_block.resnets.0."),
    ("middle.1.", "mid_block.attentions.0."),
    ("middle.2.", "mid_block.resnets.1."),
)
_TOP = (("conv1.", "quant_conv."), ("conv2.", "post_quant_conv."))


@dataclass(frozen=True)
class WanVaeSpec:
    """A Wan VAE's version and the ``AutoencoderKLWan`` kwargs that build it (latent statistics included)."""

    version: Version
    config: Mapping[str, Any]

    def describe(self) -> str:
        """E.g. ``"Wan 2.2 VAE, 48 latent channels, 16x spatial and 4x temporal compression"``."""
        config = self.config
        return (
            f"Wan {self.version} VAE, {config['z_dim']} latent channels, {config['scale_factor_spatial']}x spatial "
            f"and {config['scale_factor_temporal']}x temporal compression"
        )


def is_wan_vae(state_dict: Mapping[str, torch.Tensor]) -> bool:
    """Whether ``state_dict`` is a Wan 2.1 or 2.2 VAE in the original layout (any key prefix)."""
    return _prefix_of(state_dict) is not None


def detect_wan_vae(state_dict: Mapping[str, torch.Tensor]) -> WanVaeSpec:
    """The version and diffusers config of a Wan VAE, from its tensor shapes alone (meta tensors do)."""
    prefix = _prefix_of(state_dict)
    if prefix is None:
        raise StateDictError("not a Wan VAE: no decoder.middle.0.residual.0.gamma tensor")
    shapes = {key[len(prefix) :]: tuple(tensor.shape) for key, tensor in state_dict.items() if key.startswith(prefix)}
    residual = _RESIDUAL_2_2 in shapes
    version: Version = "2.2" if residual else "2.1"
    base_dim, in_channels = _shape(shapes, "encoder.conv1.weight", 5)[:2]
    dim_mult, num_res_blocks, temporal = _encoder_layout(shapes, residual, base_dim)
    if version == "2.1" and (len(dim_mult), num_res_blocks) != RELEASED_2_1_LAYOUT:
        raise StateDictError(
            f"a Wan 2.1 VAE with {len(dim_mult)} stages of {num_res_blocks} residual blocks: only the released "
            "layout ({} of {}) converts".format(*RELEASED_2_1_LAYOUT)
        )
    z_dim = _shape(shapes, "conv2.weight", 5)[0]
    out_channels, decoder_width = _shape(shapes, "decoder.head.2.weight", 5)[:2]
    decoder_base_dim = decoder_width // dim_mult[0]
    patch = math.isqrt(in_channels // RGB_CHANNELS)
    if in_channels != RGB_CHANNELS * patch * patch:
        raise StateDictError(f"a Wan VAE takes RGB patches; encoder.conv1.weight takes {in_channels} channels")
    latent = LATENTS[version]
    if z_dim != latent.channels:
        raise StateDictError(
            f"a Wan {version} VAE with {z_dim} latent channels: the published latent statistics are for "
            f"{latent.channels}"
        )
    config = {
        "base_dim": base_dim,
        "decoder_base_dim": decoder_base_dim if decoder_base_dim != base_dim else None,
        "z_dim": z_dim,
        "dim_mult": dim_mult,
        "num_res_blocks": num_res_blocks,
        "attn_scales": [],
        "temperal_downsample": temporal,
        "dropout": 0.0,
        "latents_mean": list(latent.mean),
        "latents_std": list(latent.std),
        "is_residual": residual,
        "in_channels": in_channels,
        "out_channels": out_channels,
        "patch_size": patch if patch > 1 else None,
        "scale_factor_temporal": 2 ** sum(temporal),
        "scale_factor_spatial": patch * 2 ** len(temporal),
    }
    return WanVaeSpec(version, MappingProxyType(config))


def wan_vae_from_state_dict(state_dict: Mapping[str, torch.Tensor], dtype: torch.dtype) -> AutoencoderKLWan:
    """An ``AutoencoderKLWan`` (eval mode) holding a single file's weights in ``dtype``; its config carries the
    published latent statistics of the detected version."""
    from diffusers import AutoencoderKLWan

    spec = detect_wan_vae(state_dict)
    prefix = _prefix_of(state_dict) or ""
    original = {key[len(prefix) :]: tensor for key, tensor in state_dict.items() if key.startswith(prefix)}
    if spec.version == "2.1":
        from diffusers.loaders.single_file_utils import convert_wan_vae_to_diffusers

        converted = convert_wan_vae_to_diffusers(original)
    else:
        converted = {_diffusers_key_2_2(key): tensor for key, tensor in original.items()}
    num_res_blocks = spec.config["num_res_blocks"]
    original_key = _original_key_2_2 if spec.version == "2.2" else _original_key_2_1

    def original_name(key: str) -> str:
        return original_key(key, num_res_blocks)

    return build_from_state_dict(AutoencoderKLWan, spec.config, converted, dtype, spec.describe(), original_name)


def wan_vae_to_original(diffusers_state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """An ``AutoencoderKLWan`` state dict in Wan's original key names (2.1 or 2.2, told by its keys), the same
    tensors; the exact inverse of the conversion ``wan_vae_from_state_dict`` applies."""
    residual = "encoder.down_blocks.0.resnets.0.norm1.gamma" in diffusers_state_dict
    pattern = re.compile(r"decoder\.up_blocks\.0\.resnets\.(\d+)\.")
    resnets = {int(match.group(1)) for key in diffusers_state_dict if (match := pattern.match(key))}
    if not resnets:
        raise StateDictError("not an AutoencoderKLWan state dict: no decoder.up_blocks.0.resnets")
    num_res_blocks = max(resnets)  # decoder stages have one residual block more than encoder stages
    original_key = _original_key_2_2 if residual else _original_key_2_1
    return {original_key(key, num_res_blocks): tensor for key, tensor in diffusers_state_dict.items()}


def _prefix_of(state_dict: Mapping[str, torch.Tensor]) -> str | None:
    return key_prefix(state_dict, _IDENTITY, "encoder.conv1.weight")


def _shape(shapes: Mapping[str, tuple[int, ...]], name: str, ndim: int) -> tuple[int, ...]:
    shape = shapes.get(name)
    if shape is None:
        raise StateDictError(f"a Wan VAE needs {name}, which is missing: is the file complete?")
    if len(shape) != ndim:
        raise StateDictError(f"{name} has shape {shape}; Wan's has {ndim} dimensions")
    return shape


def _encoder_layout(
    shapes: Mapping[str, tuple[int, ...]], residual: bool, base_dim: int
) -> tuple[list[int], int, list[bool]]:
    """``dim_mult``, ``num_res_blocks`` and ``temperal_downsample`` of the encoder, from its stages."""
    stages = _encoder_stages(shapes, residual)
    num_res_blocks = len(stages[0][0])
    if any(len(blocks) != num_res_blocks for blocks, _ in stages):
        counts = [len(blocks) for blocks, _ in stages]
        raise StateDictError(f"the Wan VAE's encoder stages have different numbers of residual blocks: {counts}")
    if any(resample is None for _, resample in stages[:-1]) or stages[-1][1] is not None:
        raise StateDictError("a Wan VAE downsamples after every encoder stage but the last; this one does not")
    dim_mult = []
    for blocks, _ in stages:
        width = _shape(shapes, f"{blocks[0]}residual.2.weight", 5)[0]
        if width % base_dim:
            raise StateDictError(f"{blocks[0]}residual.2.weight is {width} wide, not a multiple of {base_dim}")
        dim_mult.append(width // base_dim)
    temporal = [f"{resample}time_conv.weight" in shapes for _, resample in stages[:-1]]
    return dim_mult, num_res_blocks, temporal


def _encoder_stages(shapes: Mapping[str, tuple[int, ...]], residual: bool) -> list[tuple[list[str], str | None]]:
    """The encoder's stages as (key prefixes of the residual blocks, key prefix of the closing resample or None)."""
    pattern = (
        re.compile(r"encoder\.downsamples\.(\d+)\.downsamples\.(\d+)\.")
        if residual
        else re.compile(r"encoder\.downsamples\.(\d+)\.")
    )
    modules = sorted({tuple(int(i) for i in match.groups()) for key in shapes if (match := pattern.match(key))})
    if not modules:
        raise StateDictError("a Wan VAE needs encoder.downsamples, which are missing: is the file complete?")
    stages: list[tuple[list[str], str | None]] = [([], None)]
    for index in modules:
        name = "encoder.downsamples." + ".downsamples.".join(str(i) for i in index) + "."
        if residual and index[0] >= len(stages):
            stages.append(([], None))
        blocks, resample = stages[-1]
        if f"{name}resample.1.weight" in shapes:
            if not blocks:
                raise StateDictError(f"{name}: a resample with no residual block before it in its stage")
            stages[-1] = (blocks, name)
            if not residual:
                stages.append(([], None))
        elif f"{name}residual.0.gamma" in shapes:
            if resample is not None:
                raise StateDictError(f"{name}: a residual block after its stage's resample")
            blocks.append(name)
        else:
            raise StateDictError(f"{name}: neither a residual block nor a resample (attention is not supported)")
    if not stages[-1][0]:
        raise StateDictError("a Wan VAE encoder ends with a resample: is the file complete?")
    return stages


def _diffusers_key_2_2(key: str) -> str:
    """One original Wan 2.2 VAE key in ``AutoencoderKLWan(is_residual=True)`` naming (unknown keys unchanged)."""
    side, _, rest = key.partition(".")
    if side not in ("encoder", "decoder"):
        return _swap_prefix(key, _TOP, to_diffusers=True)
    match = re.match(r"(down|up)samples\.(\d+)\.(?:down|up)samples\.(\d+)\.(.*)", rest)
    if match:
        direction, stage, index, inner = match.groups()
        if inner.startswith(("residual.", "shortcut.")):
            return f"{side}.{direction}_blocks.{stage}.resnets.{index}.{_swap_prefix(inner, _RESIDUAL_PARTS, True)}"
        return f"{side}.{direction}_blocks.{stage}.{direction}sampler.{inner}"
    return f"{side}.{_side_part(rest, to_diffusers=True)}"


def _original_key_2_2(key: str, num_res_blocks: int) -> str:
    """One ``AutoencoderKLWan(is_residual=True)`` key in Wan 2.2's original naming."""
    side, _, rest = key.partition(".")
    if side not in ("encoder", "decoder"):
        return _swap_prefix(key, _TOP, to_diffusers=False)
    match = re.match(r"(down|up)_blocks\.(\d+)\.(?:resnets\.(\d+)\.|(?:down|up)sampler\.)(.*)", rest)
    if match:
        direction, stage, index, inner = match.groups()
        if index is None:  # the resample closes the stage, after its residual blocks
            index = num_res_blocks + (1 if direction == "up" else 0)
        else:
            inner = _swap_prefix(inner, _RESIDUAL_PARTS, to_diffusers=False)
        return f"{side}.{direction}samples.{stage}.{direction}samples.{index}.{inner}"
    return f"{side}.{_side_part(rest, to_diffusers=False)}"


def _original_key_2_1(key: str, num_res_blocks: int) -> str:
    """One ``AutoencoderKLWan`` (2.1) key in Wan 2.1's original naming: the inverse of diffusers'
    ``convert_wan_vae_to_diffusers`` (flat ``encoder.downsamples``; ``decoder.upsamples`` numbering each stage's
    residual blocks, then its upsample)."""
    side, _, rest = key.partition(".")
    if side not in ("encoder", "decoder"):
        return _swap_prefix(key, _TOP, to_diffusers=False)
    match = re.match(r"down_blocks\.(\d+)\.(.*)", rest)
    if match:
        index, inner = match.groups()
        return f"{side}.downsamples.{index}.{_swap_prefix(inner, _RESIDUAL_PARTS, to_diffusers=False)}"
    match = re.match(r"up_blocks\.(\d+)\.(?:resnets\.(\d+)\.|upsamplers\.0\.)(.*)", rest)
    if match:
        stage, resnet, inner = match.groups()
        per_stage = num_res_blocks + 2  # num_res_blocks + 1 residual blocks, then the upsample
        if resnet is None:
            return f"{side}.upsamples.{int(stage) * per_stage + num_res_blocks + 1}.{inner}"
        inner = _swap_prefix(inner, _RESIDUAL_PARTS, to_diffusers=False)
        return f"{side}.upsamples.{int(stage) * per_stage + int(resnet)}.{inner}"
    return f"{side}.{_side_part(rest, to_diffusers=False)}"


def _side_part(rest: str, to_diffusers: bool) -> str:
    """An encoder's or decoder's own modules (in/out convolutions, middle blocks), either way."""
    for original, diffusers in _MIDDLE:
        source, target = (original, diffusers) if to_diffusers else (diffusers, original)
        if rest.startswith(source):
            inner = rest[len(source) :]
            if "resnets" in diffusers:
                inner = _swap_prefix(inner, _RESIDUAL_PARTS, to_diffusers)
            return target + inner
    return _swap_prefix(rest, _SIDE_PARTS, to_diffusers)


def _swap_prefix(name: str, pairs: tuple[tuple[str, str], ...], to_diffusers: bool) -> str:
    """``name`` with the first matching prefix of ``pairs`` (original, diffusers) swapped for the other side's."""
    for original, diffusers in pairs:
        source, target = (original, diffusers) if to_diffusers else (diffusers, original)
        if name.startswith(source):
            return target + name[len(source) :]
    return name
