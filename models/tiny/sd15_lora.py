"""A tiny stand-in of a Stable Diffusion 1.5 LoRA from Civitai, for the tiny SD1.5 checkpoint of
``models.tiny.animatediff``: ``loras/add_detail.safetensors``, in kohya's layout as such releases ship.

Kohya's layout names each trained layer by its diffusers name with dots as underscores, prefixed ``lora_unet_`` (UNet)
or ``lora_te_text_model_`` (the CLIP text encoder's layers), with ``lora_down.weight``, ``lora_up.weight`` and
a scalar ``alpha``. It covers the attention projections, the feed-forward layers and the 1x1 ``proj_in``/``proj_out``
convolutions of every transformer, the resnets' 3x3 ``conv1`` (LyCORIS LoCon: ``down`` [rank, in, 3, 3], ``up``
[out, rank, 1, 1]) and ``time_emb_proj``, and the text encoder's attention and MLP layers. The same weights in
diffusers' peft layout (``unet.``/``text_encoder.text_model.`` names, ``lora_A``/``lora_B``, alpha/rank folded into
``lora_A``) come from ``tiny_sd15_lora(layout="peft")``. Weights are seeded, stored in float16, and never touch the
global RNG.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterator
from pathlib import Path
from types import MappingProxyType

import torch
from safetensors.torch import save_file

from models.tiny.animatediff import FILE_DTYPE, tiny_sd15_unet
from models.tiny.text_families import tiny_clip_l

__all__ = ["LORA_FILE", "TINY_SD15_LORA_ALPHA", "TINY_SD15_LORA_RANK", "tiny_sd15_lora", "write_tiny_sd15_loras"]

LORA_FILE = "loras/add_detail.safetensors"
LAYOUTS = ("kohya", "peft")
TINY_SD15_LORA_RANK = 4
TINY_SD15_LORA_ALPHA = 2.0
"""alpha / rank = 0.5 (a power of two, so folding it into ``lora_A`` is exact in float16)."""
STD = 0.1
_UNET_TRAINED = re.compile(
    r".*(?:attentions\.\d+\.(?:proj_in|proj_out|transformer_blocks\.\d+\.(?:attn[12]\.(?:to_q|to_k|to_v|to_out\.0)"
    r"|ff\.net\.(?:0\.proj|2)))|resnets\.\d+\.(?:conv1|time_emb_proj))"
)
_TEXT_TRAINED = re.compile(r"encoder\.layers\.\d+\.(?:self_attn\.(?:q_proj|k_proj|v_proj|out_proj)|mlp\.fc[12])")
_PREFIXES = MappingProxyType(
    {"kohya": ("lora_unet_", "lora_te_text_model_"), "peft": ("unet.", "text_encoder.text_model.")}
)
"""UNet and text-encoder prefixes; released LoRAs name CLIP's layers under ``text_model.`` (transformers 4's
``CLIPTextModel`` level, which transformers 5 dropped)."""


def tiny_sd15_lora(layout: str = "kohya", seed: int = 0) -> dict[str, torch.Tensor]:
    """The tiny SD1.5 LoRA's tensors (float32) in ``layout``: ``"kohya"`` or ``"peft"`` (the same update)."""
    if layout not in LAYOUTS:
        raise ValueError(f"no LoRA layout {layout!r}; there are: {', '.join(LAYOUTS)}")
    generator = torch.Generator().manual_seed(seed + zlib.crc32(b"sd15_lora"))
    unet_prefix, text_prefix = _PREFIXES[layout]
    networks = ((unet_prefix, tiny_sd15_unet(seed), _UNET_TRAINED), (text_prefix, tiny_clip_l(seed), _TEXT_TRAINED))
    tensors: dict[str, torch.Tensor] = {}
    for prefix, network, trained in networks:
        for name, module in _trained_layers(network, trained):
            down_shape, up_shape = _pair_shapes(module)
            down = torch.randn(down_shape, generator=generator) * STD
            up = torch.randn(up_shape, generator=generator) * STD
            if layout == "kohya":
                stem = prefix + name.replace(".", "_")
                tensors[f"{stem}.lora_down.weight"] = down
                tensors[f"{stem}.lora_up.weight"] = up
                tensors[f"{stem}.alpha"] = torch.tensor(TINY_SD15_LORA_ALPHA)
            else:
                stem = prefix + name
                tensors[f"{stem}.lora_A.weight"] = down * (TINY_SD15_LORA_ALPHA / TINY_SD15_LORA_RANK)
                tensors[f"{stem}.lora_B.weight"] = up
    return tensors


def write_tiny_sd15_loras(models_dir: Path, seed: int = 0) -> list[Path]:
    """Write ``LORA_FILE`` (kohya layout, float16) under ``models_dir``; returns its path."""
    path = Path(models_dir) / LORA_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    stored = {key: tensor.to(FILE_DTYPE).contiguous() for key, tensor in tiny_sd15_lora("kohya", seed).items()}
    save_file(stored, str(path))
    return [path]


def _trained_layers(network: torch.nn.Module, trained: re.Pattern[str]) -> Iterator[tuple[str, torch.nn.Module]]:
    for name, module in network.named_modules():
        if isinstance(module, torch.nn.Linear | torch.nn.Conv2d) and trained.fullmatch(name):
            yield name, module


def _pair_shapes(module: torch.nn.Module) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """``down`` and ``up`` shapes for a linear layer or a convolution (a kernel-sized down, a 1x1 up)."""
    out_features, in_features, *kernel = module.weight.shape
    if kernel:
        return (TINY_SD15_LORA_RANK, in_features, *kernel), (out_features, TINY_SD15_LORA_RANK, 1, 1)
    return (TINY_SD15_LORA_RANK, in_features), (out_features, TINY_SD15_LORA_RANK)
