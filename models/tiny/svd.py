"""A tiny random-weight stand-in of the Stable Video Diffusion release, ``checkpoints/svd_xt.safetensors``, laid out as
``svd_xt.safetensors`` is (float16, SGM names): the UNet under ``model.diffusion_model.``, the ViT-H image encoder in
open_clip's layout under ``conditioner.embedders.0.open_clip.model.``, the VAE's temporal decoder and encoder under
``first_stage_model.`` and the encoder with its ``quant_conv`` again under ``conditioner.embedders.3.encoder.``.

The networks keep the real architectures and the properties detection relies on (64-wide attention heads in the
UNet, 80-wide heads and 224 px images with 14 px patches in the CLIP tower, 8x spatial compression and two
resnets in the VAE's middle block), narrow and shallow: a 224x224 video of a few frames samples in a fraction of a
second a step on a CPU. ``tiny_svd_unet`` / ``tiny_svd_vae`` / ``tiny_svd_image_encoder`` hold exactly the values
the file holds (rounded to float16). Weights are seeded and never touch the global RNG.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeVar

import torch
from safetensors.torch import save_file

from models.families.svd.latents import SCALING_FACTOR, SVD_LATENT
from models.families.svd.unet_checkpoint import ORIGINAL_PREFIX, SvdUnetSpec, svd_unet_to_original
from models.families.svd.vae_checkpoint import SvdVaeSpec, svd_vae_to_original

if TYPE_CHECKING:
    from diffusers import AutoencoderKLTemporalDecoder, UNetSpatioTemporalConditionModel
    from transformers import CLIPVisionModelWithProjection

__all__ = [
    "CHECKPOINT_FILE",
    "CLIP_PREFIX",
    "TINY_IMAGE_DIM",
    "TINY_SVD_NAMES",
    "TINY_SVD_UNET",
    "TINY_SVD_VAE",
    "tiny_svd_image_encoder",
    "tiny_svd_unet",
    "tiny_svd_vae",
    "write_tiny_svd_files",
]

CHECKPOINT_FILE = "checkpoints/svd_xt.safetensors"
TINY_SVD_NAMES = (CHECKPOINT_FILE,)
"""``folder/name`` of what ``write_tiny_svd_files`` writes."""
CLIP_PREFIX = "conditioner.embedders.0.open_clip.model."
FILE_DTYPE = torch.float16
NOISE = 0.05
"""Added to parameters initialised to a constant (norms, ``mix_factor``), so that no two same-shaped tensors are
equal: a mapping that swapped them would change the output."""
TINY_IMAGE_DIM = 32
"""The CLIP image embedding width: the UNet's cross-attention width."""

T = TypeVar("T", bound=torch.nn.Module)

TINY_SVD_UNET: Mapping[str, Any] = MappingProxyType(
    {
        "sample_size": 28,
        "in_channels": 2 * SVD_LATENT.channels,
        "out_channels": SVD_LATENT.channels,
        "down_block_types": ("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
        "up_block_types": ("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"),
        "block_out_channels": (64, 128),
        "addition_time_embed_dim": 8,
        "projection_class_embeddings_input_dim": 24,
        "layers_per_block": 1,
        "cross_attention_dim": TINY_IMAGE_DIM,
        "transformer_layers_per_block": (1, 1),
        "num_attention_heads": (1, 2),
        "num_frames": 25,
    }
)
"""``UNetSpatioTemporalConditionModel`` kwargs of the tiny UNet (heads 64 wide, as the release's)."""

TINY_SVD_VAE: Mapping[str, Any] = MappingProxyType(
    {
        "in_channels": 3,
        "out_channels": 3,
        "down_block_types": ("DownEncoderBlock2D",) * 4,
        "block_out_channels": (32, 32, 32, 32),
        "layers_per_block": 2,
        "latent_channels": SVD_LATENT.channels,
        "sample_size": 768,
        "scaling_factor": SCALING_FACTOR,
        "force_upcast": True,
    }
)
"""``AutoencoderKLTemporalDecoder`` kwargs of the tiny VAE (8x spatial compression, two middle resnets)."""

TINY_CLIP_VISION: Mapping[str, Any] = MappingProxyType(
    {
        "hidden_size": 160,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "image_size": 224,
        "patch_size": 14,
        "hidden_act": "gelu",
        "layer_norm_eps": 1e-5,
        "projection_dim": TINY_IMAGE_DIM,
    }
)
"""``CLIPVisionConfig`` of the tiny image encoder: ViT-H's head width (80), image and patch size."""

_OPEN_CLIP = (
    ("embeddings.class_embedding", "class_embedding"),
    ("embeddings.position_embedding.weight", "positional_embedding"),
    ("embeddings.patch_embedding.weight", "conv1.weight"),
    ("pre_layrnorm.", "ln_pre."),
    ("post_layernorm.", "ln_post."),
)
"""HF ``vision_model.*`` -> open_clip ``visual.*`` outside the blocks (``visual_projection`` is ``proj``,
transposed)."""
_OPEN_CLIP_BLOCK = (
    ("layer_norm1.", "ln_1."),
    ("layer_norm2.", "ln_2."),
    ("self_attn.out_proj.", "attn.out_proj."),
    ("mlp.fc1.", "mlp.c_fc."),
    ("mlp.fc2.", "mlp.c_proj."),
)


def tiny_svd_unet(seed: int = 0) -> UNetSpatioTemporalConditionModel:
    """The tiny SVD UNet in float32, eval mode, holding the file's float16 values."""
    from diffusers import UNetSpatioTemporalConditionModel

    return _rounded(_seeded(lambda: UNetSpatioTemporalConditionModel(**TINY_SVD_UNET), "svd_unet", seed))


def tiny_svd_vae(seed: int = 0) -> AutoencoderKLTemporalDecoder:
    """The tiny SVD VAE in float32, eval mode, holding the file's float16 values."""
    from diffusers import AutoencoderKLTemporalDecoder

    return _rounded(_seeded(lambda: AutoencoderKLTemporalDecoder(**TINY_SVD_VAE), "svd_vae", seed))


def tiny_svd_image_encoder(seed: int = 0) -> CLIPVisionModelWithProjection:
    """The tiny CLIP image encoder in float32, eval mode, holding the file's float16 values."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    config = CLIPVisionConfig(**TINY_CLIP_VISION)
    return _rounded(_seeded(lambda: CLIPVisionModelWithProjection(config), "svd_clip_vision", seed))


def write_tiny_svd_files(models_dir: Path, seed: int = 0) -> list[Path]:
    """Write ``checkpoints/svd_xt.safetensors`` under ``models_dir``; returns its path."""
    unet = svd_unet_to_original(tiny_svd_unet(seed).state_dict(), SvdUnetSpec(TINY_SVD_UNET))
    tensors = {ORIGINAL_PREFIX + key: tensor for key, tensor in unet.items()}
    tensors |= {CLIP_PREFIX + key: tensor for key, tensor in _to_open_clip(tiny_svd_image_encoder(seed)).items()}
    tensors |= svd_vae_to_original(tiny_svd_vae(seed).state_dict(), SvdVaeSpec(TINY_SVD_VAE))
    path = Path(models_dir) / CHECKPOINT_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({key: tensor.to(FILE_DTYPE).contiguous() for key, tensor in tensors.items()}, str(path))
    return [path]


def _to_open_clip(model: CLIPVisionModelWithProjection) -> dict[str, torch.Tensor]:
    """The vision tower in open_clip's names (``visual.*``): q, k and v stacked into ``in_proj``, the projection
    as ``proj`` (``x @ proj``)."""
    state = model.state_dict()
    result = {"visual.proj": state.pop("visual_projection.weight").t()}
    for key in [key for key in state if key.startswith("vision_model.encoder.layers.")]:
        layer, name = key.removeprefix("vision_model.encoder.layers.").split(".", 1)
        head = f"visual.transformer.resblocks.{layer}."
        if name.startswith(("self_attn.q_proj.", "self_attn.k_proj.", "self_attn.v_proj.")):
            continue
        result[head + _renamed(name, _OPEN_CLIP_BLOCK)] = state.pop(key)
    for layer in range(model.config.num_hidden_layers):
        attention = f"vision_model.encoder.layers.{layer}.self_attn."
        head = f"visual.transformer.resblocks.{layer}.attn."
        for kind in ("weight", "bias"):
            parts = [state.pop(f"{attention}{part}_proj.{kind}") for part in ("q", "k", "v")]
            result[f"{head}in_proj_{kind}"] = torch.cat(parts)
    for key, tensor in state.items():
        result["visual." + _renamed(key.removeprefix("vision_model."), _OPEN_CLIP)] = tensor
    return result


def _renamed(name: str, table: tuple[tuple[str, str], ...]) -> str:
    for new, old in table:
        if name.startswith(new):
            return old + name.removeprefix(new)
    return name


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
