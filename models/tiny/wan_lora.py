"""Tiny stand-ins of the lightx2v 4-step LoRAs for Wan 2.2 A14B, under the names ComfyUI's templates load them by.

Each is laid out as the releases are: Wan's original key names prefixed ``diffusion_model.``, ``lora_down.weight``
[rank, in], ``lora_up.weight`` [out, rank] and a scalar ``alpha`` for the self- and cross-attention q, k, v, o and
the feed-forward ffn.0 / ffn.2 of every block of its tiny model, in float32 as released. Weights are seeded per file
and seed (the global RNG is left alone); the update changes each weight by a few tenths of its own size, enough to
change a sampled video measurably while keeping it finite.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

import torch
from safetensors.torch import save_file

from models.families.wan.checkpoint import wan_transformer_to_original
from models.tiny.wan import TINY_WAN_DIFFUSION_MODELS

__all__ = ["TINY_WAN_LORAS", "TINY_WAN_LORA_ALPHA", "TINY_WAN_LORA_RANK", "tiny_wan_lora", "write_tiny_wan_loras"]

LORAS_FOLDER = "loras"
TINY_WAN_LORA_RANK = 4
TINY_WAN_LORA_ALPHA = 2.0
"""alpha / rank = 0.5, as a release whose alpha is not its rank: a merge that ignored alpha would be off by 2x."""
STD = 0.1
"""Of the down and up matrices' entries: each weight moves by about 0.01, a third of the tiny layers' weights."""
PREFIX = "diffusion_model."

TINY_WAN_LORAS: Mapping[str, str] = MappingProxyType(
    {
        "wan2.2_t2v_lightx2v_4steps_lora_v1.1_high_noise": "wan2.2_t2v_high_noise_14B_fp8_scaled",
        "wan2.2_t2v_lightx2v_4steps_lora_v1.1_low_noise": "wan2.2_t2v_low_noise_14B_fp8_scaled",
        "wan2.2_i2v_lightx2v_4steps_lora_v1_high_noise": "wan2.2_i2v_high_noise_14B_fp8_scaled",
        "wan2.2_i2v_lightx2v_4steps_lora_v1_low_noise": "wan2.2_i2v_low_noise_14B_fp8_scaled",
    }
)
"""LoRA file stem -> the tiny diffusion model (a key of ``TINY_WAN_DIFFUSION_MODELS``) it is made for."""

# The linear layers the releases train, in Wan's original names (the image cross-attention too, where a model has it).
_TRAINED = re.compile(r"blocks\.\d+\.(?:(?:self_attn|cross_attn)\.(?:q|k|v|o|k_img|v_img)|ffn\.[02])\.weight")


def tiny_wan_lora(model_stem: str, name: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """A tiny lightx2v-layout LoRA for the tiny diffusion model ``model_stem``, keys prefixed ``diffusion_model.``.

    Args:
        model_stem: a key of ``TINY_WAN_DIFFUSION_MODELS``; the LoRA covers its blocks' attention and feed-forward.
        name: seeds the weights with ``seed`` (another name or seed gives another LoRA).
        seed: as for the tiny models.
    """
    if model_stem not in TINY_WAN_DIFFUSION_MODELS:
        raise ValueError(f"no tiny Wan model {model_stem!r}; there are: {', '.join(TINY_WAN_DIFFUSION_MODELS)}")
    generator = torch.Generator().manual_seed(zlib.crc32(f"{name}:{seed}".encode()))
    tensors: dict[str, torch.Tensor] = {}
    for key, shape in _trained_shapes(model_stem).items():
        layer = PREFIX + key.removesuffix(".weight")
        out_features, in_features = shape
        down = torch.randn(TINY_WAN_LORA_RANK, in_features, generator=generator) * STD
        up = torch.randn(out_features, TINY_WAN_LORA_RANK, generator=generator) * STD
        tensors[f"{layer}.lora_down.weight"] = down
        tensors[f"{layer}.lora_up.weight"] = up
        tensors[f"{layer}.alpha"] = torch.tensor(TINY_WAN_LORA_ALPHA)
    return tensors


def write_tiny_wan_loras(models_dir: Path, seed: int = 0) -> list[Path]:
    """Write every ``TINY_WAN_LORAS`` file as ``loras/<stem>.safetensors`` under ``models_dir``; returns the paths."""
    folder = Path(models_dir) / LORAS_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for stem, model_stem in TINY_WAN_LORAS.items():
        path = folder / f"{stem}.safetensors"
        save_file(tiny_wan_lora(model_stem, stem, seed), str(path))
        paths.append(path)
    return paths


def _trained_shapes(model_stem: str) -> dict[str, tuple[int, ...]]:
    """The original names and shapes of the weights a release trains, from the model built without weights."""
    from diffusers import WanTransformer3DModel

    with torch.device("meta"):
        model = WanTransformer3DModel(**TINY_WAN_DIFFUSION_MODELS[model_stem].config)
    original = wan_transformer_to_original(model.state_dict())
    return {key: tuple(tensor.shape) for key, tensor in original.items() if _TRAINED.fullmatch(key)}
