"""Tiny Wan diffusers pipeline folders, saved by diffusers' own pipelines as the Wan-AI ``*-Diffusers`` releases
are laid out (``model_index.json``, one folder per component, safetensors only), under ``diffusers/<repo name>/``.

They hold the same values as the tiny single files (``tiny_wan_transformer``, ``tiny_wan_vae``, ``tiny_umt5``,
``tiny_clip_vision`` with the files' rounding), so a folder loads to the same models as its files: fp16 models in
float16, the fp8-scaled A14B experts in float32 (their dequantised fp8 values are not all float16 numbers), VAEs in
bfloat16. Image encoders are ``CLIPVisionModel`` as in the releases (the file's projection is left out; Wan uses
the penultimate hidden states).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

import torch

from models.folders import DIFFUSERS_KEY
from models.tiny.text import tiny_clip_vision, tiny_umt5, write_tiny_tokenizer
from models.tiny.wan import TINY_WAN_DIFFUSION_MODELS, tiny_wan_transformer, tiny_wan_vae

if TYPE_CHECKING:
    from diffusers import WanTransformer3DModel
    from transformers import CLIPVisionModel, UMT5EncoderModel

__all__ = ["TINY_WAN_PIPELINES", "TinyWanPipeline", "write_tiny_pipelines"]

VISION_PREFIX = "vision_model."  # CLIPVisionModelWithProjection's tower keys; CLIPVisionModel's have no prefix


@dataclass(frozen=True)
class TinyWanPipeline:
    """One tiny pipeline: its class, the tiny files' stems it holds, and the release's pipeline settings."""

    pipeline: Literal["WanPipeline", "WanImageToVideoPipeline", "WanVACEPipeline"]
    transformer: str
    vae: str
    transformer_2: str | None = None
    image_encoder: bool = False
    boundary_ratio: float | None = None
    expand_timesteps: bool = False
    flow_shift: float = 3.0


TINY_WAN_PIPELINES: Mapping[str, TinyWanPipeline] = MappingProxyType(
    {
        "Wan2.1-T2V-1.3B-Diffusers": TinyWanPipeline("WanPipeline", "wan2.1_t2v_1.3B_fp16", "wan_2.1_vae"),
        "Wan2.1-I2V-14B-480P-Diffusers": TinyWanPipeline(
            "WanImageToVideoPipeline", "wan2.1_i2v_480p_14B_fp16", "wan_2.1_vae", image_encoder=True
        ),
        "Wan2.2-TI2V-5B-Diffusers": TinyWanPipeline(
            "WanPipeline", "wan2.2_ti2v_5B_fp16", "wan2.2_vae", expand_timesteps=True, flow_shift=5.0
        ),
        "Wan2.1-VACE-1.3B-diffusers": TinyWanPipeline("WanVACEPipeline", "wan2.1_vace_1.3B_fp16", "wan_2.1_vae"),
        "Wan2.2-I2V-A14B-Diffusers": TinyWanPipeline(
            "WanImageToVideoPipeline",
            "wan2.2_i2v_high_noise_14B_fp8_scaled",
            "wan_2.1_vae",
            transformer_2="wan2.2_i2v_low_noise_14B_fp8_scaled",
            boundary_ratio=0.9,
            flow_shift=5.0,
        ),
    }
)
"""Folder name (the Hugging Face repo's) -> tiny pipeline; transformer of the A14B is the high-noise expert,
transformer_2 the low-noise one."""


def write_tiny_pipelines(models_dir: Path, seed: int = 0) -> list[Path]:
    """Write every tiny pipeline folder under ``models_dir/diffusers/``; returns the folders."""
    root = Path(models_dir) / DIFFUSERS_KEY
    text_encoder = tiny_umt5(seed).half()  # the values of umt5_xxl_fp16.safetensors
    return [_write(root / name, tiny, text_encoder, seed) for name, tiny in TINY_WAN_PIPELINES.items()]


def _write(folder: Path, tiny: TinyWanPipeline, text_encoder: UMT5EncoderModel, seed: int) -> Path:
    """Save ``tiny`` into ``folder`` with its pipeline class's ``save_pretrained`` (safetensors)."""
    import diffusers
    from transformers import AutoTokenizer, CLIPImageProcessorPil

    components: dict[str, Any] = {
        "tokenizer": AutoTokenizer.from_pretrained(write_tiny_tokenizer(folder / "tokenizer"), local_files_only=True),
        "text_encoder": text_encoder,
        "vae": tiny_wan_vae(tiny.vae, seed).bfloat16(),  # as the files (diffusers' own .to() warns needlessly)
        "scheduler": diffusers.UniPCMultistepScheduler(
            prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=tiny.flow_shift
        ),
        "transformer": _transformer(tiny.transformer, seed),
        "transformer_2": _transformer(tiny.transformer_2, seed) if tiny.transformer_2 else None,
        "boundary_ratio": tiny.boundary_ratio,
    }
    if tiny.expand_timesteps:  # a WanPipeline / WanImageToVideoPipeline option (off by default); VACE has none
        components["expand_timesteps"] = True
    if tiny.image_encoder:
        components["image_encoder"] = _image_encoder(seed)
        components["image_processor"] = CLIPImageProcessorPil()  # OpenAI CLIP's 224 px preprocessing, as released
    getattr(diffusers, tiny.pipeline)(**components).save_pretrained(folder, safe_serialization=True)
    return folder


def _transformer(stem: str, seed: int) -> WanTransformer3DModel:
    """The tiny model ``stem`` holding its file's values: float16 for fp16 files, float32 for fp8-scaled ones."""
    model = tiny_wan_transformer(stem, seed)
    return model.half() if TINY_WAN_DIFFUSION_MODELS[stem].storage == "fp16" else model


def _image_encoder(seed: int) -> CLIPVisionModel:
    """The tiny CLIP vision tower (``clip_vision_h.safetensors``'s float16 values) without its projection."""
    from transformers import CLIPVisionModel

    with_projection = tiny_clip_vision(seed)
    model = CLIPVisionModel(with_projection.config)
    state = with_projection.state_dict()
    model.load_state_dict(
        {key.removeprefix(VISION_PREFIX): state[key] for key in state if key.startswith(VISION_PREFIX)}
    )
    return model.to(torch.float16).eval()
