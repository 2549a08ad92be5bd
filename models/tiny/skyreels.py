"""Tiny random-weight SkyReels-V2 stand-ins: the diffusion-forcing 1.3B single file in Kijai's repackaged layout
(``diffusion_models/Wan2_1-SkyReels-V2-DF-1_3B-540P_fp32.safetensors``: Wan's original key names without prefix plus
the fps embedding, float32) and ``*-Diffusers`` pipeline folders (diffusion forcing, text-to-video and
image-to-video), saved by diffusers' own pipelines with the tiny Wan 2.1 VAE and UMT5 the Wan stand-ins hold (and,
for image-to-video, the tiny CLIP vision tower of ``clip_vision_h.safetensors`` as its ``image_encoder``).

Transformers keep Wan's head dim 128 (dim 256 = 2 heads, 2 layers); the text width 64 is the tiny UMT5's, the image
width the tiny CLIP vision's. Weights are seeded per name and seed and never touch the global RNG.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import save_file

from models.families.skyreels.checkpoint import skyreels_transformer_to_original
from models.folders import DIFFUSERS_KEY
from models.tiny.text import TINY_CLIP_VISION_CONFIG, tiny_clip_vision, tiny_umt5, write_tiny_tokenizer
from models.tiny.wan import DIFFUSION_MODELS_FOLDER, tiny_wan_vae

if TYPE_CHECKING:
    from diffusers import SkyReelsV2Transformer3DModel

__all__ = [
    "DF_FILE",
    "TINY_SKYREELS_PIPELINES",
    "TINY_SKYREELS_TRANSFORMERS",
    "TinySkyReelsPipeline",
    "tiny_skyreels_transformer",
    "write_tiny_skyreels_files",
]

DF_FILE = "Wan2_1-SkyReels-V2-DF-1_3B-540P_fp32.safetensors"
NOISE = 0.05
"""Added to parameters initialised to a constant, so that no two same-shaped tensors are equal."""
_BASE: Mapping[str, Any] = MappingProxyType(
    {
        "patch_size": (1, 2, 2),
        "num_attention_heads": 2,
        "attention_head_dim": 128,
        "in_channels": 16,
        "out_channels": 16,
        "text_dim": 64,
        "freq_dim": 256,
        "ffn_dim": 512,
        "num_layers": 2,
    }
)
TINY_SKYREELS_TRANSFORMERS: Mapping[str, Mapping[str, Any]] = MappingProxyType(
    {
        "df_1.3b": MappingProxyType({**_BASE, "inject_sample_info": True}),
        "t2v_14b": MappingProxyType({**_BASE, "inject_sample_info": False}),
        "i2v_14b": MappingProxyType(
            {
                **_BASE,
                "in_channels": 36,  # the noisy latent, the 4 keep-mask channels and the image latent
                "image_dim": TINY_CLIP_VISION_CONFIG["hidden_size"],
                "added_kv_proj_dim": _BASE["num_attention_heads"] * _BASE["attention_head_dim"],
                "inject_sample_info": False,
            }
        ),
    }
)
"""Tiny transformer name -> ``SkyReelsV2Transformer3DModel`` kwargs (the DF 1.3B release has the fps embedding; the
I2V release Wan 2.1 I2V's image cross-attention)."""


@dataclass(frozen=True)
class TinySkyReelsPipeline:
    """One tiny pipeline folder: its class, tiny transformer, the scheduler's flow shift, and whether it holds the
    CLIP vision ``image_encoder`` (and its ``image_processor``)."""

    pipeline: str
    transformer: str
    flow_shift: float
    image_encoder: bool = False


TINY_SKYREELS_PIPELINES: Mapping[str, TinySkyReelsPipeline] = MappingProxyType(
    {
        "SkyReels-V2-DF-1.3B-540P-Diffusers": TinySkyReelsPipeline(
            "SkyReelsV2DiffusionForcingPipeline", "df_1.3b", 8.0
        ),
        "SkyReels-V2-T2V-14B-540P-Diffusers": TinySkyReelsPipeline("SkyReelsV2Pipeline", "t2v_14b", 8.0),
        "SkyReels-V2-I2V-14B-540P-Diffusers": TinySkyReelsPipeline(
            "SkyReelsV2ImageToVideoPipeline", "i2v_14b", 5.0, image_encoder=True
        ),
    }
)
"""Folder name (the Hugging Face repo's) -> tiny pipeline."""


def tiny_skyreels_transformer(name: str, seed: int = 0) -> SkyReelsV2Transformer3DModel:
    """The tiny transformer ``name`` (a key of ``TINY_SKYREELS_TRANSFORMERS``) in float32, eval mode."""
    from diffusers import SkyReelsV2Transformer3DModel

    if name not in TINY_SKYREELS_TRANSFORMERS:
        raise ValueError(
            f"no tiny SkyReels-V2 transformer {name!r}; there are: {', '.join(TINY_SKYREELS_TRANSFORMERS)}"
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(zlib.crc32(f"skyreels:{name}:{seed}".encode()))
        model = SkyReelsV2Transformer3DModel(**TINY_SKYREELS_TRANSFORMERS[name])
        with torch.no_grad():
            for parameter in model.parameters():
                if parameter.numel() and bool((parameter == parameter.flatten()[0]).all()):
                    parameter.add_(torch.randn_like(parameter), alpha=NOISE)
    return model.eval()


def write_tiny_skyreels_files(models_dir: Path, seed: int = 0) -> list[Path]:
    """Write the tiny SkyReels-V2 single file and pipeline folders under ``models_dir``; returns their paths."""
    import diffusers
    from transformers import AutoTokenizer, CLIPImageProcessorPil

    models_dir = Path(models_dir)
    path = models_dir / DIFFUSION_MODELS_FOLDER / DF_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    state = skyreels_transformer_to_original(tiny_skyreels_transformer("df_1.3b", seed).state_dict())
    save_file({key: tensor.contiguous() for key, tensor in state.items()}, str(path))
    written = [path]
    text_encoder = tiny_umt5(seed).half()  # the values of umt5_xxl_fp16.safetensors
    for folder_name, tiny in TINY_SKYREELS_PIPELINES.items():
        folder = models_dir / DIFFUSERS_KEY / folder_name
        tokenizer = AutoTokenizer.from_pretrained(write_tiny_tokenizer(folder / "tokenizer"), local_files_only=True)
        components: dict[str, Any] = {
            "tokenizer": tokenizer,
            "text_encoder": text_encoder,
            "vae": tiny_wan_vae("wan_2.1_vae", seed).bfloat16(),  # the values of wan_2.1_vae.safetensors
            "scheduler": diffusers.UniPCMultistepScheduler(
                prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=tiny.flow_shift
            ),
            "transformer": tiny_skyreels_transformer(tiny.transformer, seed),
        }
        if tiny.image_encoder:
            components["image_encoder"] = tiny_clip_vision(seed).half()  # the values of clip_vision_h.safetensors
            components["image_processor"] = CLIPImageProcessorPil()  # OpenAI CLIP's 224 px preprocessing
        getattr(diffusers, tiny.pipeline)(**components).save_pretrained(folder, safe_serialization=True)
        written.append(folder)
    return written
