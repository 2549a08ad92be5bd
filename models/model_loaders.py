"""Model files into the memory manager, as the objects the ``MODEL``, ``CLIP``, ``VAE`` and ``CLIP_VISION`` sockets
carry. A file's kind and configuration are read from its tensor shapes first (no weights loaded), so a file given
to the wrong loader fails at once with what it looks like; the weights load into the manager, which shares them
between nodes and prompts (one entry per file, size, modification time and load options).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from models.checkpoint_files import CheckpointShapes, read_shapes
from models.clip_vision import (
    clip_vision_from_state_dict,
    clip_vision_prefix,
    detect_clip_vision_config,
    is_clip_vision,
)
from models.diffusion_model import DiffusionModel
from models.encoders import ClipVisionEncoder, TextEncoder
from models.errors import ModelLoadError, read_naming_file
from models.families.catalog import (
    TEXT_ENCODER_KINDS,
    TRANSFORMER_FAMILIES,
    VAE_FAMILIES,
    text_encoder_kind,
    transformer_family_of,
    vae_family_of,
)
from models.families.kinds import TextEncoderKind, TextEncoderPart
from models.families.ltx.upsampler import detect_ltx_upsampler, is_ltx_upsampler, ltx_upsampler_from_state_dict
from models.families.single_file import unprefixed
from models.folders import ModelFolders
from models.loading import load_state_dict
from models.memory import ModelManager, file_key
from models.model_handle import ModelHandle
from models.offload import POLICIES
from models.text_encoders.tokenizers import load_tokenizer
from models.video_vae import VideoVAE

__all__ = [
    "OFFLOAD_CHOICES",
    "TEXT_ENCODER_TYPES",
    "WEIGHT_DTYPES",
    "CheckpointParts",
    "ImageOnlyCheckpointParts",
    "LatentUpscaleModel",
    "WrongModelKindError",
    "compute_dtype_for",
    "load_checkpoint",
    "load_clip_vision",
    "load_diffusion_model",
    "load_image_only_checkpoint",
    "load_latent_upscale_model",
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


OFFLOAD_CHOICES = ("auto", *POLICIES)
TEXT_ENCODER_TYPES = tuple(kind.name for kind in TEXT_ENCODER_KINDS)
"""The ``CLIPLoader`` / ``DualCLIPLoader`` types Reelgraph loads."""
DIFFUSION_LOADER = "UNETLoader (diffusion_models folder)"
VAE_LOADER = "VAELoader (vae folder)"
CLIP_VISION_LOADER = "CLIPVisionLoader (clip_vision folder)"
UPSAMPLER_LABEL = "an LTX-Video latent upsampler"


def _kinds() -> tuple[tuple[str, Callable[[Mapping[str, torch.Tensor]], bool], str], ...]:
    """Every file kind Reelgraph knows: (what it is, its test, the loader that takes it)."""
    kinds = [(family.label, family.matches, DIFFUSION_LOADER) for family in TRANSFORMER_FAMILIES]
    kinds += [(family.label, family.matches, VAE_LOADER) for family in VAE_FAMILIES]
    for kind in TEXT_ENCODER_KINDS:
        loader = "DualCLIPLoader" if len(kind.parts) > 1 else "CLIPLoader"
        kinds += [
            (part.label, part.matches, f"{loader} type {kind.name} (text_encoders folder)") for part in kind.parts
        ]
    kinds.append(("a CLIP vision encoder", is_clip_vision, CLIP_VISION_LOADER))
    kinds.append((UPSAMPLER_LABEL, is_ltx_upsampler, "LatentUpscaleModelLoader (latent_upscale_models folder)"))
    return tuple(kinds)


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
    """A diffusion model file (``diffusion_models``, or a combined checkpoint) of any family as ``MODEL``."""
    if weight_dtype not in WEIGHT_DTYPES:
        raise ValueError(f"weight_dtype {weight_dtype!r} is not one of {', '.join(WEIGHT_DTYPES)}")
    if offload not in OFFLOAD_CHOICES:
        raise ValueError(f"offload {offload!r} is not one of {', '.join(OFFLOAD_CHOICES)}")
    return _diffusion_model(manager, _model_shapes(path), weight_dtype, offload)


def _model_shapes(path: Path) -> CheckpointShapes:
    """The shapes of a file holding a diffusion model (read once for all its parts); else ``WrongModelKindError``."""
    return _shapes_of(path, "a diffusion model", lambda tensors: transformer_family_of(tensors) is not None)


def _diffusion_model(
    manager: ModelManager, shapes: CheckpointShapes, weight_dtype: str = "default", offload: str = "auto"
) -> DiffusionModel:
    """``MODEL`` of the file whose shapes (holding a diffusion model) were read."""
    path = shapes.path
    family = transformer_family_of(shapes.tensors)
    assert family is not None
    adapter = read_naming_file(path, lambda: family.detect(shapes.tensors, shapes.metadata))
    compute = compute_dtype_for(manager.compute_device)
    storage = WEIGHT_DTYPES[weight_dtype]

    def build(state: dict[str, torch.Tensor]) -> torch.nn.Module:
        module = family.build(state, compute, shapes.metadata)
        if storage is not None:
            module.enable_layerwise_casting(storage_dtype=storage, compute_dtype=compute)
        return module

    handle = _managed(manager, "diffusion_model", shapes, compute, build, weight_dtype)
    return DiffusionModel(path.name, handle, adapter, adapter.default_sampling(), compute, offload)


def load_text_encoder(
    manager: ModelManager, folders: ModelFolders, paths: Sequence[Path], kind_name: str
) -> TextEncoder:
    """Text encoder files (``text_encoders``) of ``CLIPLoader`` / ``DualCLIPLoader`` type ``kind_name`` as ``CLIP``,
    with their tokenizers: one file per network the type needs, in any order."""
    kind = text_encoder_kind(kind_name)
    if len(paths) != len(kind.parts):
        needs = " and ".join(part.label for part in kind.parts)
        raise ValueError(f"type {kind.name} takes {len(kind.parts)} text encoder file(s) ({needs}), got {len(paths)}")
    return _text_encoder(manager, folders, kind, _files_for_parts(kind, paths))


def _text_encoder(
    manager: ModelManager, folders: ModelFolders, kind: TextEncoderKind, files: Sequence[CheckpointShapes]
) -> TextEncoder:
    """``CLIP`` of ``kind`` from the files of its parts (in ``kind.parts`` order), with their tokenizers."""
    tokenizers = tuple(load_tokenizer(folders, part.tokenizer) for part in kind.parts)  # before any weight loads
    compute = compute_dtype_for(manager.compute_device)
    handles = []
    for part, shapes in zip(kind.parts, files, strict=True):

        def build(state: dict[str, torch.Tensor], part: TextEncoderPart = part, shapes: CheckpointShapes = shapes):
            return part.build(state, compute, shapes.metadata)

        handles.append(_managed(manager, "text_encoder", shapes, compute, build))
    names = " + ".join(shapes.path.name for shapes in files)
    return TextEncoder(names, kind, tuple(handles), tokenizers, compute)


def load_vae(manager: ModelManager, path: Path) -> VideoVAE:
    """A VAE file (``vae``, or a combined checkpoint) of any family as ``VAE``."""
    return _vae(manager, _shapes_of(path, "a VAE", lambda tensors: vae_family_of(tensors) is not None))


def _vae(manager: ModelManager, shapes: CheckpointShapes) -> VideoVAE:
    """``VAE`` of the file whose shapes (holding a VAE) were read."""
    family = vae_family_of(shapes.tensors)
    assert family is not None
    latent_format = read_naming_file(shapes.path, lambda: family.latent_format(shapes.tensors))
    compute = compute_dtype_for(manager.compute_device)
    handle = _managed(manager, "vae", shapes, compute, lambda state: family.build(state, compute))
    return VideoVAE(shapes.path.name, handle, latent_format, compute, family.codec)


@dataclass(frozen=True)
class CheckpointParts:
    """What a combined checkpoint holds (``CheckpointLoaderSimple``); ``None`` for a part it lacks."""

    model: DiffusionModel
    clip: TextEncoder | None
    vae: VideoVAE | None


def load_checkpoint(manager: ModelManager, folders: ModelFolders, path: Path) -> CheckpointParts:
    """A combined checkpoint (``checkpoints``): its diffusion model and, when it holds them, its text encoder (the
    one network of a ``CLIPLoader`` type, as Stable Diffusion 1.5's CLIP-L) and its VAE. LTX-Video's checkpoints
    hold no text encoder."""
    shapes = _model_shapes(path)
    model = _diffusion_model(manager, shapes)
    text_kind = next(
        (kind for kind in TEXT_ENCODER_KINDS if len(kind.parts) == 1 and kind.parts[0].matches(shapes.tensors)), None
    )
    clip = _text_encoder(manager, folders, text_kind, [shapes]) if text_kind is not None else None
    vae = _vae(manager, shapes) if vae_family_of(shapes.tensors) is not None else None
    return CheckpointParts(model, clip, vae)


@dataclass(frozen=True)
class LatentUpscaleModel:
    """What ``LATENT_UPSCALE_MODEL`` carries: an LTX-Video latent upsampler in the memory manager."""

    name: str
    handle: ModelHandle
    compute_dtype: torch.dtype


def load_latent_upscale_model(manager: ModelManager, path: Path) -> LatentUpscaleModel:
    """A latent upsampler file (``latent_upscale_models``) as ``LATENT_UPSCALE_MODEL``; its config (safetensors
    metadata) is checked against its shapes before any weight loads."""
    shapes = _shapes_of(path, UPSAMPLER_LABEL, is_ltx_upsampler)
    read_naming_file(path, lambda: detect_ltx_upsampler(shapes.tensors, shapes.metadata))
    compute = compute_dtype_for(manager.compute_device)
    handle = _managed(
        manager,
        "latent_upscale_model",
        shapes,
        compute,
        lambda state: ltx_upsampler_from_state_dict(state, compute, shapes.metadata),
    )
    return LatentUpscaleModel(path.name, handle, compute)


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
        return read_naming_file(path, lambda: build(state)).eval().requires_grad_(False)

    return manager.load(file_key(kind, path, *options), load, size_hint=_size_at(shapes, compute))


def _shapes_of(path: Path, wanted: str, matches: Callable[[Mapping[str, torch.Tensor]], bool]) -> CheckpointShapes:
    """The file's shapes, if it is ``wanted``; else ``WrongModelKindError`` saying what it looks like."""
    shapes = read_shapes(path)
    if matches(shapes.tensors):
        return shapes
    for kind, test, loader in _kinds():
        if test(shapes.tensors):
            raise WrongModelKindError(path, f"this is {kind}, not {wanted}: load it with {loader}")
    sample = ", ".join(list(shapes.tensors)[:3]) or "no tensors"
    raise WrongModelKindError(path, f"not {wanted}, nor any model Reelgraph knows (its first tensors: {sample})")


def _files_for_parts(kind: TextEncoderKind, paths: Sequence[Path]) -> list[CheckpointShapes]:
    """Each part's file among ``paths`` (matched by their tensors), in ``kind.parts`` order; ``WrongModelKindError``
    naming a file that is none of the parts, or a part given twice."""
    found: list[CheckpointShapes | None] = [None] * len(kind.parts)
    for path in paths:
        shapes = read_shapes(path)
        index = next((i for i, part in enumerate(kind.parts) if part.matches(shapes.tensors)), None)
        if index is None:
            wanted = " or ".join(part.label for part in kind.parts)
            _shapes_of(path, f"{wanted} (type {kind.name})", lambda _tensors: False)
        assert index is not None
        if found[index] is not None:
            raise WrongModelKindError(
                path,
                f"type {kind.name} needs {' and '.join(p.label for p in kind.parts)}; this is a second "
                f"{kind.parts[index].label}",
            )
        found[index] = shapes
    return [shapes for shapes in found if shapes is not None]


def _size_at(shapes: CheckpointShapes, dtype: torch.dtype) -> int:
    """Bytes of the floating-point weights once cast to ``dtype`` (for the manager's room planning)."""
    width = torch.finfo(dtype).bits // 8
    return sum(t.numel() * (width if t.is_floating_point() else t.element_size()) for t in shapes.tensors.values())


@dataclass(frozen=True)
class ImageOnlyCheckpointParts:
    """What an image-conditioned checkpoint holds (``ImageOnlyCheckpointLoader``: Stable Video Diffusion)."""

    model: DiffusionModel
    clip_vision: ClipVisionEncoder
    vae: VideoVAE


def load_image_only_checkpoint(manager: ModelManager, path: Path) -> ImageOnlyCheckpointParts:
    """A combined checkpoint of an image-conditioned model (``checkpoints``): its diffusion model, the CLIP vision
    encoder it holds (under any prefix) and its VAE; ``WrongModelKindError`` when it lacks one of them."""
    shapes = _model_shapes(path)
    prefix = clip_vision_prefix(shapes.tensors)
    if prefix is None:
        raise WrongModelKindError(
            path,
            "holds no CLIP vision encoder, so it is not an image-only checkpoint (such as svd_xt.safetensors); load "
            "it with CheckpointLoaderSimple",
        )
    if vae_family_of(shapes.tensors) is None:
        raise WrongModelKindError(path, "holds no VAE Reelgraph knows; ImageOnlyCheckpointLoader needs one")
    model = _diffusion_model(manager, shapes)
    compute = compute_dtype_for(manager.compute_device)
    tower = CheckpointShapes(path, unprefixed(shapes.tensors, prefix), shapes.metadata, shapes.nbytes)
    read_naming_file(path, lambda: detect_clip_vision_config(tower.tensors))
    handle = _managed(
        manager,
        "clip_vision",
        tower,
        compute,
        lambda state: clip_vision_from_state_dict(unprefixed(state, prefix), compute),
    )
    return ImageOnlyCheckpointParts(model, ClipVisionEncoder(path.name, handle, compute), _vae(manager, shapes))
