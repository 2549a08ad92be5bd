"""SVD UNets from single files in Stability AI's SGM layout (``svd.safetensors``, ``svd_xt.safetensors``: the UNet
under ``model.diffusion_model.``, next to the CLIP vision tower and the VAE), built as diffusers'
``UNetSpatioTemporalConditionModel``.

diffusers has no single-file converter for SVD, so the renaming is written here as data (``_TOP_LEVEL``,
``_RESNET_LAYERS``, ``_RESNET_PARTS``, ``_ATTENTION_RENAMES``) and one function from diffusers names to SGM names
(``unet_original_name``), used in both directions. SGM's names: ``input_blocks.0.0`` (conv in), then per level
``layers`` slots ``input_blocks.N.{0: resnet, 1: attention}`` and one ``input_blocks.N.0.op`` (downsample);
``middle_block.{0, 1, 2}``; per up level ``layers + 1`` slots ``output_blocks.N.{0: resnet, 1: attention,
1 or 2: upsample conv}``; ``time_embed.{0, 2}``, ``label_emb.0.{0, 2}`` (the added time ids), ``out.{0, 2}``.
Each resnet holds the spatial block (``in_layers``, ``emb_layers``, ``out_layers``, ``skip_connection``), a
temporal one under ``time_stack.`` and ``time_mixer.mix_factor``; each attention its spatial transformer blocks,
temporal ones under ``time_stack.N``, ``time_pos_embed.{0, 2}`` and ``time_mixer.mix_factor``.

The config is read from tensor shapes; the head count is not in the tensors, so every head is 64 wide, as in the
released models (``num_head_channels: 64``: 5, 10, 20, 20 heads).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import torch

from models.errors import StateDictError
from models.families.single_file import StateShapes, build_from_state_dict, key_prefix, unprefixed

if TYPE_CHECKING:
    from diffusers import UNetSpatioTemporalConditionModel

__all__ = [
    "HEAD_DIM",
    "ORIGINAL_PREFIX",
    "SvdUnetSpec",
    "detect_svd_unet",
    "is_svd_unet",
    "svd_spec_from_config",
    "svd_unet_from_state_dict",
    "svd_unet_to_original",
    "unet_original_name",
]

ORIGINAL_PREFIX = "model.diffusion_model."
HEAD_DIM = 64
FAMILY = "Stable Video Diffusion"
_IDENTITY = "middle_block.0.time_stack.in_layers.0.weight"
_COMPANIONS = ("input_blocks.0.0.weight", "label_emb.0.0.weight")

_TOP_LEVEL = (
    ("conv_in.", "input_blocks.0.0."),
    ("time_embedding.linear_1.", "time_embed.0."),
    ("time_embedding.linear_2.", "time_embed.2."),
    ("add_embedding.linear_1.", "label_emb.0.0."),
    ("add_embedding.linear_2.", "label_emb.0.2."),
    ("conv_norm_out.", "out.0."),
    ("conv_out.", "out.2."),
)
"""diffusers prefix -> SGM prefix of the modules outside the blocks."""
_RESNET_LAYERS = (
    ("norm1.", "in_layers.0."),
    ("conv1.", "in_layers.2."),
    ("time_emb_proj.", "emb_layers.1."),
    ("norm2.", "out_layers.0."),
    ("conv2.", "out_layers.3."),
    ("conv_shortcut.", "skip_connection."),
)
"""A residual block's layers: diffusers ``ResnetBlock2D`` / ``TemporalResnetBlock`` -> SGM ``ResBlock``."""
_RESNET_PARTS = (("spatial_res_block.", ""), ("temporal_res_block.", "time_stack."))
"""Where the spatial and the temporal block of a ``SpatioTemporalResBlock`` sit in SGM's ``VideoResBlock``."""
_ATTENTION_RENAMES = (
    ("temporal_transformer_blocks.", "time_stack."),
    ("time_pos_embed.linear_1.", "time_pos_embed.0."),
    ("time_pos_embed.linear_2.", "time_pos_embed.2."),
)
"""The names a ``TransformerSpatioTemporalModel`` spells differently from SGM's ``SpatialVideoTransformer`` (the
transformer blocks, norms and projections have the same names in both)."""
_BLOCK_KEY = re.compile(r"(down_blocks|up_blocks)\.(\d+)\.(resnets|attentions|downsamplers|upsamplers)\.(\d+)\.(.+)")
_MID_KEY = re.compile(r"mid_block\.(resnets|attentions)\.(\d+)\.(.+)")


@dataclass(frozen=True)
class SvdUnetSpec:
    """An SVD UNet's ``UNetSpatioTemporalConditionModel`` kwargs."""

    config: Mapping[str, Any]

    @property
    def layers(self) -> int:
        return int(self.config["layers_per_block"])

    @property
    def up_attention(self) -> tuple[bool, ...]:
        """Per diffusers up block (lowest resolution first): whether it has attention."""
        return tuple(kind.startswith("CrossAttn") for kind in self.config["up_block_types"])

    def describe(self) -> str:
        """E.g. ``"Stable Video Diffusion UNet, channels 320-640-1280-1280, image width 1024"``."""
        widths = "-".join(str(width) for width in self.config["block_out_channels"])
        return f"{FAMILY} UNet, channels {widths}, image width {self.config['cross_attention_dim']}"


def is_svd_unet(state_dict: Mapping[str, torch.Tensor]) -> bool:
    """Whether ``state_dict`` holds an SVD UNet in the SGM layout (any prefix): a middle block with a temporal
    ``time_stack`` next to the added-time embedding ``label_emb``."""
    return _prefix_of(state_dict) is not None


def detect_svd_unet(state_dict: Mapping[str, torch.Tensor]) -> SvdUnetSpec:
    """The diffusers config of an SVD UNet from its tensor shapes alone (meta tensors do); ``StateDictError`` for
    another kind of model or an incomplete one."""
    prefix = _prefix_of(state_dict)
    if prefix is None:
        raise StateDictError(f"not an SVD UNet: no {_IDENTITY} next to {' and '.join(_COMPANIONS)}")
    shapes = StateShapes(state_dict, prefix, FAMILY)
    width, in_channels = shapes.get("input_blocks.0.0.weight", 4)[:2]
    slots = shapes.count("input_blocks")
    downsamples = [index for index in range(slots) if shapes.has(f"input_blocks.{index}.0.op.weight")]
    layers = downsamples[0] - 1 if downsamples else slots - 1
    levels = len(downsamples) + 1
    if layers < 1 or slots != levels * (layers + 1):
        raise StateDictError(
            f"the SVD UNet has {slots} input blocks and downsamples at {downsamples}: not {levels} levels of equal "
            "depth; is the file complete?"
        )
    widths, attention, depths = [], [], []
    for level in range(levels):
        first = 1 + level * (layers + 1)
        widths.append(shapes.get(f"input_blocks.{first}.0.out_layers.3.weight", 4)[0])
        attention.append(shapes.has(f"input_blocks.{first}.1.proj_in.weight"))
        depths.append(shapes.count(f"input_blocks.{first}.1.transformer_blocks") if attention[-1] else 1)
    if not any(attention):
        raise StateDictError("the SVD UNet has no attention in any level: is the file complete?")
    first_attention = 1 + attention.index(True) * (layers + 1)
    cross = shapes.get(f"input_blocks.{first_attention}.1.transformer_blocks.0.attn2.to_k.weight", 2)[1]
    added = shapes.get("label_emb.0.0.weight", 2)[1]
    time_width = shapes.get("time_embed.0.weight", 2)[0]
    odd = [w for w in widths if w % HEAD_DIM]
    if added % 3 or time_width != 4 * width or odd:
        raise StateDictError(
            f"the SVD UNet's shapes do not fit its architecture: added-time input {added} (3 ids), time embedding "
            f"{time_width} (4 x {width}), channels {widths} (multiples of the head width {HEAD_DIM})"
        )
    config = {
        "sample_size": 96,
        "in_channels": in_channels,
        "out_channels": shapes.get("out.2.weight", 4)[0],
        "down_block_types": tuple(
            "CrossAttnDownBlockSpatioTemporal" if has else "DownBlockSpatioTemporal" for has in attention
        ),
        "up_block_types": tuple(
            "CrossAttnUpBlockSpatioTemporal" if has else "UpBlockSpatioTemporal" for has in reversed(attention)
        ),
        "block_out_channels": tuple(widths),
        "addition_time_embed_dim": added // 3,
        "projection_class_embeddings_input_dim": added,
        "layers_per_block": layers,
        "cross_attention_dim": cross,
        "transformer_layers_per_block": tuple(depths),
        "num_attention_heads": tuple(w // HEAD_DIM for w in widths),
        "num_frames": 25,
    }
    return SvdUnetSpec(MappingProxyType(config))


def svd_spec_from_config(config: Mapping[str, Any]) -> SvdUnetSpec:
    """The spec of a ``UNetSpatioTemporalConditionModel`` config (a diffusers ``unet/config.json``), with diffusers'
    defaults for what the file leaves out."""
    from diffusers import UNetSpatioTemporalConditionModel

    parameters = inspect.signature(UNetSpatioTemporalConditionModel.__init__).parameters
    kwargs = {
        name: config.get(name, parameter.default)
        for name, parameter in parameters.items()
        if parameter.default is not inspect.Parameter.empty
    }
    return SvdUnetSpec(MappingProxyType(kwargs))


def svd_unet_from_state_dict(
    state_dict: Mapping[str, torch.Tensor], dtype: torch.dtype, metadata: Mapping[str, str] | None = None
) -> UNetSpatioTemporalConditionModel:
    """A ``UNetSpatioTemporalConditionModel`` (eval mode) holding a single file's UNet in ``dtype``; the other parts
    of the checkpoint (CLIP vision, VAE) are ignored."""
    from accelerate import init_empty_weights
    from diffusers import UNetSpatioTemporalConditionModel

    spec = detect_svd_unet(state_dict)
    own = unprefixed(state_dict, _prefix_of(state_dict) or "")
    with init_empty_weights():
        expected = list(UNetSpatioTemporalConditionModel(**spec.config).state_dict())
    converted = {}
    for key in expected:
        source = unet_original_name(key, spec)
        if source in own:
            converted[key] = own.pop(source)
    converted.update(own)  # tensors the model does not have keep their names, for the shape check to report
    return build_from_state_dict(
        UNetSpatioTemporalConditionModel,
        spec.config,
        converted,
        dtype,
        spec.describe(),
        lambda key: ORIGINAL_PREFIX + unet_original_name(key, spec),
    )


def svd_unet_to_original(
    diffusers_state_dict: Mapping[str, torch.Tensor], spec: SvdUnetSpec
) -> dict[str, torch.Tensor]:
    """A ``UNetSpatioTemporalConditionModel`` state dict in SGM's names (no prefix)."""
    return {unet_original_name(key, spec): tensor for key, tensor in diffusers_state_dict.items()}


def unet_original_name(key: str, spec: SvdUnetSpec) -> str:
    """The SGM name of the diffusers UNet tensor ``key`` (unknown names come back unchanged)."""
    for new, old in _TOP_LEVEL:
        if key.startswith(new):
            return old + key.removeprefix(new)
    if match := _MID_KEY.fullmatch(key):
        kind, index, rest = match.groups()
        slot = 1 if kind == "attentions" else 2 * int(index)
        return f"middle_block.{slot}." + (_attention(rest) if kind == "attentions" else _resnet(rest))
    match = _BLOCK_KEY.fullmatch(key)
    if match is None:
        return key
    side, block, kind, index, rest = match.groups()
    stride = spec.layers + 1
    if side == "down_blocks":
        slot = 1 + int(block) * stride
        if kind == "downsamplers":
            return f"input_blocks.{slot + spec.layers}.0.op.{rest.removeprefix('conv.')}"
    else:
        slot = int(block) * stride
        if kind == "upsamplers":
            position = 2 if spec.up_attention[int(block)] else 1
            return f"output_blocks.{slot + spec.layers}.{position}.{rest}"
    blocks = "input_blocks" if side == "down_blocks" else "output_blocks"
    slot += int(index)
    if kind == "attentions":
        return f"{blocks}.{slot}.1.{_attention(rest)}"
    return f"{blocks}.{slot}.0.{_resnet(rest)}"


def _resnet(rest: str) -> str:
    """SGM's name, inside a ``VideoResBlock``, of a ``SpatioTemporalResBlock`` tensor."""
    for part, original_part in _RESNET_PARTS:
        if rest.startswith(part):
            inner = rest.removeprefix(part)
            for new, old in _RESNET_LAYERS:
                if inner.startswith(new):
                    return original_part + old + inner.removeprefix(new)
    return rest  # time_mixer.mix_factor, and unknown names


def _attention(rest: str) -> str:
    """SGM's name, inside a ``SpatialVideoTransformer``, of a ``TransformerSpatioTemporalModel`` tensor."""
    for new, old in _ATTENTION_RENAMES:
        if rest.startswith(new):
            return old + rest.removeprefix(new)
    return rest


def _prefix_of(state_dict: Mapping[str, torch.Tensor]) -> str | None:
    return key_prefix(state_dict, _IDENTITY, *_COMPANIONS)
