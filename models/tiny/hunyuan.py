"""Tiny random-weight stand-ins of the HunyuanVideo release files (Comfy-Org repackaged names and layouts): the
text-to-video model, the "v1 (concat)" and "v2 (replace)" image-to-video models, and the VAE.

Transformers keep HunyuanVideo's head dim 128 (width 256 = 2 heads; 1 double, 1 single and 1 refiner block), so the
detection that serves the real files serves these. Their text width ``TINY_TEXT_DIM`` is the tiny Llama's hidden
size and their pooled width ``TINY_POOLED_DIM`` the tiny CLIP-L's projection (the text-encoder stand-ins are built
to match). The VAE keeps the real compression (8x spatial, 4x temporal, 16 latent channels) with 32 channels per
stage (the VAE's 32 norm groups need multiples of 32) and one residual block per stage.

``tiny_hunyuan_transformer(variant)`` / ``tiny_hunyuan_vae()`` hold exactly the values the files hold (bfloat16),
so a diffusers folder saved from them loads to the same weights as the files. ``"t2v"`` is built with plain blocks
(as ``HunyuanVideoPipeline`` folders are); the single file of it loads with token-replace blocks, which compute the
same. Weights are seeded per variant and seed and never touch the global RNG.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeVar

import torch
from safetensors.torch import save_file

from models.families.hunyuan.checkpoint import ORIGINAL_PREFIX, hunyuan_transformer_to_original
from models.families.hunyuan.latents import SCALING_FACTOR
from models.families.hunyuan.vae_checkpoint import hunyuan_vae_to_original

if TYPE_CHECKING:
    from diffusers import AutoencoderKLHunyuanVideo, HunyuanVideoTransformer3DModel

__all__ = [
    "TINY_HUNYUAN_DIFFUSION_MODELS",
    "TINY_HUNYUAN_VAE",
    "TINY_POOLED_DIM",
    "TINY_TEXT_DIM",
    "tiny_hunyuan_transformer",
    "tiny_hunyuan_vae",
    "write_tiny_hunyuan_files",
]

TINY_TEXT_DIM = 32
"""``text_embed_dim`` of the tiny transformers: the tiny Llama text encoder's hidden size."""
TINY_POOLED_DIM = 32
"""``pooled_projection_dim`` of the tiny transformers: the tiny CLIP-L's pooled (projection) width."""
DTYPE = torch.bfloat16
NOISE = 0.05
"""Added to parameters initialised to a constant (norm weights and biases), so no two same-shaped tensors are equal:
a mapping that swapped them would change the output."""

DIFFUSION_MODELS_FOLDER = "diffusion_models"
VAE_FOLDER = "vae"
TINY_HUNYUAN_VAE = "hunyuan_video_vae_bf16"
"""The VAE's file stem."""

T = TypeVar("T", bound=torch.nn.Module)

_TRANSFORMER_BASE: Mapping[str, Any] = MappingProxyType(
    {
        "in_channels": 16,
        "out_channels": 16,
        "num_attention_heads": 2,
        "attention_head_dim": 128,
        "num_layers": 1,
        "num_single_layers": 1,
        "num_refiner_layers": 1,
        "mlp_ratio": 4.0,
        "patch_size": 2,
        "patch_size_t": 1,
        "qk_norm": "rms_norm",
        "guidance_embeds": True,
        "text_embed_dim": TINY_TEXT_DIM,
        "pooled_projection_dim": TINY_POOLED_DIM,
        "rope_theta": 256.0,
        "rope_axes_dim": (16, 56, 56),
        "image_condition_type": None,
    }
)
_VARIANTS: Mapping[str, Mapping[str, Any]] = MappingProxyType(
    {
        "t2v": _TRANSFORMER_BASE,
        # The 33-channel release's diffusers config has no guidance embedding (true CFG instead).
        "i2v_concat": MappingProxyType(
            {**_TRANSFORMER_BASE, "in_channels": 33, "guidance_embeds": False, "image_condition_type": "latent_concat"}
        ),
        "i2v_replace": MappingProxyType({**_TRANSFORMER_BASE, "image_condition_type": "token_replace"}),
    }
)
TINY_HUNYUAN_DIFFUSION_MODELS: Mapping[str, str] = MappingProxyType(
    {
        "hunyuan_video_t2v_720p_bf16": "t2v",
        "hunyuan_video_image_to_video_720p_bf16": "i2v_concat",
        "hunyuan_video_v2_replace_image_to_video_720p_bf16": "i2v_replace",
    }
)
"""File stem -> variant (``tiny_hunyuan_transformer``'s argument), one per Comfy-Org release file."""

_VAE_CONFIG: Mapping[str, Any] = MappingProxyType(
    {
        "in_channels": 3,
        "out_channels": 3,
        "latent_channels": 16,
        "block_out_channels": (32, 32, 32, 32),
        "layers_per_block": 1,
        "norm_num_groups": 32,
        "scaling_factor": SCALING_FACTOR,
        "spatial_compression_ratio": 8,
        "temporal_compression_ratio": 4,
        "mid_block_add_attention": True,
    }
)


def tiny_hunyuan_transformer(variant: str, seed: int = 0, *, rounded: bool = True) -> HunyuanVideoTransformer3DModel:
    """The tiny transformer ``variant`` (``"t2v"``, ``"i2v_concat"``, ``"i2v_replace"``) in float32, eval mode;
    ``rounded``: hold the file's bfloat16 values (False: the float32 weights before rounding)."""
    from diffusers import HunyuanVideoTransformer3DModel

    if variant not in _VARIANTS:
        raise ValueError(f"no tiny HunyuanVideo transformer {variant!r}; there are: {', '.join(_VARIANTS)}")
    model = _seeded(lambda: HunyuanVideoTransformer3DModel(**_VARIANTS[variant]), f"hunyuan_{variant}", seed)
    return _rounded(model) if rounded else model


def tiny_hunyuan_vae(seed: int = 0, *, rounded: bool = True) -> AutoencoderKLHunyuanVideo:
    """The tiny VAE in float32, eval mode; ``rounded``: hold the file's bfloat16 values."""
    from diffusers import AutoencoderKLHunyuanVideo

    model = _seeded(lambda: AutoencoderKLHunyuanVideo(**_VAE_CONFIG), TINY_HUNYUAN_VAE, seed)
    return _rounded(model) if rounded else model


def write_tiny_hunyuan_files(models_dir: Path, seed: int = 0) -> list[Path]:
    """Write the tiny HunyuanVideo files under ``models_dir`` as the releases lay them out; returns the paths.

    ``diffusion_models/<stem>.safetensors``: original key names prefixed ``model.diffusion_model.``, bfloat16.
    ``vae/hunyuan_video_vae_bf16.safetensors``: the original (diffusers) key names, bfloat16.
    """
    models_dir = Path(models_dir)
    paths = []
    for stem, variant in TINY_HUNYUAN_DIFFUSION_MODELS.items():
        state = tiny_hunyuan_transformer(variant, seed, rounded=False).state_dict()
        original = hunyuan_transformer_to_original(state)
        tensors = {ORIGINAL_PREFIX + key: tensor.to(DTYPE) for key, tensor in original.items()}
        paths.append(_save(tensors, models_dir / DIFFUSION_MODELS_FOLDER / f"{stem}.safetensors"))
    vae = hunyuan_vae_to_original(tiny_hunyuan_vae(seed, rounded=False).state_dict())
    tensors = {key: tensor.to(DTYPE) for key, tensor in vae.items()}
    paths.append(_save(tensors, models_dir / VAE_FOLDER / f"{TINY_HUNYUAN_VAE}.safetensors"))
    return paths


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
    """``model`` holding its weights rounded through bfloat16."""
    model.load_state_dict({key: tensor.to(DTYPE).float() for key, tensor in model.state_dict().items()})
    return model


def _save(tensors: Mapping[str, torch.Tensor], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({key: tensor.contiguous() for key, tensor in tensors.items()}, str(path))
    return path
