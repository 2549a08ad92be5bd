"""AnimateDiff motion modules from single files, in the original layout (``mm_sd_v15_v2.ckpt``:
``down_blocks.N.motion_modules.M.temporal_transformer.transformer_blocks.K.attention_blocks.0`` ...) or in diffusers'
``MotionAdapter`` layout (``down_blocks.N.motion_modules.M.transformer_blocks.K.attn1`` ...), built as diffusers'
``MotionAdapter``.

Original files are renamed by diffusers' ``convert_animatediff_checkpoint_to_diffusers`` (which drops the stored
positional encodings; ``MotionAdapter`` computes the same sinusoids). The config is read from shapes: the widths from
each down block's ``proj_in``, motion layers per block, transformer layers per motion layer, whether there is a mid
block (v2 and v3 have one, v1 has not) and the maximum frames from the positional encoding (v1 24, v2 32); the head
count (8) and group count (32) are AnimateDiff's and not in the weights.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import torch

from models.errors import StateDictError
from models.families.single_file import StateShapes, build_from_state_dict

if TYPE_CHECKING:
    from diffusers import MotionAdapter

__all__ = [
    "MotionSpec",
    "detect_motion_module",
    "is_motion_module",
    "motion_adapter_from_state_dict",
    "motion_adapter_to_original",
    "to_diffusers_names",
]

FAMILY = "AnimateDiff motion module"
NUM_HEADS = 8
NORM_GROUPS = 32
DEFAULT_MAX_FRAMES = 32
_ORIGINAL_MARKER = ".temporal_transformer."
_ORIGINAL_PE = (
    "down_blocks.0.motion_modules.0.temporal_transformer.transformer_blocks.0.attention_blocks.0.pos_encoder.pe"
)
_DIFFUSERS_PE = "down_blocks.0.motion_modules.0.transformer_blocks.0.pos_embed.pe"
_IDENTITY = "down_blocks.0.motion_modules.0.proj_in.weight"
_TO_ORIGINAL = (
    (".attn1.", ".attention_blocks.0."),
    (".attn2.", ".attention_blocks.1."),
    (".norm1.", ".norms.0."),
    (".norm2.", ".norms.1."),
    (".norm3.", ".ff_norm."),
)


@dataclass(frozen=True)
class MotionSpec:
    """A motion module's ``MotionAdapter`` kwargs."""

    config: Mapping[str, Any]

    @property
    def max_frames(self) -> int:
        return int(self.config["motion_max_seq_length"])

    def describe(self) -> str:
        """E.g. ``"AnimateDiff motion module, widths 320/640/1280/1280, mid block, up to 32 frames"``."""
        widths = "/".join(str(width) for width in self.config["block_out_channels"])
        mid = "mid block" if self.config["use_motion_mid_block"] else "no mid block"
        return f"{FAMILY}, widths {widths}, {mid}, up to {self.max_frames} frames"


def is_motion_module(state_dict: Mapping[str, torch.Tensor]) -> bool:
    """Whether the tensors are an AnimateDiff motion module (either layout)."""
    return _IDENTITY in to_diffusers_names(state_dict)


def to_diffusers_names(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The tensors under diffusers' ``MotionAdapter`` names (original files converted by diffusers)."""
    from diffusers.loaders.single_file_utils import convert_animatediff_checkpoint_to_diffusers

    if any(_ORIGINAL_MARKER in key for key in state_dict):
        return convert_animatediff_checkpoint_to_diffusers(state_dict)
    return dict(state_dict)


def detect_motion_module(state_dict: Mapping[str, torch.Tensor]) -> MotionSpec:
    """The ``MotionAdapter`` config of a motion module from its shapes (meta tensors do)."""
    tensors = to_diffusers_names(state_dict)
    if _IDENTITY not in tensors:
        sample = ", ".join(sorted(state_dict)[:3]) or "none"
        raise StateDictError(f"not an {FAMILY}: no down_blocks.0.motion_modules.0 (keys such as {sample})")
    shapes = StateShapes(tensors, "", FAMILY)
    blocks = shapes.count("down_blocks")
    widths = [shapes.get(f"down_blocks.{block}.motion_modules.0.proj_in.weight", 2)[0] for block in range(blocks)]
    has_mid = shapes.has("mid_block.motion_modules.0.proj_in.weight")
    pe = state_dict.get(_ORIGINAL_PE, state_dict.get(_DIFFUSERS_PE))
    config = {
        "block_out_channels": tuple(widths),
        "motion_layers_per_block": shapes.count("down_blocks.0.motion_modules"),
        "motion_transformer_layers_per_block": shapes.count("down_blocks.0.motion_modules.0.transformer_blocks"),
        "motion_mid_block_layers_per_block": shapes.count("mid_block.motion_modules") if has_mid else 1,
        "motion_transformer_layers_per_mid_block": 1,
        "motion_num_attention_heads": NUM_HEADS,
        "motion_norm_num_groups": NORM_GROUPS,
        "motion_max_seq_length": int(pe.shape[1]) if pe is not None else DEFAULT_MAX_FRAMES,
        "use_motion_mid_block": has_mid,
    }
    return MotionSpec(MappingProxyType(config))


def motion_adapter_from_state_dict(state_dict: Mapping[str, torch.Tensor], dtype: torch.dtype) -> MotionAdapter:
    """The ``MotionAdapter`` of a motion module file (either layout) in ``dtype``; positional encodings the file
    leaves out are computed as ``MotionAdapter`` computes them."""
    from diffusers import MotionAdapter
    from diffusers.models.embeddings import SinusoidalPositionalEmbedding

    spec = detect_motion_module(state_dict)
    tensors = {key: tensor for key, tensor in to_diffusers_names(state_dict).items()}
    with torch.device("meta"):
        expected = MotionAdapter(**spec.config).state_dict()
    for key, tensor in expected.items():
        if key.endswith(".pos_embed.pe") and key not in tensors:
            width = tensor.shape[-1]
            tensors[key] = SinusoidalPositionalEmbedding(width, spec.max_frames).pe
    return build_from_state_dict(MotionAdapter, spec.config, tensors, dtype, FAMILY)


def motion_adapter_to_original(adapter: MotionAdapter) -> dict[str, torch.Tensor]:
    """The adapter's tensors in the original AnimateDiff layout (positional encodings stored, as the releases do)."""
    tensors = {}
    for key, tensor in adapter.state_dict().items():
        block, _, rest = key.partition(".motion_modules.")
        index, _, inner = rest.partition(".")
        name = f".{inner}"
        for diffusers_name, original_name in _TO_ORIGINAL:
            name = name.replace(diffusers_name, original_name)
        if name.endswith(".pos_embed.pe"):
            stem = name.removesuffix(".pos_embed.pe")
            for attention in (0, 1):
                tensors[
                    f"{block}.motion_modules.{index}.temporal_transformer{stem}.attention_blocks.{attention}"
                    ".pos_encoder.pe"
                ] = tensor.detach().contiguous()
            continue
        tensors[f"{block}.motion_modules.{index}.temporal_transformer{name}"] = tensor.detach().contiguous()
    return tensors
