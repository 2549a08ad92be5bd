"""Diffusers pipeline folders as the objects the single-file loaders give: ``MODEL``, ``CLIP``, ``VAE`` and
``CLIP_VISION``.

A pipeline folder is laid out as the diffusers releases are: ``model_index.json`` naming the pipeline class and its
components, then one folder per component (``transformer/``, ``transformer_2/`` for the Wan 2.2 A14B low-noise
expert, ``text_encoder/`` + ``tokenizer/`` (and ``text_encoder_2/`` + ``tokenizer_2/`` for HunyuanVideo's CLIP-L),
``vae/``, ``image_encoder/`` + ``image_processor/`` for Wan 2.1 image-to-video). Which pipeline classes load, and the
classes of their components, come from the families' ``PipelineLayout`` (``models.families.catalog``). Everything is
checked before a weight loads: the pipeline is one Reelgraph reads, the component is
listed and present with the expected class, and its safetensors files (one, or the shards its index lists) have
sound headers and their full length; pickled weights are refused. Components then load with ``from_pretrained``
(local files, safetensors only) in the compute dtype, inside the memory manager, keyed by the component folder's
real path, its files' sizes and modification times, and the load options; weights the config needs that the files
lack are refused (``from_pretrained`` would fill them with random values).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import torch

from models.diffusion_model import DiffusionModel
from models.encoders import ClipVisionEncoder, TextEncoder
from models.errors import CorruptModelFileError, ModelLoadError, UnsafeModelFileError
from models.families.base import FamilyAdapter
from models.families.catalog import PIPELINE_LAYOUTS, layout_for_pipeline
from models.families.kinds import PipelineLayout
from models.folders import DIFFUSERS_MARKER
from models.memory import ModelManager
from models.metadata import TensorInfo, read_safetensors_header
from models.model_handle import ModelHandle
from models.model_loaders import OFFLOAD_CHOICES, WEIGHT_DTYPES, WrongModelKindError, compute_dtype_for
from models.sampling.model_sampling import ModelSampling
from models.video_vae import VideoVAE

__all__ = [
    "PIPELINES",
    "TRANSFORMERS",
    "PipelineFolder",
    "load_pipeline_clip_vision",
    "load_pipeline_text_encoder",
    "load_pipeline_transformer",
    "load_pipeline_vae",
    "read_pipeline_folder",
]

PIPELINES = tuple(name for layout in PIPELINE_LAYOUTS for name in layout.pipelines)
"""Every pipeline class whose folders load here."""
TRANSFORMERS = ("transformer", "transformer_2")
"""The diffusion models a pipeline may hold: the only one, or (Wan 2.2 A14B) the high-noise expert, and the
low-noise expert that takes over below ``boundary_ratio``."""
CONFIG = "config.json"
SCHEDULER_CONFIG = "scheduler/scheduler_config.json"
_WEIGHTS_STEM = MappingProxyType({"diffusers": "diffusion_pytorch_model", "transformers": "model"})
_DTYPE_OPTION = MappingProxyType({"diffusers": "torch_dtype", "transformers": "dtype"})
_PICKLE_SUFFIXES = frozenset({".bin", ".pt", ".pth", ".ckpt", ".pkl"})
MAX_LISTED = 4
_FLOAT_DTYPES = ("F", "BF")  # safetensors dtype names of floating-point tensors start so (F16, BF16, F8_E4M3, ...)


@dataclass(frozen=True)
class PipelineFolder:
    """A pipeline folder whose ``model_index.json`` has been read and checked, and its family's layout."""

    path: Path
    index: Mapping[str, Any]
    layout: PipelineLayout

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def pipeline_class(self) -> str:
        return str(self.index["_class_name"])

    def has(self, component: str) -> bool:
        """Whether ``model_index.json`` lists ``component`` (a ``[library, class]`` entry that is not null)."""
        entry = self.index.get(component)
        return isinstance(entry, list) and len(entry) == 2 and entry[0] is not None and entry[1] is not None

    def network_component(self, choice: str) -> str:
        """The component folder of a ``TRANSFORMERS`` choice: ``transformer`` / ``transformer_2``, or ``unet`` /
        ``unet_2`` in UNet pipelines."""
        if choice not in TRANSFORMERS:
            raise ValueError(f"component {choice!r} is not one of {', '.join(TRANSFORMERS)}")
        return self.layout.network + choice.removeprefix(TRANSFORMERS[0])

    def component_classes(self, component: str) -> tuple[str, ...]:
        """The class names ``component`` may have in this family's pipelines (none for a component it lacks)."""
        layout = self.layout
        if component in (self.network_component(choice) for choice in TRANSFORMERS):
            return layout.transformer.diffusers_classes
        if component == "vae":
            return layout.vae.diffusers_classes
        parts = layout.text.parts if layout.text is not None else ()
        for index, part in enumerate(parts):
            if component == _numbered("text_encoder", index):
                return part.diffusers_classes
        return tuple(layout.extra.get(component, ()))


@dataclass(frozen=True)
class _Component:
    """One checked component folder: its library and class (from ``model_index.json``), config and weight files."""

    folder: PipelineFolder
    name: str
    library: str
    class_name: str
    config: Mapping[str, Any]
    weights: tuple[Path, ...]
    tensors: tuple[TensorInfo, ...]

    @property
    def path(self) -> Path:
        return self.folder.path / self.name

    @property
    def label(self) -> str:
        """``<pipeline>/<component>``, for messages and model names."""
        return f"{self.folder.name}/{self.name}"


def read_pipeline_folder(path: Path) -> PipelineFolder:
    """The pipeline folder at ``path``, after checking it is a folder whose ``model_index.json`` names a pipeline
    Reelgraph reads; ``ModelLoadError`` (``WrongModelKindError`` for another pipeline) naming the folder otherwise."""
    path = Path(path)
    if not path.is_dir():
        reason = "no such folder" if not path.exists() else "a file, not a folder"
        raise ModelLoadError(path, f"{reason}: a diffusers pipeline is a folder holding {DIFFUSERS_MARKER}")
    if not (path / DIFFUSERS_MARKER).is_file():
        raise ModelLoadError(path, f"not a diffusers pipeline folder: it has no {DIFFUSERS_MARKER}")
    index = _read_json(path, path / DIFFUSERS_MARKER)
    class_name = index.get("_class_name")
    layout = layout_for_pipeline(class_name)
    if layout is None:
        raise WrongModelKindError(
            path,
            f"{DIFFUSERS_MARKER} names {class_name!r}, not a pipeline Reelgraph reads: only {', '.join(PIPELINES)} "
            "folders load here",
        )
    return PipelineFolder(path, MappingProxyType(index), layout)


def load_pipeline_transformer(
    manager: ModelManager,
    folder: PipelineFolder,
    component: str = "transformer",
    weight_dtype: str = "default",
    offload: str = "auto",
) -> DiffusionModel:
    """The folder's ``transformer`` or ``transformer_2`` as ``MODEL``, as ``load_diffusion_model`` gives a file.

    Args:
        manager: the memory manager that holds it.
        folder: from ``read_pipeline_folder``.
        component: ``transformer`` (the only or high-noise model; ``unet`` in UNet pipelines) or ``transformer_2``
            (the A14B low-noise expert).
        weight_dtype: a ``WEIGHT_DTYPES`` key: fp8 stores the weights in 8 bits and computes in the compute dtype.
        offload: an ``OFFLOAD_CHOICES`` policy to force while it runs (``auto`` lets the manager choose).
    """
    name = folder.network_component(component)
    if weight_dtype not in WEIGHT_DTYPES:
        raise ValueError(f"weight_dtype {weight_dtype!r} is not one of {', '.join(WEIGHT_DTYPES)}")
    if offload not in OFFLOAD_CHOICES:
        raise ValueError(f"offload {offload!r} is not one of {', '.join(OFFLOAD_CHOICES)}")
    part = _component(folder, name)
    try:
        adapter = folder.layout.transformer.adapter_from_config(part.config)
    except (TypeError, ValueError, KeyError) as exc:
        raise CorruptModelFileError(folder.path, f"{name}/{CONFIG}: {exc}") from exc
    compute = compute_dtype_for(manager.compute_device)
    storage = WEIGHT_DTYPES[weight_dtype]

    def store(module: torch.nn.Module) -> torch.nn.Module:
        if storage is not None:
            module.enable_layerwise_casting(storage_dtype=storage, compute_dtype=compute)
        return module

    handle = _managed(manager, "diffusion_model", part, compute, weight_dtype, prepare=store)
    return DiffusionModel(part.label, handle, adapter, _sampling(folder, adapter), compute, offload)


def _sampling(folder: PipelineFolder, adapter: FamilyAdapter) -> ModelSampling:
    """The folder's scheduler config read by its layout, when the layout reads one and the folder has it; else the
    adapter's default."""
    read = folder.layout.sampling_from_scheduler
    config_path = folder.path / SCHEDULER_CONFIG
    if read is None or not config_path.is_file():
        return adapter.default_sampling()
    try:
        return read(_read_json(folder.path, config_path))
    except (TypeError, ValueError, KeyError) as exc:
        raise CorruptModelFileError(folder.path, f"{SCHEDULER_CONFIG}: {exc}") from exc


def load_pipeline_text_encoder(manager: ModelManager, folder: PipelineFolder) -> TextEncoder:
    """The folder's text encoders (``text_encoder``, ``text_encoder_2``, ...) with their own tokenizers as ``CLIP``
    of the family's type; ``ModelLoadError`` for pipelines conditioned on images only."""
    kind = folder.layout.text
    if kind is None:
        raise ModelLoadError(
            folder.path, f"a {folder.pipeline_class} has no text encoder (it is conditioned on images)"
        )
    compute = compute_dtype_for(manager.compute_device)
    parts = [_component(folder, _numbered("text_encoder", index)) for index in range(len(kind.parts))]
    tokenizers = tuple(_tokenizer(folder, _numbered("tokenizer", index)) for index in range(len(kind.parts)))
    handles = tuple(_managed(manager, "text_encoder", part, compute) for part in parts)
    return TextEncoder(" + ".join(part.label for part in parts), kind, handles, tokenizers, compute)


def load_pipeline_vae(manager: ModelManager, folder: PipelineFolder) -> VideoVAE:
    """The folder's ``vae`` as ``VAE``, with the latent format its family reads from its config."""
    part = _component(folder, "vae")
    family = folder.layout.vae
    try:
        latent_format = family.latent_format_from_config(part.config)
    except (TypeError, ValueError, KeyError) as exc:
        raise CorruptModelFileError(folder.path, f"vae/{CONFIG}: {exc}") from exc
    compute = compute_dtype_for(manager.compute_device)
    return VideoVAE(part.label, _managed(manager, "vae", part, compute), latent_format, compute, family.codec)


def load_pipeline_clip_vision(manager: ModelManager, folder: PipelineFolder) -> ClipVisionEncoder:
    """The folder's ``image_encoder`` (Wan 2.1 image-to-video) as ``CLIP_VISION``. Images are prepared by
    ``CLIPVisionEncode`` as for a single file (the folder's ``image_processor`` is the same CLIP preprocessing)."""
    part = _component(folder, "image_encoder")
    compute = compute_dtype_for(manager.compute_device)
    return ClipVisionEncoder(part.label, _managed(manager, "clip_vision", part, compute), compute)


def _component(folder: PipelineFolder, name: str) -> _Component:
    """The checked component ``name`` of ``folder``; ``ModelLoadError`` subclasses naming the folder and what is
    wrong (not listed, missing, another class, a damaged config, weights missing, truncated or pickled)."""
    root = folder.path
    if not folder.has(name):
        raise ModelLoadError(root, f"{DIFFUSERS_MARKER} lists no {name} (this {folder.pipeline_class} has none)")
    library, class_name = folder.index[name]
    classes = folder.component_classes(name)
    if class_name not in classes or library not in _WEIGHTS_STEM:
        expected = " or ".join(classes) or "not something Reelgraph loads"
        raise WrongModelKindError(
            root, f"its {name} is a {library} {class_name}; a {folder.pipeline_class}'s is {expected}"
        )
    path = root / name
    if not path.is_dir():
        raise CorruptModelFileError(root, f"{name}/ is missing ({DIFFUSERS_MARKER} lists it): download it again")
    config = _read_json(root, path / CONFIG)
    weights = _weight_files(root, path, _WEIGHTS_STEM[library])
    tensors: list[TensorInfo] = []
    for file in weights:
        try:
            tensors.extend(read_safetensors_header(file).tensors.values())
        except ModelLoadError as exc:  # its message starts with the file's name
            raise CorruptModelFileError(root, f"{name}/{exc}") from exc
    return _Component(folder, name, library, class_name, MappingProxyType(config), weights, tuple(tensors))


def _weight_files(root: Path, path: Path, stem: str) -> tuple[Path, ...]:
    """The safetensors files ``from_pretrained`` reads in component folder ``path``: ``<stem>.safetensors``, or the
    shards ``<stem>.safetensors.index.json`` lists; pickled weights alone are refused."""
    index_path = path / f"{stem}.safetensors.index.json"
    if index_path.is_file():
        return _shard_files(root, index_path)
    single = path / f"{stem}.safetensors"
    if single.is_file():
        return (single,)
    pickles = sorted(file.name for file in path.iterdir() if file.suffix.lower() in _PICKLE_SUFFIXES)
    if pickles:
        raise UnsafeModelFileError(
            root,
            f"{path.name}/ holds only pickled weights ({pickles[0]}); Reelgraph loads safetensors only: fetch the "
            "safetensors files of this release, or convert them",
        )
    raise CorruptModelFileError(root, f"{path.name}/{single.name} is missing: download it again")


def _shard_files(root: Path, index_path: Path) -> tuple[Path, ...]:
    """The shard files a ``*.safetensors.index.json`` lists, all present and named as plain files beside it."""
    where = f"{index_path.parent.name}/{index_path.name}"
    weight_map = _read_json(root, index_path).get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise CorruptModelFileError(root, f"{where} has no weight_map")
    names = sorted({str(name) for name in weight_map.values()})
    odd = [name for name in names if Path(name).name != name or not name.endswith(".safetensors")]
    if odd:
        raise CorruptModelFileError(root, f"{where} lists {odd[0]!r}, not a shard file name")
    missing = [name for name in names if not (index_path.parent / name).is_file()]
    if missing:
        raise CorruptModelFileError(
            root, f"{index_path.parent.name}/{missing[0]} is missing ({index_path.name} lists it): download it again"
        )
    return tuple(index_path.parent / name for name in names)


def _managed(
    manager: ModelManager,
    kind: str,
    part: _Component,
    compute: torch.dtype,
    *options: str,
    prepare: Callable[[torch.nn.Module], torch.nn.Module] | None = None,
) -> ModelHandle:
    """The manager's handle for a component: its loader reads it (``_from_pretrained``), ``prepare``s the module and
    freezes it for inference."""

    def load() -> torch.nn.Module:
        module = _from_pretrained(part, compute)
        if prepare is not None:
            module = prepare(module)
        return module.eval().requires_grad_(False)

    return manager.load(_key(kind, part, *options), load, size_hint=_size(part, compute))


def _from_pretrained(part: _Component, compute: torch.dtype) -> torch.nn.Module:
    """The component's ``from_pretrained`` (local safetensors only, in ``compute``). A failure, or weights its
    config needs that the files lack (which ``from_pretrained`` would fill with random values), raises
    ``CorruptModelFileError``."""
    import diffusers
    import transformers

    model_class = getattr(diffusers if part.library == "diffusers" else transformers, part.class_name)
    kwargs = {
        "local_files_only": True,
        "use_safetensors": True,
        "output_loading_info": True,
        _DTYPE_OPTION[part.library]: compute,
    }
    try:
        module, info = model_class.from_pretrained(part.path, **kwargs)
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CorruptModelFileError(
            part.folder.path, f"{part.name}/ does not load as {part.class_name}: {reason}"
        ) from exc
    missing = sorted(info.get("missing_keys") or ())
    if missing:
        listed = ", ".join(missing[:MAX_LISTED]) + (", ..." if len(missing) > MAX_LISTED else "")
        raise CorruptModelFileError(
            part.folder.path,
            f"{part.name}/ lacks {len(missing)} weights its {CONFIG} needs ({listed}): is the download complete?",
        )
    return module


def _tokenizer(folder: PipelineFolder, name: str) -> Any:
    """The folder's own tokenizer component ``name``, read locally (no code from the folder runs)."""
    root = folder.path
    path = root / name
    if not folder.has(name) or not path.is_dir():
        raise CorruptModelFileError(root, f"{name}/ is missing: the tokenizer of its text encoder")
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(path, local_files_only=True, trust_remote_code=False)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, AttributeError, ImportError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CorruptModelFileError(root, f"{name}/ is not a loadable tokenizer: {reason}") from exc


def _numbered(component: str, index: int) -> str:
    """``text_encoder``, ``text_encoder_2``, ...: diffusers' names of a pipeline's first, second, ... component."""
    return component if index == 0 else f"{component}_{index + 1}"


def _key(kind: str, part: _Component, *options: str) -> str:
    """The manager key of a component: its real folder, the size and modification time of its config and weight
    files (an edited file loads anew), and the load options."""
    stamps = []
    for file in (part.path / CONFIG, *part.weights):
        stat = file.stat()
        stamps.append(f"{file.name}={stat.st_size}@{stat.st_mtime_ns}")
    return ":".join((kind, str(part.path.resolve()), *stamps, *options))


def _size(part: _Component, dtype: torch.dtype) -> int:
    """Bytes of the component's weights once floating-point tensors are cast to ``dtype`` (for room planning)."""
    width = torch.finfo(dtype).bits // 8
    return sum(
        math.prod(info.shape) * width if info.dtype.startswith(_FLOAT_DTYPES) else info.nbytes for info in part.tensors
    )


def _read_json(root: Path, path: Path) -> dict[str, Any]:
    """A JSON object file of the pipeline at ``root``; missing or invalid raises ``CorruptModelFileError``."""
    where = path.relative_to(root).as_posix()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CorruptModelFileError(root, f"{where} is missing: download it again") from None
    except (OSError, ValueError) as exc:
        raise CorruptModelFileError(root, f"{where} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise CorruptModelFileError(root, f"{where} holds a JSON {type(data).__name__}, not an object")
    return data
