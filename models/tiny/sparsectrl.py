"""Tiny random-weight stand-ins of the AnimateDiff v3 SparseCtrl releases (``controlnet/``), for the tiny SD1.5 UNet
of ``models.tiny.animatediff`` (same widths, resnets per level, attending levels, heads and text width), written as
the releases ship them: pickled state dicts (``torch.save``, readable with ``weights_only=True``) in the original
layout, float32.

- ``v3_sd15_sparsectrl_rgb.ckpt``: the condition is a key frame's VAE latent (4 channels) encoded by one
  convolution, plus the mask channel.
- ``v3_sd15_sparsectrl_scribble.ckpt``: the condition is a 3-channel drawing encoded by the hint encoder, narrowed
  to 8/16/16/32 channels as the tiny ControlNet's (still three stride-2 steps: 8 times the latent's size), plus
  the mask channel.

Layers ``SparseControlNetModel`` initialises to zero (the zero convolutions, the condition encoder's output, the
motion modules' output projections, norm biases) get small random values and the scribble's hint encoder is drawn
with a gain that keeps its signal, so the control shows. Weights are seeded and never touch the global RNG.
"""

from __future__ import annotations

import math
import zlib
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

import torch

from models.controlnet.sparsectrl import sparsectrl_to_original
from models.tiny.animatediff import TINY_SD15_UNET
from models.tiny.controlnet import CONTROLNET_FOLDER, TINY_SD15_CONTROLNET

if TYPE_CHECKING:
    from collections.abc import Mapping

    from diffusers import SparseControlNetModel

__all__ = [
    "RGB_FILE",
    "SCRIBBLE_FILE",
    "TINY_SPARSECTRL_CONFIGS",
    "TINY_SPARSECTRL_NAMES",
    "SparseCtrlKind",
    "tiny_sparsectrl",
    "write_tiny_sparsectrl_files",
]

SparseCtrlKind = Literal["rgb", "scribble"]

RGB_FILE = "v3_sd15_sparsectrl_rgb.ckpt"
SCRIBBLE_FILE = "v3_sd15_sparsectrl_scribble.ckpt"
FILES: Mapping[SparseCtrlKind, str] = MappingProxyType({"rgb": RGB_FILE, "scribble": SCRIBBLE_FILE})
TINY_SPARSECTRL_NAMES = (RGB_FILE, SCRIBBLE_FILE)
"""The file names written into ``controlnet/``."""
FILE_DTYPE = torch.float32
ZERO_FILL_STD = 0.05
HINT_GAIN = 1.5
"""The hint encoder's convolutions are drawn with std ``HINT_GAIN / sqrt(fan_in)``: at the default initialisation a
drawing's signal fades through seven narrow convolutions and the scribble control would barely show."""

_SHARED = {
    "in_channels": TINY_SD15_UNET["in_channels"],
    "down_block_types": tuple(
        "CrossAttnDownBlockMotion" if kind.startswith("CrossAttn") else "DownBlockMotion"
        for kind in TINY_SD15_UNET["down_block_types"]
    ),
    "block_out_channels": TINY_SD15_UNET["block_out_channels"],
    "layers_per_block": TINY_SD15_UNET["layers_per_block"],
    "cross_attention_dim": TINY_SD15_UNET["cross_attention_dim"],
    "transformer_layers_per_block": 1,
    "temporal_transformer_layers_per_block": 1,
    "attention_head_dim": TINY_SD15_UNET["attention_head_dim"],
    "use_linear_projection": False,
    "motion_max_seq_length": 32,
    "motion_num_attention_heads": 8,
    "concat_conditioning_mask": True,
}
TINY_SPARSECTRL_CONFIGS: Mapping[SparseCtrlKind, Mapping[str, Any]] = MappingProxyType(
    {
        "rgb": MappingProxyType(
            {
                **_SHARED,
                "conditioning_channels": TINY_SD15_UNET["in_channels"],
                "conditioning_embedding_out_channels": None,
                "use_simplified_condition_embedding": True,
            }
        ),
        "scribble": MappingProxyType(
            {
                **_SHARED,
                "conditioning_channels": 3,
                "conditioning_embedding_out_channels": TINY_SD15_CONTROLNET["conditioning_embedding_out_channels"],
                "use_simplified_condition_embedding": False,
            }
        ),
    }
)
"""Each tiny SparseCtrl's ``SparseControlNetModel`` kwargs (all of those ``detect_sparsectrl`` reads)."""


def tiny_sparsectrl(kind: SparseCtrlKind, seed: int = 0) -> SparseControlNetModel:
    """The tiny ``SparseControlNetModel`` of ``kind`` (``"rgb"`` or ``"scribble"``), float32, eval mode, no
    parameter all zero."""
    from diffusers import SparseControlNetModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + zlib.crc32(f"sparsectrl_{kind}".encode()))
        model = SparseControlNetModel(**TINY_SPARSECTRL_CONFIGS[kind]).eval()
        with torch.no_grad():
            for parameter in model.parameters():
                if not parameter.any():
                    parameter.normal_(std=ZERO_FILL_STD)
            if not model.use_simplified_condition_embedding:
                _strengthen_hint_encoder(model.controlnet_cond_embedding)
    return model


def _strengthen_hint_encoder(encoder: torch.nn.Module) -> None:
    """Redraw the hint encoder's convolution weights at ``HINT_GAIN / sqrt(fan_in)`` so its output keeps the size
    of the RGB SparseCtrl's (about 0.1)."""
    for conv in encoder.modules():
        if isinstance(conv, torch.nn.Conv2d):
            conv.weight.normal_(std=HINT_GAIN / math.sqrt(conv.weight[0].numel()))


def write_tiny_sparsectrl_files(models_dir: Path, seed: int = 0) -> list[Path]:
    """Write the two tiny SparseCtrl files into ``models_dir/controlnet``; returns their paths."""
    folder = Path(models_dir) / CONTROLNET_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for kind, name in FILES.items():
        tensors = sparsectrl_to_original(tiny_sparsectrl(kind, seed))
        torch.save({key: tensor.to(FILE_DTYPE).contiguous() for key, tensor in tensors.items()}, folder / name)
        written.append(folder / name)
    return written
