"""Tiny random-weight stand-ins of Stable Diffusion 1.5 ControlNets (``controlnet/``), for the tiny SD1.5 UNet of
``models.tiny.animatediff`` (same widths, resnets per level, attending levels, heads and text width), written as the
releases ship them:

- ``control_v11p_sd15_openpose_fp16.safetensors``: the LDM layout under ``control_model.``, float16 (as the fp16
  repacks of ControlNet 1.1 that ComfyUI users download).
- ``sd15_controlnet_diffusers.safetensors``: diffusers' layout (a Hub folder's ``diffusion_pytorch_model``), float32.

Both hold the same weights. The hint encoder is narrowed to 8/16/16/32 channels (still three stride-2 steps, so a
control image is 8 times the latent's size). The layers ``ControlNetModel`` initialises to zero (the zero
convolutions, the hint encoder's last convolution, norm biases) get small random values, so the control shows in a
UNet's output. Weights are seeded and never touch the global RNG.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

import torch
from safetensors.torch import save_file

from models.controlnet.checkpoint import controlnet_to_original
from models.tiny.animatediff import TINY_SD15_UNET

if TYPE_CHECKING:
    from diffusers import ControlNetModel

__all__ = [
    "CONTROLNET_FOLDER",
    "DIFFUSERS_FILE",
    "LDM_FILE",
    "TINY_CONTROLNET_NAMES",
    "TINY_SD15_CONTROLNET",
    "tiny_sd15_controlnet",
    "write_tiny_controlnet_files",
]

CONTROLNET_FOLDER = "controlnet"
LDM_FILE = "control_v11p_sd15_openpose_fp16.safetensors"
DIFFUSERS_FILE = "sd15_controlnet_diffusers.safetensors"
TINY_CONTROLNET_NAMES = (LDM_FILE, DIFFUSERS_FILE)
"""The file names written into ``controlnet/``."""
LDM_DTYPE = torch.float16
DIFFUSERS_DTYPE = torch.float32
ZERO_FILL_STD = 0.05

TINY_SD15_CONTROLNET = MappingProxyType(
    {
        "in_channels": TINY_SD15_UNET["in_channels"],
        "conditioning_channels": 3,
        "down_block_types": TINY_SD15_UNET["down_block_types"],
        "block_out_channels": TINY_SD15_UNET["block_out_channels"],
        "layers_per_block": TINY_SD15_UNET["layers_per_block"],
        "cross_attention_dim": TINY_SD15_UNET["cross_attention_dim"],
        "attention_head_dim": TINY_SD15_UNET["attention_head_dim"],
        "conditioning_embedding_out_channels": (8, 16, 16, 32),
    }
)
"""The tiny ControlNet's ``ControlNetModel`` kwargs."""


def tiny_sd15_controlnet(seed: int = 0) -> ControlNetModel:
    """The tiny SD1.5 ``ControlNetModel`` (``TINY_SD15_CONTROLNET``), float32, eval mode, no parameter all zero."""
    from diffusers import ControlNetModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + zlib.crc32(b"controlnet"))
        model = ControlNetModel(**TINY_SD15_CONTROLNET).eval()
        with torch.no_grad():
            for parameter in model.parameters():
                if not parameter.any():
                    parameter.normal_(std=ZERO_FILL_STD)
    return model


def write_tiny_controlnet_files(models_dir: Path, seed: int = 0) -> list[Path]:
    """Write the two tiny ControlNet files into ``models_dir/controlnet``; returns their paths."""
    folder = Path(models_dir) / CONTROLNET_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    model = tiny_sd15_controlnet(seed)
    files = (
        (LDM_FILE, controlnet_to_original(model), LDM_DTYPE),
        (DIFFUSERS_FILE, model.state_dict(), DIFFUSERS_DTYPE),
    )
    written = []
    for name, tensors, dtype in files:
        save_file({key: tensor.to(dtype).contiguous() for key, tensor in tensors.items()}, str(folder / name))
        written.append(folder / name)
    return written
