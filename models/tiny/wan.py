"""Tiny random-weight stand-ins of every released Wan diffusion model and VAE, written as single files in the
Comfy-Org release layouts and names, so workflows and tests load them exactly as they load the real files.

Transformers keep Wan's head dim 128 (dim 256 = 2 heads, 2 layers), so the detection that serves real files serves
these; the text width 64 is the tiny UMT5's d_model and the image width 160 the tiny CLIP vision's hidden size.
VAEs keep the real compression (2.1: 8x spatial, 4x temporal, z 16; 2.2: 16x spatial, 4x temporal, z 48) with
small channel counts.

``tiny_wan_transformer(stem)`` / ``tiny_wan_vae(stem)`` hold exactly the values the files hold (rounded to fp16 or
bf16, or through scaled fp8), so a diffusers folder saved from them loads to the same model as the file. Weights
are seeded per stem and seed and never touch the global RNG.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import torch
from safetensors.torch import save_file

from models.families.wan.checkpoint import ORIGINAL_PREFIX, wan_transformer_to_original
from models.families.wan.latents import WAN21_LATENT, WAN22_LATENT
from models.families.wan.vae_checkpoint import wan_vae_to_original
from models.scaled_fp8 import dequantize_scaled, quantize_scaled

if TYPE_CHECKING:
    from diffusers import AutoencoderKLWan, WanTransformer3DModel

__all__ = [
    "TINY_CLIP_VISION_TOKENS",
    "TINY_WAN_DIFFUSION_MODELS",
    "TINY_WAN_VAES",
    "TinyWan",
    "TinyWanVae",
    "tiny_wan_transformer",
    "tiny_wan_vae",
    "write_tiny_wan_files",
]

DIFFUSION_MODELS_FOLDER = "diffusion_models"
VAE_FOLDER = "vae"
TINY_CLIP_VISION_TOKENS = 257
"""Tokens per image of the CLIP vision output the first-last-frame model takes (class token + 16x16 patches, as
ViT-H/14 at 224 px): its learned positions cover two images."""
NOISE = 0.05
"""Added to the parameters initialised to a constant (norm weights and biases, position tables), so that no two
same-shaped tensors are equal: a mapping that swapped them would change the output."""

VAE_DTYPE = torch.bfloat16
Storage = Literal["fp16", "bf16", "fp8_scaled", "fp8_e4m3fn"]
STORAGE_DTYPES: Mapping[str, torch.dtype] = MappingProxyType(
    {"fp16": torch.float16, "bf16": torch.bfloat16, "fp8_scaled": torch.float16, "fp8_e4m3fn": torch.float16}
)
"""The dtype a file keeps its tensors in (the fp8 layers of ``fp8_scaled`` and ``fp8_e4m3fn`` aside)."""
FP8 = torch.float8_e4m3fn
T = TypeVar("T", bound=torch.nn.Module)

_TRANSFORMER_BASE: Mapping[str, Any] = {
    "patch_size": (1, 2, 2),
    "num_attention_heads": 2,
    "attention_head_dim": 128,
    "in_channels": 16,
    "out_channels": 16,
    "text_dim": 64,
    "freq_dim": 256,
    "ffn_dim": 512,
    "num_layers": 2,
    "cross_attn_norm": True,
    "qk_norm": "rms_norm_across_heads",
    "eps": 1e-6,
    "image_dim": None,
    "added_kv_proj_dim": None,
    "rope_max_seq_len": 1024,
    "pos_embed_seq_len": None,
}
_IMAGE_CROSS_ATTENTION = {"image_dim": 160, "added_kv_proj_dim": 256}


@dataclass(frozen=True)
class TinyWan:
    """One tiny diffusion model: its variant, ``WanTransformer3DModel`` kwargs, file precision and VAE."""

    variant: str
    config: Mapping[str, Any]
    storage: Storage
    vae: str


@dataclass(frozen=True)
class TinyWanVae:
    """One tiny VAE: its version and ``AutoencoderKLWan`` kwargs."""

    version: str
    config: Mapping[str, Any]


def _tiny(variant: str, storage: Storage, vae: str, **changes: Any) -> TinyWan:
    return TinyWan(variant, MappingProxyType({**_TRANSFORMER_BASE, **changes}), storage, vae)


TINY_WAN_DIFFUSION_MODELS: Mapping[str, TinyWan] = MappingProxyType(
    {
        "wan2.1_t2v_1.3B_fp16": _tiny("t2v", "fp16", "wan_2.1_vae"),
        "wan2.1_i2v_480p_14B_fp16": _tiny("i2v", "fp16", "wan_2.1_vae", in_channels=36, **_IMAGE_CROSS_ATTENTION),
        "wan2.1_flf2v_720p_14B_fp16": _tiny(
            "flf2v",
            "fp16",
            "wan_2.1_vae",
            in_channels=36,
            pos_embed_seq_len=2 * TINY_CLIP_VISION_TOKENS,
            **_IMAGE_CROSS_ATTENTION,
        ),
        "wan2.2_ti2v_5B_fp16": _tiny("ti2v", "fp16", "wan2.2_vae", in_channels=48, out_channels=48),
        "wan2.1_vace_1.3B_fp16": _tiny("vace", "fp16", "wan_2.1_vae", vace_layers=[0, 1], vace_in_channels=96),
        "wan2.1_fun_control_1.3B_bf16": _tiny(
            "i2v", "bf16", "wan_2.1_vae", in_channels=48, **_IMAGE_CROSS_ATTENTION
        ),  # control video latent and start image latent concatenated to the input
        "wan2.1_fun_camera_v1.1_1.3B_bf16": _tiny(
            "camera",
            "bf16",
            "wan_2.1_vae",
            in_channels=32,
            control_in_channels=24,
            residual_blocks=1,
            **_IMAGE_CROSS_ATTENTION,
        ),  # the start image latent concatenated, camera rays added to the patch embeddings
        # ATI (trajectory control) is a fine-tuned 2.1 I2V 14B, shared as Kijai's plain fp8 file (no scales)
        "Wan2_1-I2V-ATI-14B_fp8_e4m3fn": _tiny(
            "i2v", "fp8_e4m3fn", "wan_2.1_vae", in_channels=36, **_IMAGE_CROSS_ATTENTION
        ),
        "wan2.2_t2v_high_noise_14B_fp8_scaled": _tiny("t2v", "fp8_scaled", "wan_2.1_vae"),
        "wan2.2_t2v_low_noise_14B_fp8_scaled": _tiny("t2v", "fp8_scaled", "wan_2.1_vae"),
        "wan2.2_i2v_high_noise_14B_fp8_scaled": _tiny("i2v", "fp8_scaled", "wan_2.1_vae", in_channels=36),
        "wan2.2_i2v_low_noise_14B_fp8_scaled": _tiny("i2v", "fp8_scaled", "wan_2.1_vae", in_channels=36),
    }
)
"""File stem -> tiny model, one per Comfy-Org release file (the 2.2 A14B experts pair with the 2.1 VAE)."""

TINY_WAN_VAES: Mapping[str, TinyWanVae] = MappingProxyType(
    {
        "wan_2.1_vae": TinyWanVae(
            "2.1",
            MappingProxyType(
                {
                    "base_dim": 8,
                    "decoder_base_dim": None,
                    "z_dim": 16,
                    "dim_mult": [1, 2, 4, 4],  # the released stages (diffusers' 2.1 conversion knows no other)
                    "num_res_blocks": 2,
                    "attn_scales": [],
                    "temperal_downsample": [False, True, True],
                    "dropout": 0.0,
                    "latents_mean": list(WAN21_LATENT.mean),
                    "latents_std": list(WAN21_LATENT.std),
                    "is_residual": False,
                    "in_channels": 3,
                    "out_channels": 3,
                    "patch_size": None,
                    "scale_factor_temporal": 4,
                    "scale_factor_spatial": 8,
                }
            ),
        ),
        "wan2.2_vae": TinyWanVae(
            "2.2",
            MappingProxyType(
                {
                    "base_dim": 8,
                    "decoder_base_dim": 16,  # wider than the encoder, as released (256 vs 160)
                    "z_dim": 48,
                    "dim_mult": [1, 2, 4, 4],
                    "num_res_blocks": 2,
                    "attn_scales": [],
                    "temperal_downsample": [False, True, True],
                    "dropout": 0.0,
                    "latents_mean": list(WAN22_LATENT.mean),
                    "latents_std": list(WAN22_LATENT.std),
                    "is_residual": True,
                    "in_channels": 12,
                    "out_channels": 12,
                    "patch_size": 2,
                    "scale_factor_temporal": 4,
                    "scale_factor_spatial": 16,
                }
            ),
        ),
    }
)
"""File stem -> tiny VAE (files in bfloat16)."""


def tiny_wan_transformer(stem: str, seed: int = 0, *, rounded: bool = True) -> WanTransformer3DModel:
    """The tiny diffusion model ``stem`` (a key of ``TINY_WAN_DIFFUSION_MODELS``) in float32, eval mode (a
    ``WanVACETransformer3DModel`` for VACE, with a hint after each of its two layers; a
    ``WanCameraTransformer3DModel`` for Fun camera control).

    Args:
        stem: which model.
        seed: another seed gives other weights; the same (stem, seed) always the same.
        rounded: hold the values the file holds (fp16, bf16, or scaled fp8 for the block linears of
            ``*_fp8_scaled``);
            False gives the float32 weights before that rounding.
    """
    from diffusers import WanTransformer3DModel, WanVACETransformer3DModel

    from models.families.wan.camera import WanCameraTransformer3DModel

    tiny = _lookup(TINY_WAN_DIFFUSION_MODELS, stem)
    classes = {"vace": WanVACETransformer3DModel, "camera": WanCameraTransformer3DModel}
    model_class = classes.get(tiny.variant, WanTransformer3DModel)
    model = _seeded(lambda: model_class(**tiny.config), stem, seed)
    if rounded:
        state = model.state_dict()
        fp8_layers = _fp8_layers(state) if tiny.storage.startswith("fp8") else []
        model.load_state_dict(
            _stored_values(state, STORAGE_DTYPES[tiny.storage], fp8_layers, scaled=tiny.storage == "fp8_scaled")
        )
    return model


def tiny_wan_vae(stem: str, seed: int = 0, *, rounded: bool = True) -> AutoencoderKLWan:
    """The tiny VAE ``stem`` (a key of ``TINY_WAN_VAES``) in float32, eval mode; ``rounded``: hold the file's
    bfloat16 values."""
    from diffusers import AutoencoderKLWan

    tiny = _lookup(TINY_WAN_VAES, stem)
    model = _seeded(lambda: AutoencoderKLWan(**tiny.config), stem, seed)
    if rounded:
        model.load_state_dict({key: tensor.to(VAE_DTYPE).float() for key, tensor in model.state_dict().items()})
    return model


def write_tiny_wan_files(models_dir: Path, seed: int = 0) -> list[Path]:
    """Write every tiny Wan file under ``models_dir`` as the releases lay them out; returns the paths.

    ``diffusion_models/<stem>.safetensors``: original key names prefixed ``model.diffusion_model.``; ``*_fp16`` in
    float16, ``*_bf16`` in bfloat16; ``*_fp8_scaled`` with the block linears in float8_e4m3fn, a ``scale_weight``
    each and the ``scaled_fp8`` marker, the rest in float16; ``*_fp8_e4m3fn`` with the block linears plainly cast to
    float8_e4m3fn, the rest in float16. ``vae/<stem>.safetensors``: original key names, bfloat16.
    """
    models_dir = Path(models_dir)
    paths: list[Path] = []
    for stem, tiny in TINY_WAN_DIFFUSION_MODELS.items():
        original = wan_transformer_to_original(tiny_wan_transformer(stem, seed, rounded=False).state_dict())
        stored = {key: tensor.to(STORAGE_DTYPES[tiny.storage]) for key, tensor in original.items()}
        metadata: dict[str, str] = {}
        if tiny.storage == "fp8_scaled":
            layers = _fp8_layers(original)
            stored.update({f"{layer}.weight": original[f"{layer}.weight"] for layer in layers})
            stored, metadata = quantize_scaled(stored, layers, "scale_weight")
        elif tiny.storage == "fp8_e4m3fn":
            stored.update({f"{layer}.weight": original[f"{layer}.weight"].to(FP8) for layer in _fp8_layers(original)})
        path = models_dir / DIFFUSION_MODELS_FOLDER / f"{stem}.safetensors"
        paths.append(_save({ORIGINAL_PREFIX + key: tensor for key, tensor in stored.items()}, path, metadata))
    for stem in TINY_WAN_VAES:
        original = wan_vae_to_original(tiny_wan_vae(stem, seed, rounded=False).state_dict())
        stored = {key: tensor.to(VAE_DTYPE) for key, tensor in original.items()}
        paths.append(_save(stored, models_dir / VAE_FOLDER / f"{stem}.safetensors", {}))
    return paths


def _lookup(table: Mapping[str, Any], stem: str) -> Any:
    if stem not in table:
        raise ValueError(f"no tiny Wan file {stem!r}; there are: {', '.join(table)}")
    return table[stem]


def _seeded(build: Callable[[], T], stem: str, seed: int) -> T:
    """``build()`` with weights drawn from the RNG seeded by (stem, seed), constant parameters nudged by ``NOISE``;
    the global RNG is left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(zlib.crc32(f"{stem}:{seed}".encode()))
        model = build()
        with torch.no_grad():
            for parameter in model.parameters():
                if parameter.numel() and bool((parameter == parameter.flatten()[0]).all()):
                    parameter.add_(torch.randn_like(parameter), alpha=NOISE)
    return model.eval()


def _fp8_layers(state_dict: Mapping[str, torch.Tensor]) -> list[str]:
    """The linear layers the fp8_scaled releases store in fp8: the 2-D weights inside the transformer blocks (the
    same names are chosen in diffusers' and Wan's naming)."""
    return [
        key.removesuffix(".weight")
        for key, tensor in state_dict.items()
        if key.startswith("blocks.") and key.endswith(".weight") and tensor.dim() == 2
    ]


def _stored_values(
    state_dict: Mapping[str, torch.Tensor], dtype: torch.dtype, fp8_layers: list[str], scaled: bool
) -> dict[str, torch.Tensor]:
    """``state_dict`` (float32) holding what a file keeps of it: ``dtype``, or fp8 (``scaled`` or plain) for
    ``fp8_layers``."""
    rounded = {key: tensor.to(dtype).float() for key, tensor in state_dict.items()}
    weights = {f"{layer}.weight": state_dict[f"{layer}.weight"] for layer in fp8_layers}
    if scaled and weights:
        quantized, _ = quantize_scaled(weights, fp8_layers, "scale_weight")
        rounded.update(dequantize_scaled(quantized, torch.float32))
    else:
        rounded.update({key: tensor.to(FP8).float() for key, tensor in weights.items()})
    return rounded


def _save(tensors: Mapping[str, torch.Tensor], path: Path, metadata: Mapping[str, str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({key: tensor.contiguous() for key, tensor in tensors.items()}, str(path), metadata=dict(metadata) or None)
    return path
