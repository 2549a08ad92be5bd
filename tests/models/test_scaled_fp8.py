"""Scaled fp8 weights in the three layouts: found, restored to full precision within fp8's error, refused clearly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from models.errors import StateDictError
from models.scaled_fp8 import MARKER, QUANT_METADATA_KEY, dequantize_scaled, quantize_scaled, scaled_layers


def weights() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return {
        "blocks.0.q.weight": torch.randn(16, 8, generator=generator) * 0.05,
        "blocks.0.q.bias": torch.randn(16, generator=generator),
        "blocks.0.ffn.0.weight": torch.randn(32, 16, generator=generator) * 3.0,
        "head.modulation": torch.randn(1, 2, 16, generator=generator),
    }


LAYERS = ("blocks.0.q", "blocks.0.ffn.0")


@pytest.mark.parametrize("layout", ["scale_weight", "comfy_quant", "metadata"])
def test_each_layout_round_trips_through_a_safetensors_file(layout: str, tmp_path: Path) -> None:
    original = weights()
    quantized, metadata = quantize_scaled(original, LAYERS, layout, marker_prefix="model.diffusion_model.")
    assert quantized["blocks.0.q.weight"].dtype == torch.float8_e4m3fn
    path = tmp_path / "model.safetensors"
    save_file(quantized, path, metadata=metadata or None)
    with safe_open(path, "pt") as file:
        loaded = {key: file.get_tensor(key) for key in file.keys()}
        read_metadata = file.metadata()
    assert scaled_layers(loaded, read_metadata) == dict.fromkeys(LAYERS, "float8_e4m3fn")
    restored = dequantize_scaled(loaded, torch.float32, read_metadata)
    assert set(restored) == set(original)  # markers and scales gone
    for key, tensor in original.items():
        assert restored[key].dtype == torch.float32
        error = (restored[key] - tensor).abs().max() / tensor.abs().max()
        assert error < (0.07 if key.removesuffix(".weight") in LAYERS else 1e-7), key  # e4m3: 3 mantissa bits


def test_the_scale_multiplies_the_stored_fp8_values() -> None:
    stored = torch.tensor([[1.0, -2.0], [0.5, 4.0]]).to(torch.float8_e4m3fn)
    state = {MARKER: torch.empty(0), "l.weight": stored, "l.scale_weight": torch.tensor(0.25)}
    state["l.scale_input"] = torch.tensor(1.0)
    restored = dequantize_scaled(state, torch.bfloat16)
    assert restored == {"l.weight": restored["l.weight"]}
    assert restored["l.weight"].dtype == torch.bfloat16
    assert restored["l.weight"].float().tolist() == [[0.25, -0.5], [0.125, 1.0]]
    per_row = {"l.weight": stored, "l.weight_scale": torch.tensor([[2.0], [3.0]])}
    per_row["l.comfy_quant"] = torch.tensor(list(b'{"format": "float8_e4m3fn"}'), dtype=torch.uint8)
    assert dequantize_scaled(per_row, torch.float32)["l.weight"].tolist() == [[2.0, -4.0], [1.5, 12.0]]


def test_plain_files_are_left_alone() -> None:
    original = weights()
    assert scaled_layers(original) == {}
    restored = dequantize_scaled(original, torch.bfloat16)
    assert all(restored[key] is tensor for key, tensor in original.items())


@pytest.mark.parametrize(
    ("state", "metadata", "message"),
    [
        (
            {MARKER: torch.empty(0), "l.weight": torch.ones(2, 2), "l.scale_weight": torch.tensor(1.0)},
            None,
            "weight should be float8, found float32",
        ),
        (
            {"l.weight": torch.ones(2, 2), "l.comfy_quant": torch.tensor(list(b"{oops"), dtype=torch.uint8)},
            None,
            "l.comfy_quant does not hold JSON",
        ),
        (
            {"l.weight": torch.ones(2, 2), "l.weight_scale": torch.tensor(1.0)},
            {QUANT_METADATA_KEY: json.dumps({"layers": {"l": {"format": "int8_blockwise"}}})},
            "format 'int8_blockwise' is not supported",
        ),
        (
            {"l.weight_scale": torch.tensor(1.0)},
            {QUANT_METADATA_KEY: json.dumps({"layers": {"l": {"format": "float8_e4m3fn"}}})},
            "scaled layer 'l' has no weight",
        ),
        (
            {"l.weight": torch.ones(2, 2).to(torch.float8_e4m3fn)},
            {QUANT_METADATA_KEY: json.dumps({"layers": {"l": {"format": "float8_e4m3fn"}}})},
            "has no scale",
        ),
        (
            {"l.weight": torch.ones(2, 2).to(torch.float8_e4m3fn), "l.weight_scale": torch.ones(3)},
            {QUANT_METADATA_KEY: json.dumps({"layers": {"l": {"format": "float8_e4m3fn"}}})},
            "3 scales for a weight",
        ),
        ({}, {QUANT_METADATA_KEY: "[1, 2"}, "is not a JSON object"),
    ],
)
def test_damaged_layouts_are_clear_errors(state: dict, metadata: dict | None, message: str) -> None:
    with pytest.raises(StateDictError, match=message):
        dequantize_scaled(state, torch.float32, metadata)
