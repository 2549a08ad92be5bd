"""Tiny random-weight CogVideoX diffusers pipeline folders, saved by diffusers' own pipelines as the public releases
are laid out (``model_index.json``, one folder per component, safetensors only), under ``diffusers/<repo name>/``:

- ``CogVideoX-2b``: a ``CogVideoXPipeline`` shaped as the 2B release (sin-cos positions, no rotary embeddings, one
  frame per patch, VAE scaling factor 1.15258426, scheduler ``snr_shift_scale`` 3.0);
- ``CogVideoX1.5-5B-I2V``: a ``CogVideoXImageToVideoPipeline`` shaped as the 1.5 image-to-video release (rotary
  embeddings, two frames per patch, the ``ofs`` embedding, 32 input channels, VAE scaling factor 0.7 with
  ``invert_scale_latents``, scheduler ``snr_shift_scale`` 1.0);
- ``CogVideoX-Fun-V1.1-2b-Control``: a ``CogVideoXFunControlPipeline`` shaped as alibaba-pai's 2B control release
  (the 2B configuration with 32 input channels: the noise and the control video's latents; VAE and scheduler as
  the 2B's).

The networks are the real architectures, narrow and shallow (2 heads of 16, 2 layers); the VAE keeps the real
compression (8x spatial, 4x temporal, 16 channels) with 16-channel stages. Its encoder's log-variance output is
biased far down, so the pipelines' sampled image latents equal the posterior's mode that ``VAEEncode`` takes (within
float32 noise). The text encoder is the tiny T5 of ``models.tiny.text_families`` with its offline tokenizer. Weights
are seeded and never touch the global RNG.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

import torch

from models.folders import DIFFUSERS_KEY
from models.tiny.text_families import TINY_T5_CONFIG, tiny_t5, write_tiny_t5_tokenizer

__all__ = [
    "TINY_COGVIDEOX_PIPELINES",
    "TINY_FUN_CONTROL_2B_TRANSFORMER",
    "TINY_I2V_15_TRANSFORMER",
    "TINY_T2V_2B_TRANSFORMER",
    "tiny_cogvideox_pipeline",
    "write_tiny_cogvideox_pipelines",
]

T = TypeVar("T", bound=torch.nn.Module)

_COMMON = {
    "num_attention_heads": 2,
    "attention_head_dim": 16,
    "out_channels": 16,
    "time_embed_dim": 32,
    "text_embed_dim": TINY_T5_CONFIG["d_model"],
    "num_layers": 2,
    "sample_width": 8,
    "sample_height": 8,
    "sample_frames": 9,
}
TINY_T2V_2B_TRANSFORMER = MappingProxyType({**_COMMON, "in_channels": 16})
TINY_FUN_CONTROL_2B_TRANSFORMER = MappingProxyType({**_COMMON, "in_channels": 32})
TINY_I2V_15_TRANSFORMER = MappingProxyType(
    {
        **_COMMON,
        "in_channels": 32,
        "ofs_embed_dim": 32,
        "patch_size_t": 2,
        "patch_bias": False,
        "use_rotary_positional_embeddings": True,
    }
)
_VAE = {
    "block_out_channels": (16, 16, 16, 16),
    "layers_per_block": 1,
    "norm_num_groups": 8,
    "latent_channels": 16,
    "sample_height": 64,
    "sample_width": 64,
}
_SCHEDULER = {  # THUDM's releases' scheduler_config.json, less snr_shift_scale
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "clip_sample": False,
    "prediction_type": "v_prediction",
    "rescale_betas_zero_snr": True,
    "set_alpha_to_one": True,
    "timestep_spacing": "trailing",
}
LOG_VARIANCE_BIAS = -40.0  # the encoder's log-variance, clamped by diffusers to -30: a posterior std of 3e-7


def _seeded(build: Callable[[], T], name: str, seed: int) -> T:
    """``build()`` with weights drawn from the RNG seeded by (name, seed); the global RNG is left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(zlib.crc32(f"cogvideox_{name}:{seed}".encode()))
        return build().eval()


def _vae(scaling_factor: float, invert_scale_latents: bool, seed: int) -> Any:
    from diffusers import AutoencoderKLCogVideoX

    vae = _seeded(
        lambda: AutoencoderKLCogVideoX(
            **_VAE, scaling_factor=scaling_factor, invert_scale_latents=invert_scale_latents
        ),
        "vae",
        seed,
    )
    with torch.no_grad():
        vae.encoder.conv_out.conv.bias[_VAE["latent_channels"] :] = LOG_VARIANCE_BIAS
    return vae


def _tokenizer(folder: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(write_tiny_t5_tokenizer(folder), local_files_only=True)


def _t2v_2b(folder: Path, seed: int) -> Any:
    from diffusers import CogVideoXDDIMScheduler, CogVideoXPipeline, CogVideoXTransformer3DModel

    return CogVideoXPipeline(
        tokenizer=_tokenizer(folder / "tokenizer"),
        text_encoder=tiny_t5(seed),
        vae=_vae(1.15258426, False, seed),
        transformer=_seeded(lambda: CogVideoXTransformer3DModel(**TINY_T2V_2B_TRANSFORMER), "2b", seed),
        scheduler=CogVideoXDDIMScheduler(**_SCHEDULER, snr_shift_scale=3.0),
    )


def _i2v_15(folder: Path, seed: int) -> Any:
    from diffusers import CogVideoXDDIMScheduler, CogVideoXImageToVideoPipeline, CogVideoXTransformer3DModel

    return CogVideoXImageToVideoPipeline(
        tokenizer=_tokenizer(folder / "tokenizer"),
        text_encoder=tiny_t5(seed),
        vae=_vae(0.7, True, seed),
        transformer=_seeded(lambda: CogVideoXTransformer3DModel(**TINY_I2V_15_TRANSFORMER), "1.5_i2v", seed),
        scheduler=CogVideoXDDIMScheduler(**_SCHEDULER, snr_shift_scale=1.0),
    )


def _fun_control_2b(folder: Path, seed: int) -> Any:
    from diffusers import CogVideoXDDIMScheduler, CogVideoXFunControlPipeline, CogVideoXTransformer3DModel

    return CogVideoXFunControlPipeline(
        tokenizer=_tokenizer(folder / "tokenizer"),
        text_encoder=tiny_t5(seed),
        vae=_vae(1.15258426, False, seed),
        transformer=_seeded(
            lambda: CogVideoXTransformer3DModel(**TINY_FUN_CONTROL_2B_TRANSFORMER), "fun_control_2b", seed
        ),
        scheduler=CogVideoXDDIMScheduler(**_SCHEDULER, snr_shift_scale=3.0),
    )


TINY_COGVIDEOX_PIPELINES: Mapping[str, Callable[[Path, int], Any]] = MappingProxyType(
    {"CogVideoX-2b": _t2v_2b, "CogVideoX1.5-5B-I2V": _i2v_15, "CogVideoX-Fun-V1.1-2b-Control": _fun_control_2b}
)
"""Folder name (the public repo's name) -> the builder of its tiny pipeline."""


def tiny_cogvideox_pipeline(name: str, folder: Path, seed: int = 0) -> Any:
    """The tiny pipeline ``name`` (a ``TINY_COGVIDEOX_PIPELINES`` key), its tokenizer written under ``folder``."""
    return TINY_COGVIDEOX_PIPELINES[name](Path(folder), seed)


def write_tiny_cogvideox_pipelines(models_dir: Path, seed: int = 0) -> list[Path]:
    """Write the tiny CogVideoX pipeline folders under ``models_dir/diffusers/``; returns the folders."""
    root = Path(models_dir) / DIFFUSERS_KEY
    written = []
    for name in TINY_COGVIDEOX_PIPELINES:
        folder = root / name
        tiny_cogvideox_pipeline(name, folder, seed).save_pretrained(folder, safe_serialization=True)
        written.append(folder)
    return written
