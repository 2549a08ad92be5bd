"""Tiny LTX-Video, HunyuanVideo and Mochi diffusers pipeline folders, saved by diffusers' own pipelines as the public
diffusers releases are laid out (``model_index.json``, one folder per component, safetensors only), under
``diffusers/<repo name>/``. They hold the tiny networks of the single files (``models.tiny.ltx``, ``hunyuan``,
``mochi``, ``text_families``) with the releases' scheduler settings."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType
from typing import Any

from models.folders import DIFFUSERS_KEY
from models.tiny.hunyuan import tiny_hunyuan_transformer, tiny_hunyuan_vae
from models.tiny.ltx import tiny_ltx_transformer, tiny_ltx_vae
from models.tiny.mochi import tiny_mochi_transformer, tiny_mochi_vae
from models.tiny.text_families import (
    tiny_clip_l,
    tiny_llama,
    tiny_t5,
    write_tiny_clip_tokenizer,
    write_tiny_llama_tokenizer,
    write_tiny_t5_tokenizer,
)

__all__ = ["TINY_FAMILY_PIPELINES", "write_tiny_family_pipelines"]


def _tokenizer(write: Callable[[Path], Path], folder: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(write(folder), local_files_only=True)


def _ltx(folder: Path, seed: int) -> Any:
    from diffusers import FlowMatchEulerDiscreteScheduler, LTXPipeline

    scheduler = FlowMatchEulerDiscreteScheduler(  # Lightricks/LTX-Video's scheduler config
        use_dynamic_shifting=True,
        base_shift=0.95,
        max_shift=2.05,
        base_image_seq_len=1024,
        max_image_seq_len=4096,
        shift_terminal=0.1,
    )
    return LTXPipeline(
        scheduler=scheduler,
        vae=tiny_ltx_vae(seed),
        text_encoder=tiny_t5(seed),
        tokenizer=_tokenizer(write_tiny_t5_tokenizer, folder / "tokenizer"),
        transformer=tiny_ltx_transformer(seed),
    )


def _hunyuan(folder: Path, seed: int) -> Any:
    from diffusers import FlowMatchEulerDiscreteScheduler, HunyuanVideoPipeline

    return HunyuanVideoPipeline(
        text_encoder=tiny_llama(seed),
        tokenizer=_tokenizer(write_tiny_llama_tokenizer, folder / "tokenizer"),
        transformer=tiny_hunyuan_transformer("t2v", seed),
        vae=tiny_hunyuan_vae(seed),
        scheduler=FlowMatchEulerDiscreteScheduler(shift=7.0),
        text_encoder_2=tiny_clip_l(seed),
        tokenizer_2=_tokenizer(write_tiny_clip_tokenizer, folder / "tokenizer_2"),
    )


def _mochi(folder: Path, seed: int) -> Any:
    from diffusers import FlowMatchEulerDiscreteScheduler, MochiPipeline

    return MochiPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(invert_sigmas=True),
        vae=tiny_mochi_vae(seed),
        text_encoder=tiny_t5(seed),
        tokenizer=_tokenizer(write_tiny_t5_tokenizer, folder / "tokenizer"),
        transformer=tiny_mochi_transformer(seed),
    )


TINY_FAMILY_PIPELINES = MappingProxyType({"LTX-Video": _ltx, "HunyuanVideo": _hunyuan, "mochi-1-preview": _mochi})
"""Folder name (the public repo's name) -> the builder of its tiny pipeline."""


def write_tiny_family_pipelines(models_dir: Path, seed: int = 0) -> list[Path]:
    """Write every tiny pipeline folder of these families under ``models_dir/diffusers/``; returns the folders."""
    root = Path(models_dir) / DIFFUSERS_KEY
    written = []
    for name, build in TINY_FAMILY_PIPELINES.items():
        folder = root / name
        build(folder, seed).save_pretrained(folder, safe_serialization=True)
        written.append(folder)
    return written
