"""The HunyuanVideo VAE from a single file (``hunyuan_video_vae_bf16.safetensors``), built as diffusers'
``AutoencoderKLHunyuanVideo``.

Tencent's original VAE (``AutoencoderKLCausal3D``) already uses diffusers' module names: diffusers' own conversion
script maps no VAE key, and the Comfy-Org file loads into ``AutoencoderKLHunyuanVideo`` with ``strict=True``. So the
original layout is the diffusers layout (``hunyuan_vae_to_original`` is the identity, kept for symmetry with the
other families' tiny-file writers).

Read from shapes: channels in, out and latent, the stages' widths and residual blocks per stage, whether the middle
block has attention. Fixed by the release (the diffusers config's): four stages, 8x spatial and 4x temporal
compression (which stages resample follows from those, as diffusers derives it), 32 norm groups, SiLU, scaling
factor 0.476986.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import torch

from models.errors import StateDictError
from models.families.hunyuan.latents import HUNYUAN_LATENT, SCALING_FACTOR
from models.families.single_file import build_from_state_dict, key_prefix

if TYPE_CHECKING:
    from diffusers import AutoencoderKLHunyuanVideo

__all__ = [
    "HunyuanVaeSpec",
    "detect_hunyuan_vae",
    "hunyuan_vae_from_state_dict",
    "hunyuan_vae_to_original",
    "is_hunyuan_vae",
]

STAGES = 4
SPATIAL_RATIO = 8
TEMPORAL_RATIO = 4
NORM_GROUPS = 32

_IDENTITY = "decoder.mid_block.resnets.0.conv1.conv.weight"
_REQUIRED = ("encoder.conv_in.conv.weight", "decoder.mid_block.resnets.0.norm1.weight", "post_quant_conv.weight")
_BLOCK = "HunyuanVideoDownBlock3D"
_UP_BLOCK = "HunyuanVideoUpBlock3D"


@dataclass(frozen=True)
class HunyuanVaeSpec:
    """The ``AutoencoderKLHunyuanVideo`` kwargs of a HunyuanVideo VAE file."""

    config: Mapping[str, Any]

    def describe(self) -> str:
        """E.g. ``"HunyuanVideo VAE, 16 latent channels, widths 128-256-512-512"``."""
        widths = "-".join(str(width) for width in self.config["block_out_channels"])
        return f"HunyuanVideo VAE, {self.config['latent_channels']} latent channels, widths {widths}"


def is_hunyuan_vae(state_dict: Mapping[str, torch.Tensor]) -> bool:
    """Whether ``state_dict`` is a HunyuanVideo VAE (any key prefix)."""
    return _prefix_of(state_dict) is not None


def detect_hunyuan_vae(state_dict: Mapping[str, torch.Tensor]) -> HunyuanVaeSpec:
    """The diffusers config of a HunyuanVideo VAE from its tensor shapes (meta tensors do); ``StateDictError`` for
    anything else."""
    prefix = _prefix_of(state_dict)
    if prefix is None:
        raise StateDictError(
            "not a HunyuanVideo VAE: no decoder.mid_block.resnets.0 with a GroupNorm and no post_quant_conv"
        )
    shapes = {key[len(prefix) :]: tuple(tensor.shape) for key, tensor in state_dict.items() if key.startswith(prefix)}
    stages = _indices(shapes, r"encoder\.down_blocks\.(\d+)\.")
    if len(stages) != STAGES:
        raise StateDictError(f"a HunyuanVideo VAE has {STAGES} encoder stages; this one has {len(stages)}")
    resample = [f"encoder.down_blocks.{i}.downsamplers.0.conv.conv.weight" in shapes for i in range(STAGES)]
    if resample != [True] * (STAGES - 1) + [False]:
        raise StateDictError("a HunyuanVideo VAE downsamples after every encoder stage but the last; this one does not")
    widths = [_shape(shapes, f"encoder.down_blocks.{i}.resnets.0.conv1.conv.weight", 5)[0] for i in range(STAGES)]
    if any(width % NORM_GROUPS for width in widths):
        raise StateDictError(f"stage widths {widths} do not divide into the VAE's {NORM_GROUPS} norm groups")
    latent_channels = _shape(shapes, "post_quant_conv.weight", 5)[0]
    if latent_channels != HUNYUAN_LATENT.channels:
        raise StateDictError(
            f"a HunyuanVideo-like VAE with {latent_channels} latent channels (HunyuanVideo 1.5's?): only the "
            f"{HUNYUAN_LATENT.channels}-channel HunyuanVideo VAE is supported"
        )
    config = {
        "in_channels": _shape(shapes, "encoder.conv_in.conv.weight", 5)[1],
        "out_channels": _shape(shapes, "decoder.conv_out.conv.weight", 5)[0],
        "latent_channels": latent_channels,
        "down_block_types": (_BLOCK,) * STAGES,
        "up_block_types": (_UP_BLOCK,) * STAGES,
        "block_out_channels": tuple(widths),
        "layers_per_block": len(_indices(shapes, r"encoder\.down_blocks\.0\.resnets\.(\d+)\.")),
        "act_fn": "silu",
        "norm_num_groups": NORM_GROUPS,
        "scaling_factor": SCALING_FACTOR,
        "spatial_compression_ratio": SPATIAL_RATIO,
        "temporal_compression_ratio": TEMPORAL_RATIO,
        "mid_block_add_attention": "encoder.mid_block.attentions.0.to_q.weight" in shapes,
    }
    return HunyuanVaeSpec(MappingProxyType(config))


def hunyuan_vae_from_state_dict(
    state_dict: Mapping[str, torch.Tensor], dtype: torch.dtype
) -> AutoencoderKLHunyuanVideo:
    """An ``AutoencoderKLHunyuanVideo`` (eval mode) holding a single file's weights in ``dtype`` (other keys, a
    combined checkpoint's, ignored)."""
    from diffusers import AutoencoderKLHunyuanVideo

    spec = detect_hunyuan_vae(state_dict)
    prefix = _prefix_of(state_dict) or ""
    tensors = {key[len(prefix) :]: tensor for key, tensor in state_dict.items() if key.startswith(prefix)}
    return build_from_state_dict(AutoencoderKLHunyuanVideo, spec.config, tensors, dtype, spec.describe())


def hunyuan_vae_to_original(diffusers_state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """An ``AutoencoderKLHunyuanVideo`` state dict in the original layout: the same names."""
    return dict(diffusers_state_dict)


def _prefix_of(state_dict: Mapping[str, torch.Tensor]) -> str | None:
    return key_prefix(state_dict, _IDENTITY, *_REQUIRED)


def _shape(shapes: Mapping[str, tuple[int, ...]], name: str, ndim: int) -> tuple[int, ...]:
    shape = shapes.get(name)
    if shape is None:
        raise StateDictError(f"a HunyuanVideo VAE needs {name}, which is missing: is the file complete?")
    if len(shape) != ndim:
        raise StateDictError(f"{name} has shape {shape}; HunyuanVideo's has {ndim} dimensions")
    return shape


def _indices(shapes: Mapping[str, tuple[int, ...]], pattern: str) -> list[int]:
    regex = re.compile(pattern)
    indices = sorted({int(match.group(1)) for key in shapes if (match := regex.match(key))})
    if indices != list(range(len(indices))):
        raise StateDictError(f"a HunyuanVideo VAE with gaps in its numbering ({pattern}: {indices})")
    return indices
