"""The tiny text and image encoder stand-ins: written under the releases' names and layouts, deterministic, and
detected like the real files."""

from __future__ import annotations

from pathlib import Path

import torch

from models.clip_vision import detect_clip_vision_config, is_clip_vision
from models.folders import ModelFolders
from models.loading import load_state_dict
from models.metadata import read_safetensors_header
from models.scaled_fp8 import scaled_layers
from models.text_encoders.tokenizers import load_tokenizer
from models.text_encoders.umt5 import detect_umt5_config, is_umt5
from models.tiny.text import (
    TINY_CLIP_VISION_CONFIG,
    TINY_UMT5_CONFIG,
    tiny_clip_vision,
    tiny_umt5,
    write_tiny_clip_vision,
    write_tiny_umt5_files,
)


def test_the_files_have_the_release_names(tmp_path: Path) -> None:
    written = write_tiny_umt5_files(tmp_path)
    written.append(write_tiny_clip_vision(tmp_path))
    assert written == [
        tmp_path / "text_encoders" / "umt5_xxl_fp16.safetensors",
        tmp_path / "text_encoders" / "umt5_xxl_fp8_e4m3fn_scaled.safetensors",
        tmp_path / "tokenizers" / "umt5-xxl",
        tmp_path / "clip_vision" / "clip_vision_h.safetensors",
    ]
    folders = ModelFolders(tmp_path)
    assert folders.list_files("text_encoders") == [path.name for path in written[:2]]
    assert folders.list_files("clip_vision") == ["clip_vision_h.safetensors"]
    assert len(load_tokenizer(folders, "umt5-xxl")) == TINY_UMT5_CONFIG["vocab_size"]


def test_writers_are_deterministic_and_seeded(tmp_path: Path) -> None:
    first = [*write_tiny_umt5_files(tmp_path / "a"), write_tiny_clip_vision(tmp_path / "a")]
    second = [*write_tiny_umt5_files(tmp_path / "b"), write_tiny_clip_vision(tmp_path / "b")]
    for one, two in zip(first, second, strict=True):
        files = sorted(path.relative_to(one) for path in one.rglob("*")) if one.is_dir() else [Path()]
        assert all((one / name).read_bytes() == (two / name).read_bytes() for name in files), one.name
    state = torch.get_rng_state()
    other = write_tiny_umt5_files(tmp_path / "c", seed=1)
    assert torch.equal(torch.get_rng_state(), state)  # the global RNG is left alone
    assert other[0].read_bytes() != first[0].read_bytes()


def test_the_fp8_file_quantizes_the_linear_weights_only(tmp_path: Path) -> None:
    path = write_tiny_umt5_files(tmp_path)[1]
    tensors = load_state_dict(path)
    layers = scaled_layers(tensors, read_safetensors_header(path).metadata)
    linear = {f"encoder.block.{block}.layer.0.SelfAttention.{name}" for block in range(2) for name in "qkvo"}
    linear |= {
        f"encoder.block.{block}.layer.1.DenseReluDense.{name}" for block in range(2) for name in ("wi_0", "wi_1")
    }
    linear |= {f"encoder.block.{block}.layer.1.DenseReluDense.wo" for block in range(2)}
    assert layers == dict.fromkeys(linear, "float8_e4m3fn")
    assert tensors["scaled_fp8"].dtype == torch.float8_e4m3fn
    unscaled = {key for key in tensors if key.removesuffix(".weight") not in linear and key != "scaled_fp8"}
    assert {key for key in unscaled if not key.endswith(".scale_weight")} == {
        "shared.weight",
        "encoder.final_layer_norm.weight",
        *(f"encoder.block.{block}.layer.0.SelfAttention.relative_attention_bias.weight" for block in range(2)),
        *(f"encoder.block.{block}.layer.{layer}.layer_norm.weight" for block in range(2) for layer in range(2)),
    }
    assert all(tensors[key].dtype == torch.float16 for key in unscaled if not key.endswith(".scale_weight"))


def test_the_tiny_configs_are_detected_from_the_files(tmp_path: Path) -> None:
    umt5 = load_state_dict(write_tiny_umt5_files(tmp_path)[0])
    assert is_umt5(umt5)
    detected = detect_umt5_config(umt5)
    assert {key: getattr(detected, key) for key in TINY_UMT5_CONFIG} == TINY_UMT5_CONFIG
    assert tiny_umt5().config.d_model == 64
    clip = load_state_dict(write_tiny_clip_vision(tmp_path))
    assert is_clip_vision(clip) and all(tensor.dtype == torch.float16 for tensor in clip.values())
    config = detect_clip_vision_config(clip)
    assert {key: getattr(config, key) for key in TINY_CLIP_VISION_CONFIG} == TINY_CLIP_VISION_CONFIG
    assert config.hidden_size // config.num_attention_heads == 80  # ViT-H/14's head dim
    assert tiny_clip_vision().config.projection_dim == 64
