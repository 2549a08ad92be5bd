"""Model files into the memory manager, as the objects the ``MODEL``, ``CLIP``, ``VAE`` and ``CLIP_VISION`` sockets
carry. A file's kind and configuration are read from its tensor shapes first (no weights loaded), so a file given
to the wrong loader fails at once with what it looks like; the weights load into the manager, which shares them
between nodes and prompts (one entry per file, size, modification time and load options).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

import torch

from models.checkpoint_files import CheckpointShapes, read_shapes
from models.clip_vision import clip_vision_from_state_dict, is_clip_vision
from models.diffusion_model import DiffusionModel
from models.encoders import ClipVisionEncoder, TextEncoder
from models.errors import CorruptModelFileError, ModelLoadError, StateDictError
from models.families.wan.adapter import WanAdapter
from models.families.wan.checkpoint import detect_wan_transformer, is_wan_transformer, wan_transformer_from_state_dict
from models.families.wan.latents import latent_format_for_channels
from models.families.wan.vae_checkpoint import detect_wan_vae, is_wan_vae, wan_vae_from_state_dict
from models.folders import ModelFolders
from models.loading import load_state_dict
from models.memory import ModelManager
from models.model_handle import ModelHandle
from models.offload import POLICIES
from models.text_encoders.tokenizers import load_tokenizer
from models.text_encoders.umt5 import is_umt5, umt5_from_state_dict
from models.video_vae import VideoVAE

__all__ = [
    "OFFLOAD_CHOICES",
    "WEIGHT_DTYPES",
    "WrongModelKindError",
    "compute_dtype_for",
    "load_clip_vision",
    "load_diffusion_model",
    "load_text_encoder",
    "load_vae",
]

WEIGHT_DTYPES: Mapping[str, torch.dtype | None] = {
    "default": None,
    "fp8_e4m3fn": torch.float8_e4m3fn,
    "fp8_e4m3fn_fast": torch.float8_e4m3fn,
    "fp8_e5m2": torch.float8_e5m2,
}
"""``UNETLoader``'s ``weight_dtype``: ``default`` keeps the compute dtype; fp8 stores weights in fp8 and computes in the
compute dtype (diffusers' layerwise casting; norms and embeddings stay in the compute dtype)."""

T = TypeVar("T")

OFFLOAD_CHOICES = ("auto", *POLICIES)
TOKENIZER_FOR_KIND = {"wan": "umt5-xxl"}

_KINDS: tuple[tuple[str, Callable[[Mapping[str, torch.Tensor]], bool], str], ...] = (
    ("a Wan diffusion model", is_wan_transformer, "UNETLoader (diffusion_models folder)"),
    ("a Wan VAE", is_wan_vae, "VAELoader (vae folder)"),
    ("a UMT5 text encoder", is_umt5, "CLIPLoader with type wan (text_encoders folder)"),
    ("a CLIP vision encoder", is_clip_vision, "CLIPVisionLoader (clip_vision folder)"),
)


class WrongModelKindError(ModelLoadError):
    """The file is a model of another kind than the loader takes, or of no kind Reelgraph knows."""


def compute_dtype_for(device: torch.device) -> torch.dtype:
    """The dtype networks compute in on ``device``: bfloat16 on CUDA (float16 where bf16 is unsupported), float32
    on a CPU."""
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def load_diffusion_model(
    manager: ModelManager, path: Path, weight_dtype: str = "default", offload: str = "auto"
) -> DiffusionModel:
    """A diffusion model file (``diffusion_models``) as ``MODEL``."""
    if weight_dtype not in WEIGHT_DTYPES:
        raise ValueError(f"weight_dtype {weight_dtype!r} is not one of {', '.join(WEIGHT_DTYPES)}")
    if offload not in OFFLOAD_CHOICES:
        raise ValueError(f"offload {offload!r} is not one of {', '.join(OFFLOAD_CHOICES)}")
    shapes = _shapes_of(path, "a Wan diffusion model", is_wan_transformer)
    spec = _read_layout(path, lambda: detect_wan_transformer(shapes.tensors))
    compute = compute_dtype_for(manager.compute_device)
    storage = WEIGHT_DTYPES[weight_dtype]

    def build(state: dict[str, torch.Tensor]) -> torch.nn.Module:
        module = wan_transformer_from_state_dict(state, compute, shapes.metadata)
        if storage is not None:
            module.enable_layerwise_casting(storage_dtype=storage, compute_dtype=compute)
        return module

    handle = _managed(manager, "diffusion_model", shapes, compute, build, weight_dtype)
    adapter = WanAdapter(spec)
    return DiffusionModel(path.name, handle, adapter, adapter.default_sampling(), compute, offload)


def load_text_encoder(manager: ModelManager, folders: ModelFolders, path: Path, kind: str) -> TextEncoder:
    """A text encoder file (``text_encoders``) of ``CLIPLoader`` type ``kind`` as ``CLIP``, with its tokenizer."""
    if kind not in TOKENIZER_FOR_KIND:
        raise ValueError(f"text encoder type {kind!r} is not supported; supported: {', '.join(TOKENIZER_FOR_KIND)}")
    shapes = _shapes_of(path, "a UMT5 text encoder", is_umt5)
    tokenizer = load_tokenizer(folders, TOKENIZER_FOR_KIND[kind])
    compute = compute_dtype_for(manager.compute_device)
    handle = _managed(
        manager, "text_encoder", shapes, compute, lambda state: umt5_from_state_dict(state, compute, shapes.metadata)
    )
    return TextEncoder(path.name, kind, handle, tokenizer, compute)


def load_vae(manager: ModelManager, path: Path) -> VideoVAE:
    """A VAE file (``vae``) as ``VAE``."""
    shapes = _shapes_of(path, "a Wan VAE", is_wan_vae)
    spec = _read_layout(path, lambda: detect_wan_vae(shapes.tensors))
    compute = compute_dtype_for(manager.compute_device)
    handle = _managed(manager, "vae", shapes, compute, lambda state: wan_vae_from_state_dict(state, compute))
    latent_format = latent_format_for_channels(int(spec.config["z_dim"]))
    return VideoVAE(path.name, handle, latent_format, compute)


def load_clip_vision(manager: ModelManager, path: Path) -> ClipVisionEncoder:
    """A CLIP vision file (``clip_vision``) as ``CLIP_VISION``."""
    shapes = _shapes_of(path, "a CLIP vision encoder", is_clip_vision)
    compute = compute_dtype_for(manager.compute_device)
    handle = _managed(
        manager, "clip_vision", shapes, compute, lambda state: clip_vision_from_state_dict(state, compute)
    )
    return ClipVisionEncoder(path.name, handle, compute)


def _managed(
    manager: ModelManager,
    kind: str,
    shapes: CheckpointShapes,
    compute: torch.dtype,
    build: Callable[[dict[str, torch.Tensor]], torch.nn.Module],
    *options: str,
) -> ModelHandle:
    """The manager's handle for the file of ``shapes``: its loader reads the weights, ``build``s the module (a
    ``StateDictError`` becomes a ``CorruptModelFileError`` naming the file) and freezes it for inference."""
    path = shapes.path

    def load() -> torch.nn.Module:
        state = load_state_dict(path)
        return _read_layout(path, lambda: build(state)).eval().requires_grad_(False)

    return manager.load(_key(kind, path, *options), load, size_hint=_size_at(shapes, compute))


def _shapes_of(path: Path, wanted: str, matches: Callable[[Mapping[str, torch.Tensor]], bool]) -> CheckpointShapes:
    """The file's shapes, if it is ``wanted``; else ``WrongModelKindError`` saying what it looks like."""
    shapes = read_shapes(path)
    if matches(shapes.tensors):
        return shapes
    for kind, test, loader in _KINDS:
        if test(shapes.tensors):
            raise WrongModelKindError(path, f"this is {kind}, not {wanted}: load it with {loader}")
    sample = ", ".join(list(shapes.tensors)[:3]) or "no tensors"
    raise WrongModelKindError(path, f"not {wanted}, nor any model Reelgraph knows (its first tensors: {sample})")


def _read_layout(path: Path, read: Callable[[], T]) -> T:
    """``read()``, with a ``StateDictError`` re-raised as ``CorruptModelFileError`` naming ``path``."""
    try:
        return read()
    except StateDictError as exc:
        raise CorruptModelFileError(path, str(exc)) from exc


def _key(kind: str, path: Path, *options: str) -> str:
    """The manager key of a file: its real path, size and modification time (an edited file loads anew)."""
    real = Path(path).resolve()
    stat = real.stat()
    return ":".join((kind, str(real), str(stat.st_size), str(stat.st_mtime_ns), *options))


def _size_at(shapes: CheckpointShapes, dtype: torch.dtype) -> int:
    """Bytes of the floating-point weights once cast to ``dtype`` (for the manager's room planning)."""
    width = torch.finfo(dtype).bits // 8
    return sum(t.numel() * (width if t.is_floating_point() else t.element_size()) for t in shapes.tensors.values())
