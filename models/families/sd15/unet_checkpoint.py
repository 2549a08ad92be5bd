"""Stable Diffusion 1.5 UNets from single files in the original LDM key layout (``model.diffusion_model.input_blocks``,
``middle_block``, ``output_blocks``, ``time_embed``, ``out``), as SD1.5 checkpoints ship them, built as diffusers'
``UNet2DConditionModel``.

The LDM config is read from tensor shapes (base width from ``input_blocks.0.0``, the channel multipliers from each
level's first resnet, the levels from the downsamplers, the resnets per level from the block count, which levels
attend from their ``proj_in``, the text width from ``attn2.to_k``); diffusers' ``create_unet_diffusers_config_from_ldm``
turns it into the diffusers config and ``convert_ldm_unet_checkpoint`` renames the tensors. The head count (8) is not
in the weights; it is SD1.5's. SD 2.x (linear projections, v-prediction), SDXL (``label_emb``) and SVD (temporal
layers) files are not SD1.5 UNets.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import torch

from models.errors import StateDictError
from models.families.single_file import StateShapes, build_from_state_dict, key_prefix

if TYPE_CHECKING:
    from diffusers import UNet2DConditionModel

__all__ = [
    "LDM_UNET_PREFIX",
    "Sd15UnetSpec",
    "detect_sd15_unet",
    "is_sd15_unet",
    "sd15_spec_from_config",
    "sd15_unet_from_state_dict",
    "sd15_unet_to_original",
]

LDM_UNET_PREFIX = "model.diffusion_model."
NUM_HEADS = 8  # SD1.5's heads per attention layer (not stored in the weights)
FAMILY = "Stable Diffusion 1.5"
_IDENTITY = "input_blocks.0.0.weight"
_COMPANIONS = ("middle_block.1.proj_in.weight", "out.2.weight", "time_embed.0.weight")
_OTHER_MODELS = ("time_stack", "time_mixer", "label_emb")  # SVD's temporal layers; SDXL's added embeddings
_RESNET_TO_LDM = (
    ("norm1", "in_layers.0"),
    ("conv1", "in_layers.2"),
    ("norm2", "out_layers.0"),
    ("conv2", "out_layers.3"),
    ("time_emb_proj", "emb_layers.1"),
    ("conv_shortcut", "skip_connection"),
)


@dataclass(frozen=True)
class Sd15UnetSpec:
    """An SD1.5 UNet's ``UNet2DConditionModel`` kwargs."""

    config: Mapping[str, Any]

    @property
    def base_width(self) -> int:
        return int(self.config["block_out_channels"][0])

    @property
    def text_dim(self) -> int:
        return int(self.config["cross_attention_dim"])

    def describe(self) -> str:
        """E.g. ``"Stable Diffusion 1.5 UNet, widths 320/640/1280/1280, text width 768"``."""
        widths = "/".join(str(width) for width in self.config["block_out_channels"])
        return f"{FAMILY} UNet, widths {widths}, text width {self.text_dim}"


def is_sd15_unet(state_dict: Mapping[str, torch.Tensor]) -> bool:
    """Whether ``state_dict`` holds an SD1.5-style UNet in the LDM layout (any prefix; not SVD's or SDXL's)."""
    prefix = _prefix_of(state_dict)
    if prefix is None:
        return False
    return not any(key.startswith(prefix) and marker in key for key in state_dict for marker in _OTHER_MODELS)


def detect_sd15_unet(state_dict: Mapping[str, torch.Tensor]) -> Sd15UnetSpec:
    """The diffusers config of an SD1.5 UNet from its tensor shapes (meta tensors do); ``StateDictError`` for
    another model or an incomplete one."""
    from diffusers.loaders.single_file_utils import create_unet_diffusers_config_from_ldm

    prefix = _prefix_of(state_dict)
    if prefix is None or not is_sd15_unet(state_dict):
        raise StateDictError(f"not a {FAMILY} UNet: no {_IDENTITY} next to {', '.join(_COMPANIONS)} (or SVD/SDXL keys)")
    shapes = StateShapes(state_dict, prefix, FAMILY)
    model_channels, in_channels = shapes.get(_IDENTITY, 4)[:2]
    out_channels = shapes.get("out.2.weight", 4)[0]
    blocks = shapes.count("input_blocks")
    downsamplers = [index for index in range(blocks) if shapes.has(f"input_blocks.{index}.0.op.weight")]
    levels = len(downsamplers) + 1
    layers, remainder = divmod(blocks - 1 - len(downsamplers), levels)
    if remainder or layers < 1:
        raise StateDictError(f"{blocks} input_blocks do not make {levels} levels of equal depth")
    multipliers, attending = [], []
    for level in range(levels):
        first = 1 + level * (layers + 1)
        width = shapes.get(f"input_blocks.{first}.0.in_layers.2.weight", 4)[0]
        multipliers.append(width // model_channels)
        if shapes.has(f"input_blocks.{first}.1.proj_in.weight"):
            attending.append(first)
            if len(shapes.get(f"input_blocks.{first}.1.proj_in.weight", 4)) != 4:
                raise StateDictError(f"a {FAMILY} UNet has convolutional proj_in layers (this is an SD 2.x UNet)")
    if not attending:
        raise StateDictError(f"a {FAMILY} UNet attends at its first level; this one does not attend at all")
    attention = f"input_blocks.{attending[0]}.1.transformer_blocks"
    context_dim = shapes.get(f"{attention}.0.attn2.to_k.weight", 2)[1]
    depth = shapes.count(attention)
    unet_params = {
        "in_channels": in_channels,
        "out_channels": out_channels,
        "model_channels": model_channels,
        "channel_mult": multipliers,
        "num_res_blocks": layers,
        "attention_resolutions": [2 ** ((index - 1) // (layers + 1)) for index in attending],
        "transformer_depth": depth,
        "context_dim": context_dim,
        "num_heads": NUM_HEADS,
        "use_linear_in_transformer": False,
    }
    original = {
        "model": {
            "params": {
                "unet_config": {"params": unet_params},
                "first_stage_config": {"params": {"ddconfig": {"ch_mult": [1, 2, 4, 4]}}},
            }
        }
    }
    config = create_unet_diffusers_config_from_ldm(original, state_dict)
    return Sd15UnetSpec(MappingProxyType(config))


def sd15_spec_from_config(config: Mapping[str, Any]) -> Sd15UnetSpec:
    """The spec of a diffusers ``unet/config.json`` (``UNet2DConditionModel`` or ``UNetMotionModel``)."""
    if "block_out_channels" not in config or "cross_attention_dim" not in config:
        raise ValueError("the UNet config has no block_out_channels or cross_attention_dim")
    return Sd15UnetSpec(MappingProxyType(dict(config)))


def sd15_unet_from_state_dict(
    state_dict: Mapping[str, torch.Tensor], dtype: torch.dtype, metadata: Mapping[str, str] | None = None
) -> UNet2DConditionModel:
    """The ``UNet2DConditionModel`` of an SD1.5 UNet file (other models' keys ignored), in ``dtype``."""
    from diffusers import UNet2DConditionModel
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint

    del metadata
    spec = detect_sd15_unet(state_dict)
    prefix = _prefix_of(state_dict)
    assert prefix is not None
    ldm = {LDM_UNET_PREFIX + key[len(prefix) :]: tensor for key, tensor in state_dict.items() if key.startswith(prefix)}
    converted = convert_ldm_unet_checkpoint(ldm, dict(spec.config))
    return build_from_state_dict(UNet2DConditionModel, spec.config, converted, dtype, f"{FAMILY} UNet")


def sd15_unet_to_original(unet: UNet2DConditionModel) -> dict[str, torch.Tensor]:
    """The UNet's tensors in the LDM layout under ``model.diffusion_model.`` (what SD1.5 checkpoints hold)."""
    from diffusers.loaders.single_file_utils import DIFFUSERS_TO_LDM_MAPPING

    layers = int(unet.config["layers_per_block"])
    attending = frozenset(index for index, block in enumerate(unet.up_blocks) if hasattr(block, "attentions"))
    fixed = DIFFUSERS_TO_LDM_MAPPING["unet"]["layers"]
    renamed = {}
    for key, tensor in unet.state_dict().items():
        renamed[LDM_UNET_PREFIX + (fixed.get(key) or _ldm_name(key, layers, attending))] = tensor.detach().contiguous()
    return renamed


def _ldm_name(key: str, layers: int, attending_up: frozenset[int]) -> str:
    """The LDM name of a diffusers UNet tensor that ``DIFFUSERS_TO_LDM_MAPPING`` does not list (``attending_up``:
    the up blocks with attentions, whose upsampler comes third in its LDM block)."""
    parts = key.split(".")
    if parts[0] == "mid_block":
        index = 2 * int(parts[2]) if parts[1] == "resnets" else 1
        return _resnet_name(f"middle_block.{index}", parts[3:], parts[1])
    block = int(parts[1])
    if parts[0] == "down_blocks":
        if parts[2] == "downsamplers":
            return f"input_blocks.{(block + 1) * (layers + 1)}.0.op." + ".".join(parts[5:])
        index = 1 + block * (layers + 1) + int(parts[3])
        return _resnet_name(f"input_blocks.{index}.{0 if parts[2] == 'resnets' else 1}", parts[4:], parts[2])
    if parts[0] == "up_blocks":
        if parts[2] == "upsamplers":
            slot = 2 if block in attending_up else 1
            return f"output_blocks.{block * (layers + 1) + layers}.{slot}.conv." + ".".join(parts[5:])
        index = block * (layers + 1) + int(parts[3])
        return _resnet_name(f"output_blocks.{index}.{0 if parts[2] == 'resnets' else 1}", parts[4:], parts[2])
    raise ValueError(f"no LDM name for UNet tensor {key}")


def _resnet_name(stem: str, rest: list[str], kind: str) -> str:
    name = ".".join(rest)
    if kind == "resnets":
        for diffusers_name, ldm_name in _RESNET_TO_LDM:
            if name.startswith(diffusers_name + "."):
                name = ldm_name + name[len(diffusers_name) :]
                break
    return f"{stem}.{name}"


def _prefix_of(state_dict: Mapping[str, torch.Tensor]) -> str | None:
    return key_prefix(state_dict, _IDENTITY, *_COMPANIONS)
