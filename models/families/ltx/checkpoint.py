"""LTX-Video diffusion models from single files in Lightricks' original key layout: the combined checkpoints
(``ltx-video-2b-v0.9.5.safetensors``: the network under ``model.diffusion_model.``, the VAE under ``vae.``) and
separate transformer files (any prefix, or none). The config is read from tensor shapes, the keys converted by
diffusers' ``convert_ltx_transformer_checkpoint_to_diffusers``, and ``ltx_transformer_to_original`` writes that
layout back (for tiny stand-in files).

What the shapes cannot tell is fixed by the released models (0.9.0 to 0.9.8, 2B and 13B), whose diffusers configs
agree on it: patch sizes 1 (so ``in_channels`` is the input projection's width), 32 heads (the q/k norms span all
heads, so the head count is not otherwise recoverable): head dim 64 for the 2B width 2048, 128 for the 13B width
4096 (taken here as 64 below width 4096 and 128 from it), qk_norm "rms_norm_across_heads", gelu-approximate
feed-forward of 4x the width, eps 1e-6, no norm affine parameters, biased attention. Read from shapes: the width,
layer count, in/out channels, caption (T5) width and cross-attention width. 2B: width 2048, 28 layers; 13B
(0.9.7, 0.9.8): width 4096, 48 layers, cross-attention 4096.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import torch

from models.errors import StateDictError
from models.families.single_file import build_from_state_dict, key_prefix
from models.scaled_fp8 import MARKER, dequantize_scaled

if TYPE_CHECKING:
    from diffusers import LTXVideoTransformer3DModel

__all__ = [
    "ORIGINAL_PREFIX",
    "LtxTransformerSpec",
    "detect_ltx_transformer",
    "is_ltx_transformer",
    "ltx_transformer_from_state_dict",
    "ltx_transformer_to_original",
]

logger = logging.getLogger(__name__)

ORIGINAL_PREFIX = "model.diffusion_model."
"""The key prefix of the transformer in the combined checkpoints."""
WIDE_MODEL = 4096
HEAD_DIM_NARROW = 64
HEAD_DIM_WIDE = 128
EPS = 1e-6
QK_NORM = "rms_norm_across_heads"

_IDENTITY = "adaln_single.linear.weight"
_KNOWN_MODULES = frozenset(
    {
        "patchify_proj",
        "adaln_single",
        "caption_projection",
        "scale_shift_table",
        "transformer_blocks",
        "proj_out",
        MARKER,
    }
)
# diffusers' renaming (original, diffusers); each name occurs in one place only, so it is its own inverse.
_RENAMES = (
    ("patchify_proj.", "proj_in."),
    ("adaln_single.", "time_embed."),
    ("q_norm.", "norm_q."),
    ("k_norm.", "norm_k."),
)
_MAX_LISTED = 5


@dataclass(frozen=True)
class LtxTransformerSpec:
    """An LTX-Video diffusion model's ``LTXVideoTransformer3DModel`` kwargs."""

    config: Mapping[str, Any]

    @property
    def width(self) -> int:
        return int(self.config["num_attention_heads"]) * int(self.config["attention_head_dim"])

    def describe(self) -> str:
        """E.g. ``"LTX-Video, dim 2048, 28 layers"``."""
        return f"LTX-Video, dim {self.width}, {self.config['num_layers']} layers"


def is_ltx_transformer(state_dict: Mapping[str, torch.Tensor]) -> bool:
    """Whether ``state_dict`` holds an LTX-Video diffusion model in the original layout (any key prefix; a combined
    checkpoint counts)."""
    return _prefix_of(state_dict) is not None


def detect_ltx_transformer(state_dict: Mapping[str, torch.Tensor]) -> LtxTransformerSpec:
    """The diffusers config of an LTX-Video diffusion model from its tensor shapes alone (meta tensors do).

    Raises ``StateDictError`` for another kind of model, an incomplete or misshapen one, or modules Reelgraph does
    not know (LTX-2's audio-video model).
    """
    prefix = _prefix_of(state_dict)
    if prefix is None:
        raise StateDictError(
            "not an LTX-Video diffusion model: no adaln_single.linear.weight next to patchify_proj.weight "
            f"({_looks_like(state_dict)})"
        )
    shapes = {key[len(prefix) :]: tuple(t.shape) for key, t in state_dict.items() if key.startswith(prefix)}
    unknown = sorted({key.split(".", 1)[0] for key in shapes} - _KNOWN_MODULES)
    if unknown:
        raise StateDictError(
            f"an LTX model with modules Reelgraph does not know ({', '.join(unknown[:_MAX_LISTED])}): "
            "LTX-2 and other variants are not supported yet"
        )
    width, in_channels = _shape(shapes, "patchify_proj.weight", 2)
    out_channels, out_width = _shape(shapes, "proj_out.weight", 2)
    if out_width != width:
        raise StateDictError(f"proj_out.weight takes {out_width} channels but patchify_proj.weight makes {width}")
    head_dim = HEAD_DIM_WIDE if width >= WIDE_MODEL else HEAD_DIM_NARROW
    if width % head_dim:
        raise StateDictError(f"the model width {width} is not a multiple of LTX-Video's head dim {head_dim}")
    num_layers = _count(shapes, "transformer_blocks")
    if "transformer_blocks.0.norm1.weight" in shapes:
        raise StateDictError("an LTX-Video model with affine block norms: not a released layout")
    config: dict[str, Any] = {
        "in_channels": in_channels,
        "out_channels": out_channels,
        "patch_size": 1,
        "patch_size_t": 1,
        "num_attention_heads": width // head_dim,
        "attention_head_dim": head_dim,
        "cross_attention_dim": _shape(shapes, "transformer_blocks.0.attn2.to_k.weight", 2)[1],
        "num_layers": num_layers,
        "activation_fn": "gelu-approximate",
        "qk_norm": QK_NORM,
        "norm_elementwise_affine": False,
        "norm_eps": EPS,
        "caption_channels": _shape(shapes, "caption_projection.linear_1.weight", 2)[1],
        "attention_bias": "transformer_blocks.0.attn1.to_q.bias" in shapes,
        "attention_out_bias": "transformer_blocks.0.attn1.to_out.0.bias" in shapes,
    }
    return LtxTransformerSpec(MappingProxyType(config))


def ltx_transformer_from_state_dict(
    state_dict: Mapping[str, torch.Tensor], dtype: torch.dtype, metadata: Mapping[str, str] | None = None
) -> LTXVideoTransformer3DModel:
    """An ``LTXVideoTransformer3DModel`` (eval mode) holding a single file's weights in ``dtype``; other models'
    tensors (a combined checkpoint's ``vae.``) are ignored. Scaled fp8 weights are restored straight to ``dtype``.
    """
    from diffusers import LTXVideoTransformer3DModel
    from diffusers.loaders.single_file_utils import convert_ltx_transformer_checkpoint_to_diffusers

    spec = detect_ltx_transformer(state_dict)
    prefix = _prefix_of(state_dict) or ""
    tensors = {key[len(prefix) :]: t for key, t in state_dict.items() if key.startswith(prefix)}
    if len(tensors) < len(state_dict):
        logger.debug("ignored %d tensors outside the model prefix %r", len(state_dict) - len(tensors), prefix)
    tensors = dict(dequantize_scaled(tensors, dtype, metadata))
    tensors.pop(MARKER, None)
    converted = convert_ltx_transformer_checkpoint_to_diffusers(tensors)
    return build_from_state_dict(
        LTXVideoTransformer3DModel, spec.config, converted, dtype, spec.describe(), _swap_names
    )


def ltx_transformer_to_original(diffusers_state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """An ``LTXVideoTransformer3DModel`` state dict in the original key names (no prefix), the same tensors; the
    exact inverse of diffusers' conversion."""
    return {_swap_names(key): tensor for key, tensor in diffusers_state_dict.items()}


def _swap_names(key: str) -> str:
    """One key in the other naming (original <-> diffusers): each renamed part occurs under one name only."""
    for original, diffusers in _RENAMES:
        if original in key:
            return key.replace(original, diffusers)
        if diffusers in key:
            return key.replace(diffusers, original)
    return key


def _prefix_of(state_dict: Mapping[str, torch.Tensor]) -> str | None:
    """The shortest prefix under which both ``adaln_single.linear.weight`` and ``patchify_proj.weight`` exist."""
    return key_prefix(state_dict, _IDENTITY, "patchify_proj.weight")


def _shape(shapes: Mapping[str, tuple[int, ...]], name: str, ndim: int) -> tuple[int, ...]:
    shape = shapes.get(name)
    if shape is None:
        raise StateDictError(f"an LTX-Video diffusion model needs {name}, which is missing: is the file complete?")
    if len(shape) != ndim:
        raise StateDictError(f"{name} has shape {shape}; LTX-Video's has {ndim} dimensions")
    return shape


def _count(shapes: Mapping[str, tuple[int, ...]], group: str) -> int:
    """How many ``group.N`` blocks there are; a gap in the numbering raises."""
    pattern = re.compile(re.escape(group) + r"\.(\d+)\.")
    indices = {int(match.group(1)) for key in shapes if (match := pattern.match(key))}
    if not indices:
        raise StateDictError(f"an LTX-Video diffusion model needs {group}.0, which is missing: is the file complete?")
    gaps = sorted(set(range(max(indices) + 1)) - indices)
    if gaps:
        listed = ", ".join(f"{group}.{index}" for index in gaps[:_MAX_LISTED])
        raise StateDictError(f"{listed} missing (the file has {group} up to {max(indices)}): is the file complete?")
    return max(indices) + 1


def _looks_like(state_dict: Mapping[str, torch.Tensor]) -> str:
    """A hint at what a state dict that is not an LTX-Video diffusion model is."""
    keys = list(state_dict)
    if any(key.startswith(("decoder.", "vae.decoder.")) for key in keys):
        return "it looks like a VAE"
    if any("encoder.block." in key or key.endswith("shared.weight") for key in keys):
        return "it looks like a text encoder"
    if any(key.endswith("head.modulation") for key in keys):
        return "it looks like a Wan diffusion model"
    return "is it a VAE or a text encoder?"
