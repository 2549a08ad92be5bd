"""SkyReels-V2 diffusion models from single files in the release layout: Wan 2.1's original key names plus the
sample-info (fps) embedding (``fps_embedding``, ``fps_projection``) of the models trained with it (the DF 1.3B
release). Keys convert with diffusers' ``convert_wan_transformer_to_diffusers`` (the converter diffusers'
``from_single_file`` uses for ``SkyReelsV2Transformer3DModel``), plus the fps projection's names, which that
converter leaves alone.

SkyReels-V2 files without the fps embedding (the 14B T2V, I2V and DF releases) hold exactly a Wan 2.1 network: no
tensor tells them apart, so they load as Wan 2.1 models (``models.families.wan``).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import torch

from models.errors import StateDictError
from models.families.single_file import StateShapes, build_from_state_dict, key_prefix, unprefixed
from models.families.wan.checkpoint import WanTransformerSpec, detect_wan_transformer, wan_transformer_to_original
from models.scaled_fp8 import dequantize_scaled

if TYPE_CHECKING:
    from diffusers import SkyReelsV2Transformer3DModel

__all__ = [
    "FPS_EMBEDDING",
    "detect_skyreels_transformer",
    "is_skyreels_transformer",
    "skyreels_transformer_from_state_dict",
    "skyreels_transformer_to_original",
]

FPS_EMBEDDING = "fps_embedding.weight"
"""The tensor only SkyReels-V2 networks have (two rows: 16 fps and any other rate)."""
FPS_RATES = 2
SUPPORTED_VARIANTS = ("t2v", "i2v")
# The fps projection's names: diffusers' (a FeedForward) <-> the release's (a Sequential).
_FPS_NAMES = (("fps_projection.net.0.proj.", "fps_projection.0."), ("fps_projection.net.2.", "fps_projection.2."))
_FPS_MODULES = ("fps_embedding.", "fps_projection.")


def is_skyreels_transformer(state_dict: Mapping[str, torch.Tensor]) -> bool:
    """Whether ``state_dict`` is a SkyReels-V2 diffusion model with the fps embedding (any key prefix)."""
    return _prefix_of(state_dict) is not None


def detect_skyreels_transformer(state_dict: Mapping[str, torch.Tensor]) -> WanTransformerSpec:
    """The variant and ``SkyReelsV2Transformer3DModel`` kwargs of a SkyReels-V2 file, from tensor shapes alone.

    Raises ``StateDictError`` for another kind of model or a misshapen one.
    """
    prefix = _prefix_of(state_dict)
    if prefix is None:
        raise StateDictError(f"not a SkyReels-V2 diffusion model: no {FPS_EMBEDDING} next to a Wan-layout network")
    wan = detect_wan_transformer(
        {key: tensor for key, tensor in state_dict.items() if not key[len(prefix) :].startswith(_FPS_MODULES)}
    )
    if wan.variant not in SUPPORTED_VARIANTS:
        raise StateDictError(f"a SkyReels-V2 model with a Wan {wan.variant} network is not supported")
    dim = wan.config["num_attention_heads"] * wan.config["attention_head_dim"]
    shapes = StateShapes(state_dict, prefix, "SkyReels-V2")
    expected = {
        FPS_EMBEDDING: (FPS_RATES, dim),
        "fps_projection.0.weight": (dim, dim),
        "fps_projection.2.weight": (6 * dim, dim),
    }
    for name, shape in expected.items():
        if shapes.get(name, 2) != shape:
            raise StateDictError(f"{name} has shape {shapes.get(name, 2)}; a {dim} wide SkyReels-V2 model has {shape}")
    config = {**wan.config, "inject_sample_info": True, "num_frame_per_block": 1}
    return WanTransformerSpec(wan.variant, MappingProxyType(config))


def skyreels_transformer_from_state_dict(
    state_dict: Mapping[str, torch.Tensor], dtype: torch.dtype, metadata: Mapping[str, str] | None = None
) -> SkyReelsV2Transformer3DModel:
    """A ``SkyReelsV2Transformer3DModel`` (eval mode) holding a single file's weights in ``dtype`` (scaled fp8
    restored; diffusers' float32 modules kept float32), as ``wan_transformer_from_state_dict`` builds Wan's."""
    from diffusers import SkyReelsV2Transformer3DModel
    from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers

    spec = detect_skyreels_transformer(state_dict)
    original = unprefixed(dequantize_scaled(state_dict, dtype, metadata), _prefix_of(state_dict) or "")
    converted = convert_wan_transformer_to_diffusers(original)  # empties ``original``
    for key in [key for key in converted if key.startswith("fps_projection.")]:
        converted[_renamed(key, reverse=True)] = converted.pop(key)
    return build_from_state_dict(
        SkyReelsV2Transformer3DModel, spec.config, converted, dtype, _describe(spec), _original_key
    )


def skyreels_transformer_to_original(diffusers_state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A ``SkyReelsV2Transformer3DModel`` state dict in the release's key names (no prefix), the same tensors."""
    return {_original_key(key): tensor for key, tensor in diffusers_state_dict.items()}


def _describe(spec: WanTransformerSpec) -> str:
    return "SkyReels-V2 " + spec.describe().removeprefix("Wan ")


def _original_key(key: str) -> str:
    if key.startswith(_FPS_MODULES):
        return _renamed(key, reverse=False)
    return next(iter(wan_transformer_to_original({key: torch.empty(0)})))


def _renamed(key: str, *, reverse: bool) -> str:
    """An fps projection key in the release's naming (or, ``reverse``, in diffusers')."""
    for diffusers_name, original_name in _FPS_NAMES:
        old, new = (original_name, diffusers_name) if reverse else (diffusers_name, original_name)
        if key.startswith(old):
            return new + key[len(old) :]
    return key


def _prefix_of(state_dict: Mapping[str, Any]) -> str | None:
    return key_prefix(state_dict, FPS_EMBEDDING, "head.modulation", "patch_embedding.weight")
