"""LTX-Video's latent upsamplers (``latent_upscale_models/ltxv-spatial-upscaler-0.9.7.safetensors``), built as
diffusers' ``LTXLatentUpsamplerModel``, and ``upsample_latent`` doing what ``LTXLatentUpsamplePipeline`` does to
a latent (``output_type="latent"``, AdaIN and tone mapping off, its defaults).

The released files hold diffusers' own key names (its conversion loads them unchanged) and a ``config`` JSON in the
safetensors metadata (``in_channels``, ``mid_channels``, ``num_blocks_per_stage``, ``dims``, ``spatial_upsample``,
``temporal_upsample``). Every one of those is also read from the shapes here; the metadata, when present, must
agree, and options diffusers' model lacks (a rational resampler, a scale other than 2) are refused.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import torch

from models.errors import StateDictError
from models.families.ltx.latents import denormalize, normalize
from models.families.single_file import build_from_state_dict

if TYPE_CHECKING:
    from diffusers.pipelines.ltx.modeling_latent_upsampler import LTXLatentUpsamplerModel

__all__ = [
    "LtxUpsamplerSpec",
    "detect_ltx_upsampler",
    "is_ltx_upsampler",
    "ltx_upsampler_from_state_dict",
    "upsample_latent",
]

CONFIG_METADATA = "config"
_IDENTITY = ("initial_conv.weight", "upsampler.0.weight", "final_conv.weight")
_CONFIG_KEYS = ("in_channels", "mid_channels", "num_blocks_per_stage", "dims", "spatial_upsample", "temporal_upsample")
# upsampler.0 output channels per mid channel -> (spatial, temporal)
_UPSAMPLERS = MappingProxyType({(4, 2): (True, False), (8, 3): (True, True), (2, 3): (False, True)})


@dataclass(frozen=True)
class LtxUpsamplerSpec:
    """An LTX-Video latent upsampler's ``LTXLatentUpsamplerModel`` kwargs."""

    config: Mapping[str, Any]

    def describe(self) -> str:
        """E.g. ``"LTX-Video spatial latent upsampler (2x), 512 channels"``."""
        kinds = [name for name in ("spatial", "temporal") if self.config[f"{name}_upsample"]]
        return f"LTX-Video {' and '.join(kinds)} latent upsampler (2x), {self.config['mid_channels']} channels"


def is_ltx_upsampler(state_dict: Mapping[str, torch.Tensor]) -> bool:
    """Whether ``state_dict`` is an LTX-Video latent upsampler (diffusers' key names, no prefix)."""
    return all(key in state_dict for key in _IDENTITY)


def detect_ltx_upsampler(
    state_dict: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None = None
) -> LtxUpsamplerSpec:
    """The diffusers config of a latent upsampler from its shapes, checked against the metadata ``config``."""
    if not is_ltx_upsampler(state_dict):
        raise StateDictError(
            "not an LTX-Video latent upsampler: it needs initial_conv.weight, upsampler.0.weight and final_conv.weight"
        )
    initial = tuple(state_dict["initial_conv.weight"].shape)
    mid_channels, in_channels = initial[:2]
    dims = len(initial) - 2
    upsampler = tuple(state_dict["upsampler.0.weight"].shape)
    kind = _UPSAMPLERS.get((upsampler[0] // mid_channels, len(upsampler) - 2))
    if kind is None or upsampler[0] % mid_channels:
        raise StateDictError(f"upsampler.0.weight has shape {upsampler}: not a 2x spatial or temporal upsampler")
    blocks = {int(m.group(1)) for key in state_dict if (m := re.match(r"res_blocks\.(\d+)\.", key))}
    config = {
        "in_channels": in_channels,
        "mid_channels": mid_channels,
        "num_blocks_per_stage": len(blocks),
        "dims": dims,
        "spatial_upsample": kind[0],
        "temporal_upsample": kind[1],
    }
    _check_metadata(config, metadata or {})
    return LtxUpsamplerSpec(MappingProxyType(config))


def ltx_upsampler_from_state_dict(
    state_dict: Mapping[str, torch.Tensor], dtype: torch.dtype, metadata: Mapping[str, str] | None = None
) -> LTXLatentUpsamplerModel:
    """An ``LTXLatentUpsamplerModel`` (eval mode) holding a single file's weights in ``dtype``."""
    from diffusers.pipelines.ltx.modeling_latent_upsampler import LTXLatentUpsamplerModel

    spec = detect_ltx_upsampler(state_dict, metadata)
    return build_from_state_dict(LTXLatentUpsamplerModel, spec.config, dict(state_dict), dtype, spec.describe())


def upsample_latent(upsampler: torch.nn.Module, vae: torch.nn.Module, latent: torch.Tensor) -> torch.Tensor:
    """A normalised LTX-Video ``LATENT`` ``[B, 128, T, H, W]`` upsampled 2x (spatially: ``[B, 128, T, 2H, 2W]``),
    still normalised: un-normalised with ``vae``'s statistics, upsampled, normalised again (float32 out)."""
    parameter = next(upsampler.parameters())
    raw = denormalize(vae, latent.to(parameter.device, torch.float32))
    upsampled = upsampler(raw.to(parameter.dtype)).float()
    return normalize(vae, upsampled)


def _check_metadata(config: Mapping[str, Any], metadata: Mapping[str, str]) -> None:
    text = metadata.get(CONFIG_METADATA)
    if not text:
        return
    try:
        declared = json.loads(text)
    except ValueError as exc:
        raise StateDictError(f"the latent upsampler's metadata config is not JSON: {exc}") from exc
    if not isinstance(declared, dict):
        raise StateDictError("the latent upsampler's metadata config is not a JSON object")
    if declared.get("rational_resampler") or float(declared.get("spatial_scale", 2.0)) != 2.0:
        raise StateDictError(
            f"a latent upsampler with spatial_scale {declared.get('spatial_scale')} / rational_resampler: only "
            "the 2x upsamplers are supported"
        )
    differing = [
        f"{key} {declared[key]!r} (shapes: {config[key]!r})"
        for key in _CONFIG_KEYS
        if key in declared and declared[key] != config[key]
    ]
    if differing:
        raise StateDictError(
            "the latent upsampler's metadata config disagrees with its tensors: " + "; ".join(differing)
        )
