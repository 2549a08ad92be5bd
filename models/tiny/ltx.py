"""Tiny random-weight stand-ins of LTX-Video's released files, written in the releases' layouts and names:
``checkpoints/ltx-video-2b-v0.9.5.safetensors`` (transformer under ``model.diffusion_model.``, VAE under ``vae.``,
original key names, bfloat16) and ``latent_upscale_models/ltxv-spatial-upscaler-0.9.7.safetensors`` (diffusers'
key names, a ``config`` JSON in the metadata).

The transformer keeps the real head dim 64 and patch sizes 1 (width 128 = 2 heads, 2 layers; caption width 32,
the ``d_model`` of the tiny T5-XXL stand-in in ``models.tiny.text_families``); the VAE keeps the 0.9.5 architecture
(patch 4, spatial / temporal / spatiotemporal downsamplers, residual upsamplers, timestep-conditioned decoder: 32x
spatial, 8x temporal, 128 latent channels) with small widths and random per-channel statistics; the upsampler keeps
128 channels in and out with 32 inside.

``tiny_ltx_transformer`` / ``tiny_ltx_vae`` / ``tiny_ltx_upsampler`` hold exactly the values the files hold
(bfloat16-rounded), so a diffusers folder saved from them loads to the same models as the files. Weights are
seeded and never touch the global RNG.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeVar

import torch
from safetensors.torch import save_file

from models.families.ltx.checkpoint import ORIGINAL_PREFIX, ltx_transformer_to_original
from models.families.ltx.upsampler import CONFIG_METADATA
from models.families.ltx.vae_checkpoint import ltx_vae_to_original

if TYPE_CHECKING:
    from diffusers import AutoencoderKLLTXVideo, LTXVideoTransformer3DModel
    from diffusers.pipelines.ltx.modeling_latent_upsampler import LTXLatentUpsamplerModel

__all__ = [
    "CHECKPOINT_FILE",
    "TINY_LTX_TRANSFORMER_CONFIG",
    "TINY_LTX_UPSAMPLER_CONFIG",
    "TINY_LTX_VAE_CONFIG",
    "UPSAMPLER_FILE",
    "tiny_ltx_transformer",
    "tiny_ltx_upsampler",
    "tiny_ltx_vae",
    "write_tiny_ltx_files",
]

CHECKPOINT_FILE = "checkpoints/ltx-video-2b-v0.9.5.safetensors"
UPSAMPLER_FILE = "latent_upscale_models/ltxv-spatial-upscaler-0.9.7.safetensors"
VAE_PREFIX = "vae."
FILE_DTYPE = torch.bfloat16
NOISE = 0.05
"""Added to parameters initialised to a constant, so that no two same-shaped tensors are equal."""

T = TypeVar("T", bound=torch.nn.Module)

TINY_LTX_TRANSFORMER_CONFIG: Mapping[str, Any] = MappingProxyType(
    {
        "in_channels": 128,
        "out_channels": 128,
        "patch_size": 1,
        "patch_size_t": 1,
        "num_attention_heads": 2,
        "attention_head_dim": 64,
        "cross_attention_dim": 128,
        "num_layers": 2,
        "caption_channels": 32,
    }
)
TINY_LTX_VAE_CONFIG: Mapping[str, Any] = MappingProxyType(
    {
        "in_channels": 3,
        "out_channels": 3,
        "latent_channels": 128,
        "block_out_channels": (8, 16, 32, 64, 128),
        "down_block_types": ("LTXVideo095DownBlock3D",) * 4,
        "decoder_block_out_channels": (16, 32, 64),
        "layers_per_block": (1, 1, 1, 1, 1),
        "decoder_layers_per_block": (1, 1, 1, 1),
        "spatio_temporal_scaling": (True,) * 4,
        "decoder_spatio_temporal_scaling": (True,) * 3,
        "decoder_inject_noise": (False,) * 4,
        "downsample_type": ("spatial", "temporal", "spatiotemporal", "spatiotemporal"),
        "upsample_residual": (True,) * 3,
        "upsample_factor": (2, 2, 2),
        "timestep_conditioning": True,
        "patch_size": 4,
        "patch_size_t": 1,
        "resnet_norm_eps": 1e-6,
        "scaling_factor": 1.0,
        "encoder_causal": True,
        "decoder_causal": False,
        "spatial_compression_ratio": 32,
        "temporal_compression_ratio": 8,
    }
)
TINY_LTX_UPSAMPLER_CONFIG: Mapping[str, Any] = MappingProxyType(
    {
        "in_channels": 128,
        "mid_channels": 32,
        "num_blocks_per_stage": 1,
        "dims": 3,
        "spatial_upsample": True,
        "temporal_upsample": False,
    }
)


def tiny_ltx_transformer(seed: int = 0, *, rounded: bool = True) -> LTXVideoTransformer3DModel:
    """The tiny ``LTXVideoTransformer3DModel`` in float32, eval mode; ``rounded``: hold the file's bfloat16 values."""
    from diffusers import LTXVideoTransformer3DModel

    model = _seeded(lambda: LTXVideoTransformer3DModel(**TINY_LTX_TRANSFORMER_CONFIG), "transformer", seed)
    return _rounded(model) if rounded else model


def tiny_ltx_vae(seed: int = 0, *, rounded: bool = True) -> AutoencoderKLLTXVideo:
    """The tiny ``AutoencoderKLLTXVideo`` (0.9.5 layout, random latent statistics) in float32, eval mode."""
    from diffusers import AutoencoderKLLTXVideo

    def build() -> AutoencoderKLLTXVideo:
        model = AutoencoderKLLTXVideo(**TINY_LTX_VAE_CONFIG)
        channels = model.latents_mean.shape[0]
        model.latents_mean.copy_(torch.randn(channels) * 0.1)
        model.latents_std.copy_(torch.rand(channels) + 0.5)
        return model

    model = _seeded(build, "vae", seed)
    return _rounded(model) if rounded else model


def tiny_ltx_upsampler(seed: int = 0, *, rounded: bool = True) -> LTXLatentUpsamplerModel:
    """The tiny spatial ``LTXLatentUpsamplerModel`` in float32, eval mode."""
    from diffusers.pipelines.ltx.modeling_latent_upsampler import LTXLatentUpsamplerModel

    model = _seeded(lambda: LTXLatentUpsamplerModel(**TINY_LTX_UPSAMPLER_CONFIG), "upsampler", seed)
    return _rounded(model) if rounded else model


def write_tiny_ltx_files(models_dir: Path, seed: int = 0) -> list[Path]:
    """Write the tiny combined checkpoint and latent upsampler under ``models_dir``; returns their paths."""
    models_dir = Path(models_dir)
    transformer = ltx_transformer_to_original(tiny_ltx_transformer(seed, rounded=False).state_dict())
    vae = ltx_vae_to_original(tiny_ltx_vae(seed, rounded=False).state_dict())
    combined = {ORIGINAL_PREFIX + key: tensor for key, tensor in transformer.items()}
    combined.update({VAE_PREFIX + key: tensor for key, tensor in vae.items()})
    upsampler = tiny_ltx_upsampler(seed, rounded=False).state_dict()
    config = json.dumps({"_class_name": "LatentUpsampler", **TINY_LTX_UPSAMPLER_CONFIG})
    return [
        _save(combined, models_dir / CHECKPOINT_FILE, {}),
        _save(upsampler, models_dir / UPSAMPLER_FILE, {CONFIG_METADATA: config}),
    ]


def _seeded(build: Callable[[], T], name: str, seed: int) -> T:
    """``build()`` with weights drawn from the RNG seeded by (name, seed), constant parameters nudged by ``NOISE``;
    the global RNG is left as it was."""
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(zlib.crc32(f"ltx-{name}:{seed}".encode()))
        model = build()
        for parameter in model.parameters():
            if parameter.numel() and bool((parameter == parameter.flatten()[0]).all()):
                parameter.add_(torch.randn_like(parameter), alpha=NOISE)
    return model.eval()


def _rounded(model: T) -> T:
    """``model`` holding its values rounded through the files' bfloat16."""
    model.load_state_dict({key: tensor.to(FILE_DTYPE).float() for key, tensor in model.state_dict().items()})
    return model


def _save(tensors: Mapping[str, torch.Tensor], path: Path, metadata: Mapping[str, str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    stored = {key: tensor.to(FILE_DTYPE).contiguous() for key, tensor in tensors.items()}
    save_file(stored, str(path), metadata=dict(metadata) or None)
    return path
