"""Stable Diffusion 1.5 ControlNets from single files, built as diffusers' ``ControlNetModel``.

Two layouts are read. The original LDM one (the ``control_v11*_sd15_*`` releases) mirrors the UNet's encoder
(``input_blocks``, ``middle_block``, ``time_embed``) and adds the hint encoder (``input_hint_block``: convolutions at
even indices 0 to 14), one zero convolution per input block (``zero_convs.N.0``) and one after the middle block
(``middle_block_out.0``), usually under ``control_model.``. diffusers' layout (``diffusion_pytorch_model.safetensors``
of the Hub's ControlNet folders) names them ``controlnet_cond_embedding``, ``controlnet_down_blocks`` and
``controlnet_mid_block``. LDM files are renamed by diffusers' ``convert_controlnet_checkpoint``; the config is then
read from the diffusers names' shapes (meta tensors do). The head count (8) is not in the weights; it is SD1.5's.

SDXL ControlNets (``label_emb`` / ``add_embedding``), SD 2.x ones (linear attention projections) and other models
(UNets, LoRAs, T2I-Adapters) are refused, saying what the file looks like.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

import torch

from models.errors import StateDictError
from models.families.catalog import text_part_of, transformer_family_of, vae_family_of
from models.families.single_file import StateShapes, build_from_state_dict, key_prefix, unprefixed

if TYPE_CHECKING:
    from diffusers import ControlNetModel

__all__ = [
    "LDM_CONTROLNET_PREFIX",
    "ControlNetSpec",
    "DrivesUnet",
    "NotAControlNetError",
    "controlnet_from_state_dict",
    "controlnet_to_original",
    "detect_controlnet",
    "encoder_config",
    "hint_widths",
]

Layout = Literal["ldm", "diffusers"]

LDM_CONTROLNET_PREFIX = "control_model."
NUM_HEADS = 8  # SD1.5's heads per attention layer (not stored in the weights)
LABEL = "Stable Diffusion 1.5 ControlNet"
_LAYOUT_NAMES = MappingProxyType({"ldm": "LDM layout", "diffusers": "diffusers layout"})
HINT = "controlnet_cond_embedding"
_LDM_IDENTITY = "input_hint_block.0.weight"
_LDM_COMPANIONS = ("time_embed.0.weight", "input_blocks.0.0.weight", "zero_convs.0.0.weight")
_DIFFUSERS_IDENTITY = f"{HINT}.conv_in.weight"
_DIFFUSERS_COMPANIONS = ("time_embedding.linear_1.weight", "conv_in.weight", "controlnet_down_blocks.0.weight")
_LAYOUT_KEYS: tuple[tuple[Layout, str, tuple[str, ...]], ...] = (
    ("ldm", _LDM_IDENTITY, _LDM_COMPANIONS),
    ("diffusers", _DIFFUSERS_IDENTITY, _DIFFUSERS_COMPANIONS),
)
_SDXL_MARKERS = ("label_emb.0.0.weight", "add_embedding.linear_1.weight")
_LORA_SUFFIXES = (".lora_down.weight", ".lora_up.weight", ".lora_A.weight", ".lora_B.weight")
_T2I_ADAPTER_PREFIXES = ("body.0.", "adapter.body.0.")
_FIXED_TO_LDM = MappingProxyType(
    {
        "conv_in": "input_blocks.0.0",
        "time_embedding.linear_1": "time_embed.0",
        "time_embedding.linear_2": "time_embed.2",
        f"{HINT}.conv_in": "input_hint_block.0",
        "controlnet_mid_block": "middle_block_out.0",
    }
)
_RESNET_TO_LDM = MappingProxyType(
    {
        "norm1": "in_layers.0",
        "conv1": "in_layers.2",
        "norm2": "out_layers.0",
        "conv2": "out_layers.3",
        "time_emb_proj": "emb_layers.1",
        "conv_shortcut": "skip_connection",
    }
)


class NotAControlNetError(StateDictError):
    """The tensors are another kind of model (or a ControlNet for another base model); the message says which."""


class DrivesUnet:
    """What a ControlNet-like config says of the UNet it drives (mixed into the spec dataclasses)."""

    config: Mapping[str, Any]

    @property
    def widths(self) -> tuple[int, ...]:
        """The channel widths of its levels (those of the UNet it drives)."""
        return tuple(int(width) for width in self.config["block_out_channels"])

    @property
    def text_dim(self) -> int:
        """The width of the text embeddings it attends to."""
        return int(self.config["cross_attention_dim"])


@dataclass(frozen=True)
class ControlNetSpec(DrivesUnet):
    """A ControlNet file's ``ControlNetModel`` kwargs, and where its tensors sit in the file.

    Attributes:
        config: the ``ControlNetModel`` kwargs read from the shapes.
        layout: ``"ldm"`` (original names) or ``"diffusers"``.
        prefix: the key prefix of the ControlNet's tensors (``"control_model."``, or ``""``).
    """

    config: Mapping[str, Any]
    layout: Layout
    prefix: str

    @property
    def hint_channels(self) -> int:
        """The channels of the control image it takes (3: RGB)."""
        return int(self.config["conditioning_channels"])

    def with_global_pooling(self) -> ControlNetSpec:
        """The same ControlNet averaging its outputs over space (``global_pool_conditions``, as shuffle needs)."""
        return dataclasses.replace(self, config=MappingProxyType({**self.config, "global_pool_conditions": True}))

    def describe(self) -> str:
        """E.g. ``"Stable Diffusion 1.5 ControlNet (LDM layout), widths 320/640/1280/1280, text width 768"``."""
        widths = "/".join(str(width) for width in self.widths)
        pooled = ", pooled globally" if self.config.get("global_pool_conditions") else ""
        return f"{LABEL} ({_LAYOUT_NAMES[self.layout]}), widths {widths}, text width {self.text_dim}{pooled}"


def detect_controlnet(state_dict: Mapping[str, torch.Tensor]) -> ControlNetSpec:
    """The ``ControlNetModel`` config of an SD1.5 ControlNet from its tensor shapes; ``NotAControlNetError`` for
    another model, ``StateDictError`` for an incomplete ControlNet."""
    layout, prefix = _layout(state_dict)
    tensors = _diffusers_tensors(state_dict, layout, prefix)
    return ControlNetSpec(MappingProxyType(_config_from_shapes(tensors)), layout, prefix)


def controlnet_from_state_dict(
    state_dict: Mapping[str, torch.Tensor], dtype: torch.dtype, spec: ControlNetSpec | None = None
) -> ControlNetModel:
    """The ``ControlNetModel`` of an SD1.5 ControlNet file (other models' tensors ignored), in ``dtype``, eval mode.
    ``spec`` (from ``detect_controlnet``, perhaps ``with_global_pooling``) is detected afresh when not given."""
    from diffusers import ControlNetModel

    spec = spec or detect_controlnet(state_dict)
    tensors = _diffusers_tensors(state_dict, spec.layout, spec.prefix)
    return build_from_state_dict(ControlNetModel, spec.config, tensors, dtype, LABEL, _file_namer(spec))


def controlnet_to_original(controlnet: ControlNetModel) -> dict[str, torch.Tensor]:
    """The ControlNet's tensors in the LDM layout under ``control_model.`` (what the original releases hold)."""
    name = _ldm_namer(controlnet.config, LDM_CONTROLNET_PREFIX)
    return {name(key): tensor.detach().contiguous() for key, tensor in controlnet.state_dict().items()}


def _layout(state_dict: Mapping[str, torch.Tensor]) -> tuple[Layout, str]:
    """The layout and key prefix of the ControlNet in ``state_dict``; ``NotAControlNetError`` when there is none."""
    for layout, identity, companions in _LAYOUT_KEYS:
        prefix = key_prefix(state_dict, identity, *companions)
        if prefix is None:
            continue
        if any(prefix + marker in state_dict for marker in _SDXL_MARKERS):
            raise NotAControlNetError("this is an SDXL ControlNet: SDXL ControlNets are not supported yet")
        return layout, prefix
    raise NotAControlNetError(_what_it_is(state_dict))


def _what_it_is(state_dict: Mapping[str, torch.Tensor]) -> str:
    """Why ``state_dict`` is no ControlNet, naming what it looks like when Reelgraph knows."""
    known = transformer_family_of(state_dict) or vae_family_of(state_dict) or text_part_of(state_dict)
    if known is not None:
        return f"this is {known.label}, not a ControlNet"
    if any(key.endswith(_LORA_SUFFIXES) for key in state_dict):
        return "this is a LoRA, not a ControlNet: load it with LoraLoader"
    if any(key.startswith(_T2I_ADAPTER_PREFIXES) for key in state_dict):
        return "this is a T2I-Adapter, not a ControlNet: T2I-Adapters are not supported yet"
    sample = ", ".join(list(state_dict)[:3]) or "no tensors"
    return f"not a ControlNet: no {_LDM_IDENTITY} or {_DIFFUSERS_IDENTITY} (its first tensors: {sample})"


def _diffusers_tensors(state_dict: Mapping[str, torch.Tensor], layout: Layout, prefix: str) -> dict[str, torch.Tensor]:
    """The ControlNet's tensors under diffusers' names (renamed by diffusers' converter from the LDM layout)."""
    from diffusers.loaders.single_file_utils import convert_controlnet_checkpoint

    tensors = unprefixed(state_dict, prefix)
    if layout == "diffusers":
        return tensors
    converted = convert_controlnet_checkpoint(tensors, {"layers_per_block": _ldm_layers_per_block(tensors)})
    return {key: tensor for key, tensor in converted.items() if tensor is not None}  # a missing one is reported later


def _ldm_layers_per_block(tensors: Mapping[str, torch.Tensor]) -> int:
    """Resnets per level of an LDM ControlNet: its input blocks less ``conv_in`` and the downsamplers, per level."""
    shapes = StateShapes(tensors, "", LABEL)
    blocks = shapes.count("input_blocks")
    downsamplers = sum(shapes.has(f"input_blocks.{index}.0.op.weight") for index in range(blocks))
    levels = downsamplers + 1
    layers, remainder = divmod(blocks - 1 - downsamplers, levels)
    if remainder or layers < 1:
        raise StateDictError(f"{blocks} input_blocks do not make {levels} levels of equal depth")
    return layers


def _config_from_shapes(tensors: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """``ControlNetModel`` kwargs from the shapes of diffusers-named ControlNet tensors."""
    shapes = StateShapes(tensors, "", LABEL)
    return {
        **encoder_config(tensors, LABEL, ("CrossAttnDownBlock2D", "DownBlock2D")),
        "conditioning_channels": shapes.get(f"{HINT}.conv_in.weight", 4)[1],
        "conditioning_embedding_out_channels": hint_widths(tensors, LABEL),
        "global_pool_conditions": False,
    }


def encoder_config(tensors: Mapping[str, torch.Tensor], label: str, block_types: tuple[str, str]) -> dict[str, Any]:
    """The kwargs of the SD1.5 UNet encoder copy that ControlNets and SparseCtrls (``label``) share, from the shapes
    of their diffusers-named tensors; ``block_types`` names the attending and the plain down block classes."""
    shapes = StateShapes(tensors, "", label)
    base_width, in_channels = shapes.get("conv_in.weight", 4)[:2]
    levels = shapes.count("down_blocks")
    widths = [shapes.get(f"down_blocks.{level}.resnets.0.conv1.weight", 4)[0] for level in range(levels)]
    attending = [level for level in range(levels) if shapes.has(f"down_blocks.{level}.attentions.0.proj_in.weight")]
    if not attending:
        raise StateDictError(f"{label} attends at its first level; this one does not attend at all")
    if base_width != widths[0]:
        raise StateDictError(f"conv_in makes {base_width} channels but the first level is {widths[0]} wide")
    attention = f"down_blocks.{attending[0]}.attentions.0"
    if tensors[f"{attention}.proj_in.weight"].dim() != 4:
        raise NotAControlNetError(f"this is a Stable Diffusion 2.x ControlNet (linear projections), not a {label}")
    return {
        "in_channels": in_channels,
        "down_block_types": tuple(block_types[0] if level in attending else block_types[1] for level in range(levels)),
        "block_out_channels": tuple(widths),
        "layers_per_block": shapes.count("down_blocks.0.resnets"),
        "cross_attention_dim": shapes.get(f"{attention}.transformer_blocks.0.attn2.to_k.weight", 2)[1],
        "transformer_layers_per_block": shapes.count(f"{attention}.transformer_blocks"),
        "attention_head_dim": NUM_HEADS,
        "use_linear_projection": False,
    }


def hint_widths(tensors: Mapping[str, torch.Tensor], label: str) -> tuple[int, ...]:
    """The hint encoder's widths: its first convolution's, then each stride-2 convolution's (every second block)."""
    shapes = StateShapes(tensors, "", label)
    blocks = shapes.count(f"{HINT}.blocks")
    if blocks % 2:
        raise StateDictError(f"the hint encoder has {blocks} blocks; a {label}'s come in pairs")
    first = shapes.get(f"{HINT}.conv_in.weight", 4)[0]
    return (first, *(shapes.get(f"{HINT}.blocks.{index}.weight", 4)[0] for index in range(1, blocks, 2)))


def _file_namer(spec: ControlNetSpec) -> Callable[[str], str]:
    """What the file calls a ``ControlNetModel`` tensor (for errors naming the file's tensors)."""
    if spec.layout == "ldm":
        return _ldm_namer(spec.config, spec.prefix)
    return lambda key: spec.prefix + key


def _ldm_namer(config: Mapping[str, Any], prefix: str) -> Callable[[str], str]:
    """The LDM name, under ``prefix``, of a tensor of the ``ControlNetModel`` of ``config``."""
    layers = int(config["layers_per_block"])
    hint_out = 4 * len(config["conditioning_embedding_out_channels"]) - 2  # after a pair of convs per step down
    return lambda key: prefix + _ldm_name(key, layers, hint_out)


def _ldm_name(key: str, layers: int, hint_out: int) -> str:
    """The LDM name of a ``ControlNetModel`` tensor (``hint_out``: the index of the hint encoder's last conv)."""
    stem, _, leaf = key.rpartition(".")
    if stem in _FIXED_TO_LDM:
        return f"{_FIXED_TO_LDM[stem]}.{leaf}"
    parts = key.split(".")
    if parts[0] == "controlnet_down_blocks":
        return f"zero_convs.{parts[1]}.0.{leaf}"
    if parts[0] == HINT:
        index = hint_out if parts[1] == "conv_out" else 2 * int(parts[2]) + 2
        return f"input_hint_block.{index}.{leaf}"
    if parts[0] == "mid_block":
        index = 2 * int(parts[2]) if parts[1] == "resnets" else 1
        return f"middle_block.{index}.{_inner_name(parts[1], parts[3:])}"
    if parts[0] == "down_blocks":
        level = int(parts[1])
        if parts[2] == "downsamplers":
            return f"input_blocks.{(level + 1) * (layers + 1)}.0.op.{leaf}"
        index = 1 + level * (layers + 1) + int(parts[3])
        slot = 0 if parts[2] == "resnets" else 1
        return f"input_blocks.{index}.{slot}.{_inner_name(parts[2], parts[4:])}"
    raise ValueError(f"no LDM name for ControlNet tensor {key}")


def _inner_name(kind: str, rest: list[str]) -> str:
    """A resnet's or transformer's own tensor name (``norm1.weight`` -> ``in_layers.0.weight`` for resnets)."""
    if kind == "resnets":
        return ".".join([_RESNET_TO_LDM.get(rest[0], rest[0]), *rest[1:]])
    return ".".join(rest)
