"""Tiny random-weight stand-ins for the released models, written under the releases' file names and layouts.

``python main.py make-tiny-models DIR`` writes them; tests use them; a first run with no models can use them so that
every shipped workflow runs offline. They keep the real architectures (Wan's head dim 128, the VAEs' compression),
so the same detection and loading code serves tiny and real files.
"""

from __future__ import annotations

from pathlib import Path

from models.tiny.animatediff import write_tiny_animatediff_files
from models.tiny.cogvideox import write_tiny_cogvideox_pipelines
from models.tiny.controlnet import write_tiny_controlnet_files
from models.tiny.depth import write_tiny_depth_models
from models.tiny.family_pipelines import write_tiny_family_pipelines
from models.tiny.hunyuan import write_tiny_hunyuan_files
from models.tiny.interpolation import write_tiny_interpolation_files
from models.tiny.ltx import write_tiny_ltx_files
from models.tiny.mochi import write_tiny_mochi_files
from models.tiny.pipelines import write_tiny_pipelines
from models.tiny.sd15_lora import write_tiny_sd15_loras
from models.tiny.skyreels import write_tiny_skyreels_files
from models.tiny.sparsectrl import write_tiny_sparsectrl_files
from models.tiny.svd import write_tiny_svd_files
from models.tiny.text import write_tiny_clip_vision, write_tiny_umt5_files
from models.tiny.text_families import write_tiny_text_family_files
from models.tiny.upscale import write_tiny_upscale_models
from models.tiny.wan import write_tiny_wan_files
from models.tiny.wan_lora import write_tiny_wan_loras

__all__ = ["write_tiny_models"]


def write_tiny_models(models_dir: Path, seed: int = 0) -> list[Path]:
    """Write every tiny stand-in below ``models_dir`` (its model folder layout); returns the paths written."""
    models_dir = Path(models_dir)
    written = write_tiny_wan_files(models_dir, seed)
    written += write_tiny_wan_loras(models_dir, seed)
    written += write_tiny_umt5_files(models_dir, seed)
    written.append(write_tiny_clip_vision(models_dir, seed))
    written += write_tiny_pipelines(models_dir, seed)
    written += write_tiny_ltx_files(models_dir, seed)
    written += write_tiny_hunyuan_files(models_dir, seed)
    written += write_tiny_mochi_files(models_dir, seed)
    written += write_tiny_text_family_files(models_dir, seed)
    written += write_tiny_family_pipelines(models_dir, seed)
    written += write_tiny_cogvideox_pipelines(models_dir, seed)
    written += write_tiny_skyreels_files(models_dir, seed)
    written += write_tiny_animatediff_files(models_dir, seed)
    written += write_tiny_sd15_loras(models_dir, seed)
    written += write_tiny_svd_files(models_dir, seed)
    written += write_tiny_interpolation_files(models_dir, seed)
    written += write_tiny_upscale_models(models_dir, seed)
    written += write_tiny_depth_models(models_dir, seed)
    written += write_tiny_controlnet_files(models_dir, seed)
    written += write_tiny_sparsectrl_files(models_dir, seed)
    return written
