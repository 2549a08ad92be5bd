"""The models ``bench/sampling.py`` runs on both sides: single files for our loaders and ``save_pretrained`` folders
for diffusers' and transformers' own ``from_pretrained``, holding the same values.

- ``tiny``: ``write_tiny_models`` (Wan 2.1 t2v 1.3B stand-in: 2 layers of dim 256; the tiny 2.1 VAE; the tiny UMT5,
  d_model 64), the diffusers side from ``tiny_wan_transformer`` / ``tiny_wan_vae`` / ``tiny_umt5`` (the files' values).
- the other families (tiny only): the files ``write_tiny_models`` writes (LTX-Video 0.9.5 checkpoint, HunyuanVideo
  t2v transformer and VAE, Mochi transformer and VAE, T5-XXL / llava-llama3 / CLIP-L text encoders), the diffusers
  side from the tiny pipeline folders it writes beside them (``diffusers/<repo>``: the same networks' values, the
  text encoders rounded to the files' float16 by ``load_family_pipeline``).
- ``480p``: seeded random weights at real size: the Wan 2.1 T2V 1.3B transformer (dim 1536 = 12 heads x 128, ffn 8960,
  30 layers, text_dim 4096) in bfloat16, the real-size Wan 2.1 VAE (diffusers' default ``AutoencoderKLWan``) in
  bfloat16, in the released single-file key layouts; and a UMT5 as wide as UMT5-XXL (d_model 4096, what the
  transformer's text_dim takes) with one thin block and the tiny tokenizer, in float16. Text encoding is timed on
  neither side, so only its output width has to be real.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import torch
from safetensors.torch import save_file

from models.families.wan.checkpoint import ORIGINAL_PREFIX, wan_transformer_to_original
from models.families.wan.vae_checkpoint import wan_vae_to_original
from models.folders import DIFFUSERS_KEY
from models.text_encoders.umt5 import umt5_to_single_file
from models.tiny import write_tiny_models
from models.tiny.text import TINY_UMT5_CONFIG, TOKENIZER_NAME, tiny_umt5, write_tiny_tokenizer
from models.tiny.wan import tiny_wan_transformer, tiny_wan_vae

__all__ = [
    "WAN21_T2V_1_3B",
    "DiffusersComponents",
    "ModelSet",
    "describe_pipeline",
    "load_family_pipeline",
    "write_model_set",
]

WAN21_T2V_1_3B: Mapping[str, Any] = MappingProxyType(
    {
        "patch_size": (1, 2, 2),
        "num_attention_heads": 12,
        "attention_head_dim": 128,
        "in_channels": 16,
        "out_channels": 16,
        "text_dim": 4096,
        "freq_dim": 256,
        "ffn_dim": 8960,
        "num_layers": 30,
        "cross_attn_norm": True,
        "qk_norm": "rms_norm_across_heads",
        "eps": 1e-6,
        "rope_max_seq_len": 1024,
    }
)
"""Wan-AI/Wan2.1-T2V-1.3B-Diffusers' transformer config."""
WIDE_UMT5_CHANGES: Mapping[str, Any] = MappingProxyType({"d_model": 4096, "num_layers": 1})
TINY_STEMS: Mapping[str, str] = MappingProxyType(
    {"unet": "wan2.1_t2v_1.3B_fp16", "text_encoder": "umt5_xxl_fp16", "vae": "wan_2.1_vae"}
)
REAL_SIZE_FILES: Mapping[str, str] = MappingProxyType(
    {
        "unet": "wan2.1_t2v_1.3B_random_bf16.safetensors",
        "text_encoder": "umt5_d4096_1block_random_fp16.safetensors",
        "vae": "wan_2.1_vae_random_bf16.safetensors",
    }
)


@dataclass(frozen=True)
class DiffusersComponents:
    """The pipeline's parts as diffusers and transformers load them."""

    transformer: torch.nn.Module
    vae: torch.nn.Module
    text_encoder: torch.nn.Module
    tokenizer: Any


@dataclass(frozen=True)
class ModelSet:
    """Where both sides' models are: file names in ``models_dir``'s folders, and the ``save_pretrained`` folders."""

    size: str
    models_dir: Path
    unet: str
    text_encoder: str
    vae: str
    pretrained_dir: Path
    tokenizer_dir: Path
    info: Mapping[str, Any]
    ltxv_checkpoint: str = "ltx-video-2b-v0.9.5.safetensors"
    t5: str = "t5xxl_fp16.safetensors"
    hunyuan_unet: str = "hunyuan_video_t2v_720p_bf16.safetensors"
    hunyuan_vae: str = "hunyuan_video_vae_bf16.safetensors"
    clip_l: str = "clip_l.safetensors"
    llava_llama3: str = "llava_llama3_fp16.safetensors"
    mochi_unet: str = "mochi_preview_bf16.safetensors"
    mochi_vae: str = "mochi_vae.safetensors"

    def folder(self, repo: str) -> Path:
        """The tiny diffusers pipeline folder named as the public repository ``repo`` (``tiny`` sets only)."""
        folder = self.models_dir / DIFFUSERS_KEY / repo
        if not (folder / "model_index.json").is_file():
            raise FileNotFoundError(f"no diffusers pipeline folder {folder} (the {self.size} model set has none)")
        return folder

    def diffusers_components(self, dtype: torch.dtype) -> DiffusersComponents:
        """Transformer, VAE and text encoder loaded by ``from_pretrained`` in ``dtype`` (diffusers keeps its
        ``_keep_in_fp32_modules`` in float32, as our loader does), and the tokenizer; on the CPU."""
        from diffusers import AutoencoderKLWan, WanTransformer3DModel
        from transformers import AutoTokenizer, UMT5EncoderModel

        folder = self.pretrained_dir
        return DiffusersComponents(
            transformer=WanTransformer3DModel.from_pretrained(folder / "transformer", torch_dtype=dtype).eval(),
            vae=AutoencoderKLWan.from_pretrained(folder / "vae", torch_dtype=dtype).eval(),
            text_encoder=UMT5EncoderModel.from_pretrained(folder / "text_encoder", dtype=dtype).eval(),
            tokenizer=AutoTokenizer.from_pretrained(self.tokenizer_dir, local_files_only=True),
        )

    def describe(self) -> dict[str, Any]:
        """The Wan files and what they hold, for the results."""
        return {"unet": self.unet, "text_encoder_file": self.text_encoder, "vae_file": self.vae, **self.info}


def load_family_pipeline(
    pipeline_class: type, folder: Path, dtype: torch.dtype, device: torch.device, text_encoders: tuple[str, ...]
) -> Any:
    """``pipeline_class.from_pretrained(folder)`` in ``dtype`` on ``device``, progress bar off; the ``text_encoders``
    components rounded through float16, the dtype the single files hold them in (our side loads those values)."""
    pipeline = pipeline_class.from_pretrained(folder, dtype=dtype, local_files_only=True)
    with torch.no_grad():
        for name in text_encoders:
            getattr(pipeline, name).to(torch.float16).to(dtype).eval()
    pipeline.set_progress_bar_config(disable=True)
    return pipeline.to(device)


def describe_pipeline(pipeline: Any, what: str) -> dict[str, Any]:
    """The parameters of a pipeline's diffusion network (``transformer`` or ``unet``), VAE and text or image
    encoders, for the results."""
    parts = ("transformer", "unet", "vae", "text_encoder", "text_encoder_2", "image_encoder")
    described: dict[str, Any] = {"what": what}
    for name in parts:
        module = getattr(pipeline, name, None)
        if isinstance(module, torch.nn.Module):
            described[name] = {"class": type(module).__name__, "parameters": _parameters(module)}
    name = "transformer" if "transformer" in described else "unet"
    network = getattr(pipeline, name)
    config = dict(network.config)
    described[name]["config"] = {key: value for key, value in config.items() if not key.startswith("_")}
    described[name]["description"] = f"{type(network).__name__}, {_parameters(network) / 1e6:,.2f}M parameters"
    return described


def write_model_set(size: str, models_dir: Path, seed: int) -> ModelSet:
    """Write the ``size`` models (``tiny`` or ``480p``) under ``models_dir`` and the diffusers folders beside it."""
    pretrained = models_dir.parent / "pretrained"
    if size == "tiny":
        return _tiny(models_dir, pretrained, seed)
    if size == "480p":
        return _real_size(models_dir, pretrained, seed)
    raise ValueError(f"size {size!r} is not tiny or 480p")


def _tiny(models_dir: Path, pretrained: Path, seed: int) -> ModelSet:
    write_tiny_models(models_dir, seed)
    transformer = tiny_wan_transformer(TINY_STEMS["unet"], seed)
    vae = tiny_wan_vae(TINY_STEMS["vae"], seed)
    text_encoder = tiny_umt5(seed).half()  # the file holds float16
    for name, module in (("transformer", transformer), ("vae", vae), ("text_encoder", text_encoder)):
        module.save_pretrained(pretrained / name)
    info = _info(transformer, vae, text_encoder, "tiny random (models/tiny)", "float16", "bfloat16")
    return ModelSet(
        "tiny",
        models_dir,
        f"{TINY_STEMS['unet']}.safetensors",
        f"{TINY_STEMS['text_encoder']}.safetensors",
        f"{TINY_STEMS['vae']}.safetensors",
        pretrained,
        models_dir / "tokenizers" / TOKENIZER_NAME,
        info,
    )


def _real_size(models_dir: Path, pretrained: Path, seed: int) -> ModelSet:
    from diffusers import AutoencoderKLWan, WanTransformer3DModel
    from transformers import UMT5Config, UMT5EncoderModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        transformer = WanTransformer3DModel(**WAN21_T2V_1_3B).to(torch.bfloat16).eval()
        vae = AutoencoderKLWan().to(torch.bfloat16).eval()
        text_encoder = UMT5EncoderModel(UMT5Config(**{**TINY_UMT5_CONFIG, **WIDE_UMT5_CHANGES})).half().eval()
    original = wan_transformer_to_original(transformer.state_dict())
    _save({ORIGINAL_PREFIX + key: tensor for key, tensor in original.items()}, models_dir, "diffusion_models", "unet")
    _save(wan_vae_to_original(vae.state_dict()), models_dir, "vae", "vae")
    _save(umt5_to_single_file(text_encoder), models_dir, "text_encoders", "text_encoder")
    tokenizer_dir = write_tiny_tokenizer(models_dir / "tokenizers" / TOKENIZER_NAME)
    for name, module in (("transformer", transformer), ("vae", vae), ("text_encoder", text_encoder)):
        module.save_pretrained(pretrained / name)
    info = _info(
        transformer, vae, text_encoder, "real-size random Wan 2.1 T2V 1.3B and 2.1 VAE", "bfloat16", "bfloat16"
    )
    return ModelSet(
        "480p",
        models_dir,
        REAL_SIZE_FILES["unet"],
        REAL_SIZE_FILES["text_encoder"],
        REAL_SIZE_FILES["vae"],
        pretrained,
        tokenizer_dir,
        info,
    )


def _save(tensors: Mapping[str, torch.Tensor], models_dir: Path, folder: str, role: str) -> Path:
    path = models_dir / folder / REAL_SIZE_FILES[role]
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({key: tensor.contiguous() for key, tensor in tensors.items()}, str(path))
    return path


def _parameters(module: torch.nn.Module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())


def _info(
    transformer: torch.nn.Module,
    vae: torch.nn.Module,
    text_encoder: torch.nn.Module,
    what: str,
    transformer_file_dtype: str,
    vae_file_dtype: str,
) -> dict[str, Any]:
    config = dict(transformer.config)
    layers, dim = config["num_layers"], config["num_attention_heads"] * config["attention_head_dim"]
    return {
        "what": what,
        "transformer": {
            "description": f"{layers} layers, dim {dim}, {_parameters(transformer) / 1e6:,.1f}M parameters",
            "parameters": _parameters(transformer),
            "file_dtype": transformer_file_dtype,
            "config": {key: value for key, value in config.items() if not key.startswith("_")},
        },
        "vae": {
            "parameters": _parameters(vae),
            "file_dtype": vae_file_dtype,
            "base_dim": vae.config["base_dim"],
            "z_dim": vae.config["z_dim"],
        },
        "text_encoder": {
            "parameters": _parameters(text_encoder),
            "file_dtype": "float16",
            "d_model": text_encoder.config.d_model,
            "num_layers": text_encoder.config.num_layers,
        },
    }
