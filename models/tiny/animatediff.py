"""Tiny random-weight stand-ins for AnimateDiff on Stable Diffusion 1.5, written under the releases' names and in
their layouts: ``checkpoints/v1-5-pruned-emaonly-fp16.safetensors`` (an SD1.5 checkpoint: UNet, VAE and CLIP-L in the
LDM layout), ``animatediff_models/mm_sd_v15_v2.ckpt`` and ``animatediff_models/mm_sd_v15.ckpt`` (v2 and v1 motion
modules in the original layout, pickled as released) and ``animatediff_motion_lora/v2_lora_ZoomIn.ckpt`` (a motion
LoRA in the public v2 layout).

The UNet keeps SD1.5's structure at two levels (32 and 64 channels, two resnets per level, 8 heads, attention at
the first level and in the middle); the VAE keeps the 8x compression with 32 channels; the CLIP is the tiny CLIP-L of
``models.tiny.text_families`` (its tokenizer folder is written there). Layers the diffusers classes initialise to zero
(the motion modules' output projections) get small random values, so every part changes the result. Weights are
seeded, stored in float16, and never touch the global RNG.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, TypeVar

import torch
from safetensors.torch import save_file

from models.families.animatediff.motion_checkpoint import motion_adapter_to_original
from models.families.sd15.text_encoder import CHECKPOINT_CLIP_PREFIX
from models.families.sd15.unet_checkpoint import sd15_unet_to_original
from models.families.sd15.vae_checkpoint import sd15_vae_to_original
from models.text_encoders.clip_text import clip_text_to_single_file
from models.tiny.text_families import TINY_CLIP_L_CONFIG, tiny_clip_l

if TYPE_CHECKING:
    from diffusers import AutoencoderKL, MotionAdapter, UNet2DConditionModel

__all__ = [
    "CHECKPOINT_FILE",
    "MOTION_LORA_FILE",
    "MOTION_V1_FILE",
    "MOTION_V2_FILE",
    "TINY_ANIMATEDIFF_NAMES",
    "tiny_motion_adapter",
    "tiny_sd15_unet",
    "tiny_sd15_vae",
    "write_tiny_animatediff_files",
]

T = TypeVar("T", bound=torch.nn.Module)

CHECKPOINT_FILE = "checkpoints/v1-5-pruned-emaonly-fp16.safetensors"
MOTION_V2_FILE = "animatediff_models/mm_sd_v15_v2.ckpt"
MOTION_V1_FILE = "animatediff_models/mm_sd_v15.ckpt"
MOTION_LORA_FILE = "animatediff_motion_lora/v2_lora_ZoomIn.ckpt"
TINY_ANIMATEDIFF_NAMES = (CHECKPOINT_FILE, MOTION_V2_FILE, MOTION_V1_FILE, MOTION_LORA_FILE)
FILE_DTYPE = torch.float16
WIDTHS = (32, 64)
LORA_RANK = 2
LORA_PROJECTIONS = ("to_q", "to_k", "to_v", "to_out")
ZERO_FILL_STD = 0.05

TINY_SD15_UNET = MappingProxyType(
    {
        "sample_size": 8,
        "in_channels": 4,
        "out_channels": 4,
        "block_out_channels": WIDTHS,
        "layers_per_block": 2,
        "down_block_types": ("CrossAttnDownBlock2D", "DownBlock2D"),
        "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D"),
        "cross_attention_dim": TINY_CLIP_L_CONFIG["hidden_size"],
        "attention_head_dim": 8,
    }
)
TINY_SD15_VAE = MappingProxyType(
    {
        "block_out_channels": (32, 32, 32, 32),
        "down_block_types": ("DownEncoderBlock2D",) * 4,
        "up_block_types": ("UpDecoderBlock2D",) * 4,
        "latent_channels": 4,
        "layers_per_block": 1,
        "scaling_factor": 0.18215,
    }
)


def tiny_sd15_unet(seed: int = 0) -> UNet2DConditionModel:
    """The tiny SD1.5 ``UNet2DConditionModel`` (``TINY_SD15_UNET``), eval mode."""
    from diffusers import UNet2DConditionModel

    return _seeded(lambda: UNet2DConditionModel(**TINY_SD15_UNET), "unet", seed)


def tiny_sd15_vae(seed: int = 0) -> AutoencoderKL:
    """The tiny SD1.5 ``AutoencoderKL`` (``TINY_SD15_VAE``), eval mode."""
    from diffusers import AutoencoderKL

    return _seeded(lambda: AutoencoderKL(**TINY_SD15_VAE), "vae", seed)


def tiny_motion_adapter(seed: int = 0, *, version: int = 2) -> MotionAdapter:
    """A tiny ``MotionAdapter`` for the tiny UNet: v2 (a mid block, 32 frames) or v1 (no mid block, 24 frames)."""
    from diffusers import MotionAdapter

    def build() -> MotionAdapter:
        return MotionAdapter(
            block_out_channels=WIDTHS,
            motion_layers_per_block=TINY_SD15_UNET["layers_per_block"],
            motion_max_seq_length=32 if version == 2 else 24,
            use_motion_mid_block=version == 2,
        )

    return _seeded(build, f"motion_v{version}", seed)


def tiny_motion_lora(adapter: MotionAdapter, seed: int = 0) -> dict[str, torch.Tensor]:
    """A rank-2 motion LoRA for ``adapter``'s temporal attentions, in the public v2 layout."""
    tensors = {}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + zlib.crc32(b"motion_lora"))
        for name in motion_adapter_to_original(adapter):
            if not name.endswith(".to_q.weight") or ".attention_blocks." not in name:
                continue
            stem = name.removesuffix(".to_q.weight")
            width = adapter.state_dict()[_adapter_name(name)].shape[1]
            for projection in LORA_PROJECTIONS:
                key = f"{stem}.processor.{projection}_lora"
                tensors[f"{key}.down.weight"] = torch.randn(LORA_RANK, width) * 0.1
                tensors[f"{key}.up.weight"] = torch.randn(width, LORA_RANK) * 0.1
    return tensors


def write_tiny_animatediff_files(models_dir: Path, seed: int = 0) -> list[Path]:
    """Write the checkpoint, the two motion modules and the motion LoRA under ``models_dir``; returns their paths
    (the CLIP tokenizer comes from ``write_tiny_text_family_files``)."""
    models_dir = Path(models_dir)
    checkpoint = sd15_unet_to_original(tiny_sd15_unet(seed))
    checkpoint |= sd15_vae_to_original(tiny_sd15_vae(seed))
    clip = clip_text_to_single_file(tiny_clip_l(seed))
    checkpoint |= {CHECKPOINT_CLIP_PREFIX + key: tensor for key, tensor in clip.items()}
    v2 = tiny_motion_adapter(seed, version=2)
    files = (
        (CHECKPOINT_FILE, checkpoint),
        (MOTION_V2_FILE, motion_adapter_to_original(v2)),
        (MOTION_V1_FILE, motion_adapter_to_original(tiny_motion_adapter(seed, version=1))),
        (MOTION_LORA_FILE, tiny_motion_lora(v2, seed)),
    )
    written = []
    for name, tensors in files:
        path = models_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        stored = {key: tensor.to(FILE_DTYPE).contiguous() for key, tensor in tensors.items()}
        if path.suffix == ".safetensors":
            save_file(stored, str(path))
        else:
            torch.save(stored, path)
        written.append(path)
    return written


def _adapter_name(original: str) -> str:
    """The ``MotionAdapter`` name of an original-layout attention weight."""
    from diffusers.loaders.single_file_utils import convert_animatediff_checkpoint_to_diffusers

    return next(iter(convert_animatediff_checkpoint_to_diffusers({original: None})))


def _seeded(build: Callable[[], T], name: str, seed: int) -> T:
    """``build()`` under a seed of its own, with parameters left at zero by the class given small random values."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + zlib.crc32(name.encode()))
        module = build().eval()
        with torch.no_grad():
            for parameter in module.parameters():
                if not parameter.any():
                    parameter.normal_(std=ZERO_FILL_STD)
    return module
