"""Tiny random-weight stand-ins of the Mochi release files, written as single files in the Comfy-Org layouts and
names (``diffusion_models/mochi_preview_bf16.safetensors``, ``vae/mochi_vae.safetensors``), so workflows and tests
load them exactly as they load the real files.

The transformer is the real architecture, narrow and shallow (2 heads of 32, 2 layers); its text width is
``TINY_TEXT_DIM``, the tiny T5's ``d_model``. The VAE keeps the real compression (8x spatial, 6x temporal,
12 latent channels) and the real stage structure (attention in every encoder stage but the first) with 32 and 64
channels (its group norms take 32 groups). A 64x64 video of 7 or 13 frames samples and decodes in well under a
second a step on a CPU.

``tiny_mochi_transformer`` / ``tiny_mochi_vae`` hold exactly the values the files hold (rounded to bfloat16), so a
diffusers folder saved from them loads to the same model as the file. Weights are seeded and never touch the global
RNG.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeVar

import torch
from safetensors.torch import save_file

from models.families.mochi.checkpoint import ORIGINAL_PREFIX, mochi_transformer_to_original
from models.families.mochi.latents import MOCHI_LATENT
from models.families.mochi.vae_checkpoint import mochi_vae_to_original

if TYPE_CHECKING:
    from diffusers import AutoencoderKLMochi, MochiTransformer3DModel

__all__ = [
    "TINY_MOCHI_TRANSFORMER",
    "TINY_MOCHI_VAE",
    "TINY_TEXT_DIM",
    "TRANSFORMER_FILE",
    "VAE_FILE",
    "tiny_mochi_transformer",
    "tiny_mochi_vae",
    "write_tiny_mochi_files",
]

TINY_TEXT_DIM = 32
"""The text width of the tiny transformer: the ``d_model`` of the tiny T5 encoder (``CLIPLoader`` type ``mochi``)."""
TRANSFORMER_FILE = "diffusion_models/mochi_preview_bf16.safetensors"
VAE_FILE = "vae/mochi_vae.safetensors"
FILE_DTYPE = torch.bfloat16
NOISE = 0.05
"""Added to the parameters initialised to a constant (norm weights, the zero RoPE frequencies), so that no two
same-shaped tensors are equal: a mapping that swapped them would change the output."""

T = TypeVar("T", bound=torch.nn.Module)

TINY_MOCHI_TRANSFORMER: Mapping[str, Any] = MappingProxyType(
    {
        "patch_size": 2,
        "num_attention_heads": 2,
        "attention_head_dim": 32,
        "num_layers": 2,
        "pooled_projection_dim": 48,
        "in_channels": MOCHI_LATENT.channels,
        "out_channels": MOCHI_LATENT.channels,
        "qk_norm": "rms_norm",
        "text_embed_dim": TINY_TEXT_DIM,
        "time_embed_dim": 64,
        "activation_fn": "swiglu",
        "max_sequence_length": 256,
    }
)
"""``MochiTransformer3DModel`` kwargs of the tiny diffusion model."""

TINY_MOCHI_VAE: Mapping[str, Any] = MappingProxyType(
    {
        "in_channels": 15,
        "out_channels": 3,
        "encoder_block_out_channels": (32, 32, 64, 64),
        "decoder_block_out_channels": (32, 32, 64, 64),
        "latent_channels": MOCHI_LATENT.channels,
        "layers_per_block": (1, 1, 2, 1, 1),
        "act_fn": "silu",
        "temporal_expansions": (1, 2, 3),
        "spatial_expansions": (2, 2, 2),
        "add_attention_block": (False, True, True, True, True),
        "latents_mean": MOCHI_LATENT.mean,
        "latents_std": MOCHI_LATENT.std,
        "scaling_factor": 1.0,
    }
)
"""``AutoencoderKLMochi`` kwargs of the tiny VAE."""


def tiny_mochi_transformer(seed: int = 0, *, rounded: bool = True) -> MochiTransformer3DModel:
    """The tiny Mochi diffusion model in float32, eval mode; ``rounded``: hold the file's bfloat16 values (False
    gives the float32 weights before rounding)."""
    from diffusers import MochiTransformer3DModel

    model = _seeded(lambda: MochiTransformer3DModel(**TINY_MOCHI_TRANSFORMER), "mochi_preview", seed)
    return _rounded(model) if rounded else model


def tiny_mochi_vae(seed: int = 0, *, rounded: bool = True) -> AutoencoderKLMochi:
    """The tiny Mochi VAE in float32, eval mode; ``rounded``: hold the file's bfloat16 values."""
    from diffusers import AutoencoderKLMochi

    model = _seeded(lambda: AutoencoderKLMochi(**TINY_MOCHI_VAE), "mochi_vae", seed)
    return _rounded(model) if rounded else model


def write_tiny_mochi_files(models_dir: Path, seed: int = 0) -> list[Path]:
    """Write the tiny Mochi files under ``models_dir`` as the releases lay them out; returns the paths.

    ``diffusion_models/mochi_preview_bf16.safetensors``: Genmo's key names prefixed ``model.diffusion_model.``;
    ``vae/mochi_vae.safetensors``: Genmo's key names under ``encoder.`` and ``decoder.``; both in bfloat16.
    """
    models_dir = Path(models_dir)
    transformer = mochi_transformer_to_original(tiny_mochi_transformer(seed, rounded=False).state_dict())
    vae = mochi_vae_to_original(tiny_mochi_vae(seed, rounded=False).state_dict(), TINY_MOCHI_VAE)
    return [
        _save({ORIGINAL_PREFIX + key: tensor for key, tensor in transformer.items()}, models_dir / TRANSFORMER_FILE),
        _save(vae, models_dir / VAE_FILE),
    ]


def _seeded(build: Callable[[], T], name: str, seed: int) -> T:
    """``build()`` with weights drawn from the RNG seeded by (name, seed), constant parameters nudged by ``NOISE``;
    the global RNG is left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(zlib.crc32(f"{name}:{seed}".encode()))
        model = build()
        with torch.no_grad():
            for parameter in model.parameters():
                if parameter.numel() and bool((parameter == parameter.flatten()[0]).all()):
                    parameter.add_(torch.randn_like(parameter), alpha=NOISE)
    return model.eval()


def _rounded(model: T) -> T:
    model.load_state_dict({key: tensor.to(FILE_DTYPE).float() for key, tensor in model.state_dict().items()})
    return model


def _save(tensors: Mapping[str, torch.Tensor], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({key: tensor.to(FILE_DTYPE).contiguous() for key, tensor in tensors.items()}, str(path))
    return path
