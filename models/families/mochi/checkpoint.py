"""Mochi diffusion models from single files in Genmo's original key layout, as the Comfy-Org repackaged releases ship
them (``mochi_preview_bf16.safetensors``, and fp8 files with per-layer scales; keys maybe prefixed
``model.diffusion_model.``, no config), built as diffusers' ``MochiTransformer3DModel``.

The config is read from tensor shapes: the width and patch size from ``x_embedder.proj.weight``, heads and head dim
from ``pos_frequencies`` (``[3, heads, head_dim / 2]``), the layer count from ``blocks.N``, the text width and the
caption width (``pooled_projection_dim``) from ``t5_yproj.weight``, the timestep embedding width from
``t_embedder.mlp.0.weight`` and the output channels from ``final_layer.linear.weight``. The released model: width
3072 (24 heads of 128), 48 layers, caption width 1536, text width 4096 (T5-XXL), 12 latent channels, patch 2.

diffusers' own ``convert_mochi_transformer_checkpoint_to_diffusers`` assumes 48 layers, so the renaming is written
here, in both directions, from one table (``_source``): Genmo fuses q, k and v (``attn.qkv_x`` / ``attn.qkv_y``),
orders its SwiGLU projection (``mlp_*.w1``) and its final modulation (``final_layer.mod``) with the halves the other
way round, and calls the last block's caption modulation (diffusers' ``norm1_context.linear_1``) ``mod_y`` too.
"""

from __future__ import annotations

import inspect
import logging
import re
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple

import torch

from models.errors import StateDictError
from models.families.single_file import build_from_state_dict, key_prefix
from models.scaled_fp8 import MARKER, dequantize_scaled

if TYPE_CHECKING:
    from diffusers import MochiTransformer3DModel

__all__ = [
    "ORIGINAL_PREFIX",
    "MochiTransformerSpec",
    "detect_mochi_transformer",
    "is_mochi_transformer",
    "mochi_spec_from_config",
    "mochi_transformer_from_state_dict",
    "mochi_transformer_to_diffusers",
    "mochi_transformer_to_original",
]

logger = logging.getLogger(__name__)

ORIGINAL_PREFIX = "model.diffusion_model."
"""The key prefix ComfyUI uses for diffusion models (loading takes any prefix, or none)."""
MAX_SEQUENCE_LENGTH = 256  # not stored in the weights; the released config's (T5 prompts of 256 tokens)

_IDENTITY = "t5_yproj.weight"
_PATCH = "x_embedder.proj.weight"
_KNOWN_MODULES = frozenset(
    {"x_embedder", "t_embedder", "t5_y_embedder", "t5_yproj", "pos_frequencies", "blocks", "final_layer", MARKER}
)
_MAX_LISTED = 5


@dataclass(frozen=True)
class MochiTransformerSpec:
    """A Mochi diffusion model's ``MochiTransformer3DModel`` kwargs."""

    config: Mapping[str, Any]

    @property
    def hidden_size(self) -> int:
        return int(self.config["num_attention_heads"]) * int(self.config["attention_head_dim"])

    def describe(self) -> str:
        """E.g. ``"Mochi, dim 3072, 48 layers, text width 4096"``."""
        return (
            f"Mochi, dim {self.hidden_size}, {self.config['num_layers']} layers, "
            f"text width {self.config['text_embed_dim']}"
        )


def is_mochi_transformer(state_dict: Mapping[str, torch.Tensor]) -> bool:
    """Whether ``state_dict`` is a Mochi diffusion model in Genmo's layout (any key prefix)."""
    return _prefix_of(state_dict) is not None


def detect_mochi_transformer(state_dict: Mapping[str, torch.Tensor]) -> MochiTransformerSpec:
    """The diffusers config of a Mochi diffusion model, from its tensor shapes alone (meta tensors do).

    Raises ``StateDictError`` for another kind of model or an incomplete or misshapen one.
    """
    prefix = _prefix_of(state_dict)
    if prefix is None:
        raise StateDictError(
            f"not a Mochi diffusion model: no {_IDENTITY} next to {_PATCH} ({_looks_like(state_dict)})"
        )
    shapes = {key[len(prefix) :]: tuple(tensor.shape) for key, tensor in state_dict.items() if key.startswith(prefix)}
    unknown = sorted({key.split(".", 1)[0] for key in shapes} - _KNOWN_MODULES)
    if unknown:
        raise StateDictError(
            f"a Mochi diffusion model with modules Reelgraph does not know ({', '.join(unknown[:_MAX_LISTED])})"
        )
    dim, in_channels, patch, patch_w = _shape(shapes, _PATCH, 4)
    if patch != patch_w:
        raise StateDictError(f"{_PATCH} has a {patch}x{patch_w} patch; Mochi's patches are square")
    _, heads, half_head_dim = _shape(shapes, "pos_frequencies", 3)
    if heads * 2 * half_head_dim != dim:
        raise StateDictError(
            f"pos_frequencies makes {heads} heads of {2 * half_head_dim} channels, but the model is {dim} wide"
        )
    pooled_dim, text_dim = _shape(shapes, _IDENTITY, 2)
    out_rows = _shape(shapes, "final_layer.linear.weight", 2)[0]
    if out_rows % (patch * patch):
        raise StateDictError(
            f"final_layer.linear.weight has {out_rows} rows, not a multiple of the {patch}x{patch} patch"
        )
    config = {
        "patch_size": patch,
        "num_attention_heads": heads,
        "attention_head_dim": 2 * half_head_dim,
        "num_layers": _count_blocks(shapes),
        "pooled_projection_dim": pooled_dim,
        "in_channels": in_channels,
        "out_channels": out_rows // (patch * patch),
        "qk_norm": "rms_norm",
        "text_embed_dim": text_dim,
        "time_embed_dim": _shape(shapes, "t_embedder.mlp.0.weight", 2)[1],
        "activation_fn": "swiglu",
        "max_sequence_length": MAX_SEQUENCE_LENGTH,
    }
    return MochiTransformerSpec(MappingProxyType(config))


def mochi_spec_from_config(config: Mapping[str, Any]) -> MochiTransformerSpec:
    """The spec of a ``MochiTransformer3DModel`` config (a diffusers ``transformer/config.json``): its constructor
    arguments, with diffusers' defaults for those the file leaves out and bookkeeping keys dropped."""
    from diffusers import MochiTransformer3DModel

    parameters = inspect.signature(MochiTransformer3DModel.__init__).parameters
    kwargs = {
        name: config.get(name, parameter.default)
        for name, parameter in parameters.items()
        if parameter.default is not inspect.Parameter.empty
    }
    if kwargs["out_channels"] is None:
        kwargs["out_channels"] = kwargs["in_channels"]
    return MochiTransformerSpec(MappingProxyType(kwargs))


def mochi_transformer_from_state_dict(
    state_dict: Mapping[str, torch.Tensor], dtype: torch.dtype, metadata: Mapping[str, str] | None = None
) -> MochiTransformer3DModel:
    """A ``MochiTransformer3DModel`` (eval mode) holding a single file's weights in ``dtype``; scaled fp8 weights
    (``models.scaled_fp8`` layouts) are restored straight to ``dtype``. Keys outside the model's prefix (the other
    parts of a combined checkpoint) are ignored.

    Args:
        state_dict: the file's tensors, original key names, any prefix.
        dtype: the floating-point dtype of the weights.
        metadata: the file's safetensors metadata (one fp8 layout describes its layers there).
    """
    from diffusers import MochiTransformer3DModel

    spec = detect_mochi_transformer(state_dict)
    prefix = _prefix_of(state_dict) or ""
    own = {key[len(prefix) :]: tensor for key, tensor in state_dict.items() if key.startswith(prefix)}
    if len(own) < len(state_dict):
        logger.debug("ignored %d tensors outside the model prefix %r", len(state_dict) - len(own), prefix)
    original = dequantize_scaled(own, dtype, metadata)
    original.pop(MARKER, None)
    converted = mochi_transformer_to_diffusers(original, spec)
    return build_from_state_dict(
        MochiTransformer3DModel, spec.config, converted, dtype, spec.describe(), _original_name
    )


def mochi_transformer_to_diffusers(
    original: dict[str, torch.Tensor], spec: MochiTransformerSpec
) -> dict[str, torch.Tensor]:
    """Genmo's key names (no prefix) to diffusers' (``original`` is emptied as its tensors move). Tensors the
    model does not have keep their names, for the shape check to report."""
    from accelerate import init_empty_weights
    from diffusers import MochiTransformer3DModel

    with init_empty_weights():
        expected = list(MochiTransformer3DModel(**spec.config).state_dict())
    groups: dict[str, list[tuple[int, str]]] = defaultdict(list)
    swapped: set[str] = set()
    for key in expected:
        source = _source(key)
        groups[source.name].append((source.part, key))
        if source.swapped:
            swapped.add(source.name)
    converted: dict[str, torch.Tensor] = {}
    for name, targets in groups.items():
        tensor = original.pop(name, None)
        if tensor is None:
            continue  # reported missing by the shape check
        if name in swapped:
            tensor = _swap_halves(tensor)
        if len(targets) == 1:
            converted[targets[0][1]] = tensor
            continue
        if tensor.shape[0] % len(targets):
            raise StateDictError(f"{name} is {tuple(tensor.shape)}: its rows do not split into q, k and v")
        for chunk, (_, key) in zip(tensor.chunk(len(targets)), sorted(targets), strict=True):
            converted[key] = chunk
    converted.update(original)
    original.clear()
    return converted


def mochi_transformer_to_original(diffusers_state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A ``MochiTransformer3DModel`` state dict in Genmo's key names (no prefix): q, k and v fused, halves swapped
    back; the exact inverse of ``mochi_transformer_to_diffusers``."""
    groups: dict[str, list[tuple[int, torch.Tensor]]] = defaultdict(list)
    swapped: set[str] = set()
    for key, tensor in diffusers_state_dict.items():
        source = _source(key)
        groups[source.name].append((source.part, tensor))
        if source.swapped:
            swapped.add(source.name)
    original = {}
    for name, parts in groups.items():
        tensor = parts[0][1] if len(parts) == 1 else torch.cat([t for _, t in sorted(parts, key=lambda p: p[0])])
        original[name] = _swap_halves(tensor) if name in swapped else tensor
    return original


class _Source(NamedTuple):
    """Where a diffusers tensor lives in Genmo's file: the tensor's name, its row block among the tensors fused
    into it (0 when not fused), and whether the file holds its two halves the other way round."""

    name: str
    part: int = 0
    swapped: bool = False


# diffusers prefix -> Genmo prefix, outside the blocks
_TOP = (
    ("patch_embed.proj.", "x_embedder.proj."),
    ("time_embed.timestep_embedder.linear_1.", "t_embedder.mlp.0."),
    ("time_embed.timestep_embedder.linear_2.", "t_embedder.mlp.2."),
    ("time_embed.pooler.", "t5_y_embedder."),
    ("time_embed.caption_proj.", "t5_yproj."),
    ("proj_out.", "final_layer.linear."),
)
# inside transformer_blocks.N -> blocks.N
_BLOCK = (
    ("norm1.linear.", "mod_x."),
    ("norm1_context.linear.", "mod_y."),
    ("norm1_context.linear_1.", "mod_y."),  # the last block's (caption tokens are not updated after it)
    ("attn1.norm_q.", "attn.q_norm_x."),
    ("attn1.norm_k.", "attn.k_norm_x."),
    ("attn1.to_out.0.", "attn.proj_x."),
    ("attn1.norm_added_q.", "attn.q_norm_y."),
    ("attn1.norm_added_k.", "attn.k_norm_y."),
    ("attn1.to_add_out.", "attn.proj_y."),
    ("ff.net.2.", "mlp_x.w2."),
    ("ff_context.net.2.", "mlp_y.w2."),
)
_BLOCK_SWAPPED = (("ff.net.0.proj.", "mlp_x.w1."), ("ff_context.net.0.proj.", "mlp_y.w1."))
_BLOCK_FUSED = (
    ("attn1.to_q.", "attn.qkv_x.", 0),
    ("attn1.to_k.", "attn.qkv_x.", 1),
    ("attn1.to_v.", "attn.qkv_x.", 2),
    ("attn1.add_q_proj.", "attn.qkv_y.", 0),
    ("attn1.add_k_proj.", "attn.qkv_y.", 1),
    ("attn1.add_v_proj.", "attn.qkv_y.", 2),
)
_FINAL_MOD = ("norm_out.linear.", "final_layer.mod.")  # diffusers: (scale, shift); Genmo: (shift, scale)
_BLOCK_KEY = re.compile(r"transformer_blocks\.(\d+)\.(.*)")


def _source(key: str) -> _Source:
    """The place of one diffusers key in Genmo's file; an unknown key is its own name."""
    block = _BLOCK_KEY.fullmatch(key)
    if block:
        index, rest = block.groups()
        head = f"blocks.{index}."
        for diffusers, original in _BLOCK:
            if rest.startswith(diffusers):
                return _Source(head + original + rest[len(diffusers) :])
        for diffusers, original in _BLOCK_SWAPPED:
            if rest.startswith(diffusers):
                return _Source(head + original + rest[len(diffusers) :], swapped=True)
        for diffusers, original, part in _BLOCK_FUSED:
            if rest.startswith(diffusers):
                return _Source(head + original + rest[len(diffusers) :], part)
        return _Source(key)
    diffusers, original = _FINAL_MOD
    if key.startswith(diffusers):
        return _Source(original + key[len(diffusers) :], swapped=True)
    for diffusers, original in _TOP:
        if key.startswith(diffusers):
            return _Source(original + key[len(diffusers) :])
    return _Source(key)


def _original_name(key: str) -> str:
    return _source(key).name


def _swap_halves(tensor: torch.Tensor) -> torch.Tensor:
    first, second = tensor.chunk(2, dim=0)
    return torch.cat([second, first])


def _prefix_of(state_dict: Mapping[str, torch.Tensor]) -> str | None:
    """The prefix of the model's keys: the shortest under which both ``t5_yproj.weight`` and
    ``x_embedder.proj.weight`` exist."""
    return key_prefix(state_dict, _IDENTITY, _PATCH)


def _shape(shapes: Mapping[str, tuple[int, ...]], name: str, ndim: int) -> tuple[int, ...]:
    shape = shapes.get(name)
    if shape is None:
        raise StateDictError(f"a Mochi diffusion model needs {name}, which is missing: is the file complete?")
    if len(shape) != ndim:
        raise StateDictError(f"{name} has shape {shape}; Mochi's has {ndim} dimensions")
    return shape


def _count_blocks(shapes: Mapping[str, tuple[int, ...]]) -> int:
    """How many ``blocks.N`` there are; a gap in the numbering raises."""
    indices = {int(match.group(1)) for key in shapes if (match := re.match(r"blocks\.(\d+)\.", key))}
    if not indices:
        raise StateDictError("a Mochi diffusion model needs blocks.0, which is missing: is the file complete?")
    count = max(indices) + 1
    gaps = sorted(set(range(count)) - indices)
    if gaps:
        listed = ", ".join(f"blocks.{index}" for index in gaps[:_MAX_LISTED])
        raise StateDictError(f"{listed} missing (the file has blocks up to {count - 1}): is the file complete?")
    return count


def _looks_like(state_dict: Mapping[str, torch.Tensor]) -> str:
    """A hint at what a state dict that is not a Mochi diffusion model is."""
    keys = list(state_dict)
    if any("encoder.block." in key or key.endswith("shared.weight") for key in keys):
        return "it looks like a text encoder"
    if any(".stack.0.weight" in key or key.startswith(("decoder.", "encoder.")) for key in keys):
        return "it looks like a VAE"
    if any(key.endswith("head.modulation") for key in keys):
        return "it looks like a Wan diffusion model"
    return "is it a VAE, a text encoder or another family's model?"
