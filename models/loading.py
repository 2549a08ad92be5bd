"""Safe model loading: state dicts from single weight files, and diffusers pipeline or component folders.

Weights load only from safetensors (memory-mapped), GGUF, diffusers folders, and ``.pt/.ckpt/.bin/.pth`` through
``torch.load(weights_only=True)``; anything else raises ``UnsafeModelFileError``, a damaged file or folder raises
``CorruptModelFileError``, both naming the file. Formats are recognised by content (see ``models.formats``).
"""

from __future__ import annotations

import importlib
import json
import logging
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from models.errors import CorruptModelFileError, ModelLoadError, UnsafeModelFileError
from models.formats import (
    WEIGHT_FORMATS,
    check_pickle_safe,
    check_safetensors_header,
    detect_weight_format,
    read_gguf,
    read_pickle,
    read_safetensors,
)

__all__ = [
    "WEIGHT_FORMATS",
    "detect_weight_format",
    "is_diffusers_folder",
    "load_diffusers_folder",
    "load_state_dict",
]

logger = logging.getLogger(__name__)

# Training checkpoints often keep the weights one level down, next to optimizer state or step counts.
WRAPPER_KEYS = ("state_dict", "model", "module", "controlnet")
_MAX_UNWRAP = 3
PIPELINE_MARKER = "model_index.json"
COMPONENT_CONFIG = "config.json"
# Config files checked up front; tokenizer vocabularies (tokenizer.json can be megabytes) are left to their loader.
_CONFIG_SUFFIXES = ("config.json", ".index.json")
_PICKLE_SUFFIXES = frozenset({".bin", ".pt", ".pth", ".ckpt"})
_COMPONENT_LIBRARIES = frozenset({"diffusers", "transformers"})
_REFUSED_KWARGS = ("trust_remote_code", "custom_pipeline")


def load_state_dict(
    path: Path, device: str | torch.device = "cpu", dtype: torch.dtype | None = None
) -> dict[str, torch.Tensor]:
    """Load the tensors of one weight file, safely.

    safetensors files are memory-mapped: on the CPU with ``dtype=None`` the tensors share a private (copy-on-write)
    map of the file rather than a copy. GGUF goes through diffusers' ``load_gguf_checkpoint``: quantized tensors stay
    ``GGUFParameter`` and are never cast. Pickles go through ``torch.load(weights_only=True)`` (memory-mapped when
    zip); a wrapping ``{"state_dict": ...}``, ``{"model": ...}``, ``{"module": ...}`` or ``{"controlnet": ...}`` (as
    AnimateDiff's SparseCtrl loader accepts) is unwrapped and entries that are not tensors are dropped.

    Args:
        path: the weight file; its format is judged by content (``detect_weight_format``).
        device: where the tensors go.
        dtype: if set, floating-point tensors (not quantized GGUF ones) are cast to it.
    """
    path = Path(path)
    fmt = detect_weight_format(path)
    if fmt == "safetensors":
        tensors = read_safetensors(path, device)
    elif fmt == "gguf":
        tensors = read_gguf(path)
        if torch.device(device).type != "cpu":
            tensors = {name: tensor.to(device) for name, tensor in tensors.items()}
    else:
        tensors = _tensors_of(path, read_pickle(path, device))
    if dtype is not None:
        tensors = {name: _cast(tensor, dtype) for name, tensor in tensors.items()}
    logger.debug("loaded %d tensors from %s (%s)", len(tensors), path.name, fmt)
    return tensors


def _tensors_of(path: Path, loaded: object) -> dict[str, torch.Tensor]:
    """The tensors of an unpickled checkpoint, after unwrapping ``WRAPPER_KEYS``."""
    for _ in range(_MAX_UNWRAP):
        if not isinstance(loaded, Mapping):
            break
        inner = next((loaded[key] for key in WRAPPER_KEYS if isinstance(loaded.get(key), Mapping)), None)
        if inner is None:
            break
        loaded = inner
    if not isinstance(loaded, Mapping):
        raise CorruptModelFileError(path, f"holds a {type(loaded).__name__}, not a state dict")
    tensors = {key: value for key, value in loaded.items() if isinstance(key, str) and isinstance(value, torch.Tensor)}
    if len(tensors) < len(loaded):
        logger.debug("%s: dropped %d entries that are not tensors", path.name, len(loaded) - len(tensors))
    return tensors


def _cast(tensor: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    if not tensor.is_floating_point() or hasattr(tensor, "quant_type"):
        return tensor
    return tensor.to(dtype)


def is_diffusers_folder(path: Path) -> str | None:
    """``"pipeline"`` for a folder with ``model_index.json``; ``"component"`` for one whose ``config.json`` names a
    model class (diffusers' ``_class_name`` or transformers' ``architectures``); otherwise ``None``.

    A ``config.json`` that is not valid JSON also gives ``None`` here; ``load_diffusers_folder`` reports it.
    """
    path = Path(path)
    if (path / PIPELINE_MARKER).is_file():
        return "pipeline"
    config_path = path / COMPONENT_CONFIG
    if not config_path.is_file():
        return None
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        logger.debug("%s is not readable JSON", config_path)
        return None
    if isinstance(config, dict) and ("_class_name" in config or "architectures" in config):
        return "component"
    return None


def load_diffusers_folder(path: Path, torch_dtype: torch.dtype | None = None, **kwargs: Any) -> Any:
    """Load a diffusers pipeline folder or a single model component folder, from local files only.

    Every config JSON file is parsed and every weight file checked first, so a damaged folder fails with
    ``CorruptModelFileError`` naming the folder and the file, and a pickle that ``weights_only`` would refuse fails
    with ``UnsafeModelFileError`` before diffusers or transformers touch it (both also unpickle with
    ``weights_only=True`` themselves). Custom pipeline code is never loaded.

    Args:
        path: a folder holding ``model_index.json`` (pipeline) or ``config.json`` (component).
        torch_dtype: the dtype to load in; ``None`` keeps the saved one.
        kwargs: passed on to ``from_pretrained`` (``variant``, ``device_map``, ...); ``local_files_only`` and
            ``use_safetensors`` are always set here, ``trust_remote_code`` and ``custom_pipeline`` are refused.
    """
    path = Path(path)
    refused = [name for name in _REFUSED_KWARGS if name in kwargs]
    if refused:
        raise ValueError(f"load_diffusers_folder does not run code from model folders; remove {', '.join(refused)}")
    if not path.is_dir():
        raise ModelLoadError(path, "no such folder" if not path.exists() else "not a folder")
    if (path / PIPELINE_MARKER).is_file():
        return _load_pipeline(path, torch_dtype, kwargs)
    if (path / COMPONENT_CONFIG).is_file():
        return _load_component(path, path, torch_dtype, kwargs)
    raise ModelLoadError(path, f"not a diffusers folder: it has neither {PIPELINE_MARKER} nor {COMPONENT_CONFIG}")


def _load_pipeline(path: Path, torch_dtype: torch.dtype | None, kwargs: dict[str, Any]) -> Any:
    import diffusers

    index = _read_json(path, path / PIPELINE_MARKER)
    class_name = index.get("_class_name")
    pipeline_class = getattr(diffusers, class_name, None) if isinstance(class_name, str) else None
    if not (isinstance(pipeline_class, type) and issubclass(pipeline_class, diffusers.DiffusionPipeline)):
        raise UnsafeModelFileError(path, f"{PIPELINE_MARKER} names {class_name!r}, which is not a diffusers pipeline")
    all_safetensors = True
    for name, entry in index.items():
        if name.startswith("_") or not isinstance(entry, list) or len(entry) != 2 or entry[0] is None:
            continue
        library, component_class = entry
        if library not in _COMPONENT_LIBRARIES:
            raise UnsafeModelFileError(
                path, f"component {name!r} comes from {library!r}; only diffusers and transformers classes load"
            )
        folder = path / name
        if not folder.is_dir():
            raise CorruptModelFileError(
                path, f"missing folder {name}/ that {PIPELINE_MARKER} lists ({component_class})"
            )
        for json_path in sorted(folder.glob("*.json")):
            if json_path.name.endswith(_CONFIG_SUFFIXES):
                _read_json(path, json_path)
        if _is_model_class(library, component_class):
            all_safetensors &= _check_weights(path, folder)
    options = {**kwargs, "local_files_only": True, "use_safetensors": True if all_safetensors else None}
    if torch_dtype is not None:
        options["torch_dtype"] = torch_dtype
    return _from_pretrained(path, diffusers.DiffusionPipeline, options)


def _load_component(root: Path, folder: Path, torch_dtype: torch.dtype | None, kwargs: dict[str, Any]) -> Any:
    config = _read_json(root, folder / COMPONENT_CONFIG)
    model_class, dtype_option = _component_class(root, config)
    has_safetensors = _check_weights(root, folder)
    options = {**kwargs, "local_files_only": True, "use_safetensors": True if has_safetensors else None}
    if torch_dtype is not None:
        options[dtype_option] = torch_dtype
    return _from_pretrained(folder, model_class, options)


def _is_model_class(library: str, class_name: object) -> bool:
    """Whether ``library.class_name`` is a model class (which has weights), not a tokenizer or scheduler."""
    module = importlib.import_module(library)
    found = getattr(module, class_name, None) if isinstance(class_name, str) else None
    base = module.ModelMixin if library == "diffusers" else module.PreTrainedModel
    return isinstance(found, type) and issubclass(found, base)


def _component_class(root: Path, config: dict[str, Any]) -> tuple[type, str]:
    """The model class a component ``config.json`` names, and the name of its ``from_pretrained`` dtype option."""
    if "_class_name" in config:
        import diffusers

        name = config["_class_name"]
        found = getattr(diffusers, name, None) if isinstance(name, str) else None
        if isinstance(found, type) and issubclass(found, diffusers.ModelMixin):
            return found, "torch_dtype"
        raise UnsafeModelFileError(root, f"{COMPONENT_CONFIG} names {name!r}, which is not a diffusers model class")
    architectures = config.get("architectures")
    if isinstance(architectures, list) and architectures:
        import transformers

        name = architectures[0]
        found = getattr(transformers, name, None) if isinstance(name, str) else None
        if isinstance(found, type) and issubclass(found, transformers.PreTrainedModel):
            return found, "dtype"
        raise UnsafeModelFileError(root, f"{COMPONENT_CONFIG} names {name!r}, which is not a transformers model class")
    raise CorruptModelFileError(root, f"{COMPONENT_CONFIG} names no model class (_class_name or architectures)")


def _check_weights(root: Path, folder: Path) -> bool:
    """Check a component's weight files; True when it has safetensors (its pickles are then never loaded)."""
    safetensors = sorted(folder.glob("*.safetensors"))
    pickles = sorted(file for file in folder.iterdir() if file.suffix.lower() in _PICKLE_SUFFIXES and file.is_file())
    if not safetensors and not pickles:
        where = "" if folder == root else f"{_relative(root, folder)}/ "
        raise CorruptModelFileError(root, f"{where}holds no weights file (.safetensors or .bin/.pt/.pth/.ckpt)")
    for file in safetensors:
        detect_weight_format(file)
        check_safetensors_header(file)
    if safetensors:
        return True
    for file in pickles:
        if detect_weight_format(file) == "pickle":
            check_pickle_safe(file)
    return False


def _from_pretrained(path: Path, loader: type, options: dict[str, Any]) -> Any:
    logger.info("loading %s from %s", loader.__name__, path)
    try:
        return loader.from_pretrained(path, **options)
    except (OSError, ValueError, RuntimeError, pickle.UnpicklingError) as exc:
        if _refused_unpickling(exc):
            raise UnsafeModelFileError(path, f"a weights file needs code to run to load; {exc}") from exc
        raise CorruptModelFileError(path, f"{loader.__name__}.from_pretrained failed: {exc}") from exc


def _refused_unpickling(exc: BaseException) -> bool:
    """Whether a library error came from a weights-only refusal somewhere down its chain (our checks missed it)."""
    seen: BaseException | None = exc
    for _ in range(16):
        if seen is None:
            return False
        if isinstance(seen, pickle.UnpicklingError) and "Weights only load failed" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _read_json(root: Path, json_path: Path) -> dict[str, Any]:
    """A folder's JSON file as a dict; a missing or invalid one raises ``CorruptModelFileError`` naming it."""
    try:
        data = json.loads(json_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CorruptModelFileError(root, f"missing {_relative(root, json_path)}") from None
    except (OSError, ValueError) as exc:
        raise CorruptModelFileError(root, f"{_relative(root, json_path)} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise CorruptModelFileError(root, f"{_relative(root, json_path)} holds a {type(data).__name__}, not an object")
    return data


def _relative(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix() if path != root else path.name
