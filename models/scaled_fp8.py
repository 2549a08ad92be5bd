"""fp8 weights with per-weight scales, as in the ``*_fp8_scaled`` releases: find them and restore full precision.

Three layouts mark a scaled layer ``L`` (its weight stored as float8, the real weight ``L.weight * scale``):

- the older one: a ``scaled_fp8`` marker tensor (at the model's key prefix) and ``L.scale_weight`` per layer
  (``L.scale_input`` too, for fp8 activations; it plays no part in restoring the weight);
- ``L.comfy_quant``, a uint8 tensor holding JSON such as ``{"format": "float8_e4m3fn"}``, with ``L.weight_scale``;
- the same per-layer JSON in the safetensors metadata key ``_quantization_metadata`` (``{"layers": {L: {...}}}``),
  with ``L.weight_scale``.

``dequantize_scaled`` returns a plain state dict (scale and marker keys gone) that any loader takes;
``quantize_scaled`` writes the layouts, for tiny stand-in files and tests.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Literal

import torch

from models.errors import StateDictError

__all__ = ["FP8_FORMATS", "MARKER", "QUANT_METADATA_KEY", "dequantize_scaled", "quantize_scaled", "scaled_layers"]

MARKER = "scaled_fp8"
QUANT_METADATA_KEY = "_quantization_metadata"
FP8_FORMATS = {"float8_e4m3fn": torch.float8_e4m3fn, "float8_e5m2": torch.float8_e5m2}

_OLD_SCALE = ".scale_weight"
_OLD_INPUT_SCALE = ".scale_input"
_NEW_SCALE = ".weight_scale"
_NEW_INPUT_SCALE = ".input_scale"
_COMFY_QUANT = ".comfy_quant"

Layout = Literal["scale_weight", "comfy_quant", "metadata"]


def scaled_layers(state_dict: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None = None) -> dict[str, str]:
    """The scaled layers of a state dict, as ``{layer name: format}``; empty when the file has none.

    Raises ``StateDictError`` for a layout that names a layer without its weight or scale, or a format that
    is not fp8 (int8 block-wise files are not supported yet).
    """
    layers: dict[str, str] = {}
    if any(key == MARKER or key.endswith("." + MARKER) for key in state_dict):
        for key in state_dict:
            if key.endswith(_OLD_SCALE):
                layer = key.removesuffix(_OLD_SCALE)
                layers[layer] = _format_of_dtype(state_dict.get(layer + ".weight"), layer)
    for key, tensor in state_dict.items():
        if key.endswith(_COMFY_QUANT):
            layers[key.removesuffix(_COMFY_QUANT)] = _format_of_json(_json_of(tensor, key), key)
    described = (metadata or {}).get(QUANT_METADATA_KEY)
    if described:
        try:
            listed = json.loads(described).get("layers", {})
        except (ValueError, AttributeError) as exc:
            raise StateDictError(f"metadata {QUANT_METADATA_KEY} is not a JSON object: {exc}") from exc
        for layer, config in listed.items():
            layers[layer] = _format_of_json(config, f"{QUANT_METADATA_KEY}[{layer!r}]")
    for layer in layers:
        if layer + ".weight" not in state_dict:
            raise StateDictError(f"scaled layer {layer!r} has no weight")
        if layer + _OLD_SCALE not in state_dict and layer + _NEW_SCALE not in state_dict:
            raise StateDictError(f"scaled layer {layer!r} has no scale ({layer}{_NEW_SCALE})")
    return layers


def dequantize_scaled(
    state_dict: Mapping[str, torch.Tensor], dtype: torch.dtype, metadata: Mapping[str, str] | None = None
) -> dict[str, torch.Tensor]:
    """A copy of ``state_dict`` with every scaled weight restored to ``dtype`` (``weight * scale``, computed in
    float32) and the markers and scales dropped; other tensors are passed through unchanged (not cast)."""
    layers = scaled_layers(state_dict, metadata)
    if not layers:
        return dict(state_dict)
    dropped = {MARKER}
    restored: dict[str, torch.Tensor] = {}
    for layer in layers:
        scale_key = layer + (_OLD_SCALE if layer + _OLD_SCALE in state_dict else _NEW_SCALE)
        weight = state_dict[layer + ".weight"]
        scale = state_dict[scale_key].to(torch.float32)
        restored[layer + ".weight"] = (weight.to(torch.float32) * _broadcastable(scale, weight, scale_key)).to(dtype)
        dropped.update(
            layer + suffix for suffix in (_OLD_SCALE, _OLD_INPUT_SCALE, _NEW_SCALE, _NEW_INPUT_SCALE, _COMFY_QUANT)
        )
    return {
        key: restored.get(key, tensor)
        for key, tensor in state_dict.items()
        if key not in dropped and not key.endswith("." + MARKER)
    }


def quantize_scaled(
    state_dict: Mapping[str, torch.Tensor],
    layers: Iterable[str],
    layout: Layout = "scale_weight",
    marker_prefix: str = "",
    fp8_format: str = "float8_e4m3fn",
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Store the weights of ``layers`` as per-tensor absmax-scaled fp8 in ``layout``; returns the new state dict
    and the safetensors metadata the layout needs (empty except for ``metadata``)."""
    if fp8_format not in FP8_FORMATS:
        raise ValueError(f"fp8_format {fp8_format!r} is not one of {', '.join(FP8_FORMATS)}")
    fp8 = FP8_FORMATS[fp8_format]
    result = dict(state_dict)
    names = list(layers)
    for layer in names:
        weight = state_dict[layer + ".weight"].to(torch.float32)
        scale = weight.abs().max().clamp(min=1e-12) / torch.finfo(fp8).max
        result[layer + ".weight"] = (weight / scale).to(fp8)
        if layout == "scale_weight":
            result[layer + _OLD_SCALE] = scale.reshape(())
        else:
            result[layer + _NEW_SCALE] = scale.reshape(())
        if layout == "comfy_quant":
            encoded = json.dumps({"format": fp8_format}).encode("utf-8")
            result[layer + _COMFY_QUANT] = torch.tensor(list(encoded), dtype=torch.uint8)
    metadata: dict[str, str] = {}
    if layout == "scale_weight":
        result[marker_prefix + MARKER] = torch.empty(0, dtype=fp8)
    elif layout == "metadata":
        described = {"format_version": "1.0", "layers": {layer: {"format": fp8_format} for layer in names}}
        metadata[QUANT_METADATA_KEY] = json.dumps(described)
    return result, metadata


def _json_of(tensor: torch.Tensor, key: str) -> object:
    try:
        return json.loads(bytes(tensor.to(torch.uint8).flatten().tolist()).decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise StateDictError(f"{key} does not hold JSON: {exc}") from exc


def _format_of_json(config: object, where: str) -> str:
    name = config.get("format") if isinstance(config, dict) else None
    if name not in FP8_FORMATS:
        raise StateDictError(
            f"{where}: quantization format {name!r} is not supported (supported: {', '.join(FP8_FORMATS)})"
        )
    return str(name)


def _format_of_dtype(weight: torch.Tensor | None, layer: str) -> str:
    for name, dtype in FP8_FORMATS.items():
        if weight is not None and weight.dtype == dtype:
            return name
    found = "missing" if weight is None else str(weight.dtype).removeprefix("torch.")
    raise StateDictError(f"scaled layer {layer!r}: its weight should be float8, found {found}")


def _broadcastable(scale: torch.Tensor, weight: torch.Tensor, key: str) -> torch.Tensor:
    """A scalar scale, or one per output row (``[out]`` or ``[out, 1]``), shaped to multiply ``weight``."""
    if scale.numel() == 1:
        return scale.reshape(())
    if scale.numel() == weight.shape[0]:
        return scale.reshape(weight.shape[0], *([1] * (weight.dim() - 1)))
    raise StateDictError(f"{key} has {scale.numel()} scales for a weight of shape {tuple(weight.shape)}")
