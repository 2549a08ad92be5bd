"""ComfyUI's model folders (``models/<key>/`` plus extra folders per key): which keys exist, what files they hold, and
safe name resolution."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

from graph.safe_paths import UnsafePathError, check_relative_part, resolve_inside

if TYPE_CHECKING:
    from models.extra_paths import ExtraModelPaths

logger = logging.getLogger(__name__)

FOLDER_KEYS = (
    "checkpoints",
    "diffusion_models",
    "text_encoders",
    "vae",
    "loras",
    "controlnet",
    "clip_vision",
    "upscale_models",
    "latent_upscale_models",
    "frame_interpolation",
    "depth_estimation",
    "diffusers",
    "embeddings",
    "tokenizers",
    "animatediff_models",
    "animatediff_motion_lora",
)
MODEL_EXTENSIONS = frozenset({".safetensors", ".sft", ".gguf", ".ckpt", ".pt", ".pt2", ".pth", ".bin"})
DIFFUSERS_KEY = "diffusers"
DIFFUSERS_MARKER = "model_index.json"
DEPTH_KEY = "depth_estimation"
FOLDER_MODEL_MARKERS: Mapping[str, str] = MappingProxyType({DIFFUSERS_KEY: DIFFUSERS_MARKER, DEPTH_KEY: "config.json"})
"""Keys whose entries are model folders, not files: a folder is a model when it holds this file (diffusers pipeline
folders, transformers depth models)."""
TOKENIZERS_KEY = "tokenizers"  # tokenizer folders (<name>/) for text encoders whose single files carry none


class UnknownModelFolderError(KeyError):
    """A folder key that is not one of ComfyUI's model folders."""

    def __init__(self, key: str, known: tuple[str, ...]) -> None:
        super().__init__(key)
        self.key = key
        self.message = f"unknown model folder {key!r}; known folders: {', '.join(known)}"

    def __str__(self) -> str:
        return self.message


class UnsafeModelPathError(UnsafePathError):
    """A model name that is empty, absolute, climbs with ``..``, or resolves (through a symlink) outside its folder."""


class ModelFolders:
    """The model folders under one ``models_dir``, plus extra folders per key; a missing folder simply holds no files.

    Args:
        models_dir: the folder holding ``checkpoints/``, ``loras/``, ... (ComfyUI's ``models/``); its folders are the
            primary ones, where downloads go.
        extra: more folders per key (from ``extra_model_paths.yaml``), searched before (``first``) or after (``last``)
            the primary folder.
    """

    def __init__(self, models_dir: Path, extra: ExtraModelPaths | None = None) -> None:
        self.models_dir = models_dir
        self.extra = extra

    @classmethod
    def from_config(
        cls, models_dir: Path, extra_paths_file: Path | None, default_extra_file: Path | None = None
    ) -> ModelFolders:
        """Model folders with the extra paths of ``extra_paths_file`` (which must exist) or, when it is None, of
        ``default_extra_file`` if that exists (the caller passes ``<repo root>/extra_model_paths.yaml``).

        Raises ``ExtraPathsError`` for a file that is missing (when given), unreadable or malformed.
        """
        from models.extra_paths import read_extra_model_paths

        file = extra_paths_file
        if file is None and default_extra_file is not None and default_extra_file.is_file():
            file = default_extra_file
        if file is None:
            return cls(models_dir)
        extra = read_extra_model_paths(file)
        count = sum(len(paths) for paths in (*extra.first.values(), *extra.last.values()))
        logger.info("extra model paths from %s: %d folders", file, count)
        return cls(models_dir, extra)

    def keys(self) -> tuple[str, ...]:
        return FOLDER_KEYS

    def folder(self, key: str) -> Path:
        """The primary folder for ``key`` (``models_dir/key``); an unknown key raises ``UnknownModelFolderError``."""
        if key not in FOLDER_KEYS:
            raise UnknownModelFolderError(key, FOLDER_KEYS)
        return self.models_dir / key

    def folders(self, key: str) -> tuple[Path, ...]:
        """Every folder for ``key`` in search order (extra ``first``, primary, extra ``last``), each real one once."""
        primary = self.folder(key)
        candidates = [primary]
        if self.extra is not None:
            candidates = [*self.extra.first.get(key, ()), primary, *self.extra.last.get(key, ())]
        seen: set[str] = set()
        unique = []
        for folder in candidates:
            real = os.path.realpath(folder)
            if real not in seen:
                seen.add(real)
                unique.append(folder)
        return tuple(unique)

    def describe(self) -> dict[str, list[str]]:
        """Each key's folders in search order, as strings (for logs and system info)."""
        return {key: [str(folder) for folder in self.folders(key)] for key in FOLDER_KEYS}

    def list_files(self, key: str) -> list[str]:
        """Sorted POSIX paths relative to their folder, over all of ``key``'s folders (read afresh on every call).

        Model files are those with a model extension; in the keys of ``FOLDER_MODEL_MARKERS`` the entries are model
        folders (those holding the key's marker: ``model_index.json`` for ``diffusers``, as ComfyUI's
        ``DiffusersLoader`` offers them). Hidden entries, broken links
        and links leading outside their folder are left out; a name in several folders is listed once.
        """
        names: set[str] = set()
        for root in self.folders(key):
            names.update(_list_folder(root, FOLDER_MODEL_MARKERS.get(key)))
        return sorted(names)

    def resolve(self, key: str, name: str) -> Path:
        """The real path of ``name`` in the first of ``key``'s folders that has it, else in the primary folder (it need
        not exist); names that are unsafe or lead outside that folder raise ``UnsafeModelPathError``."""
        primary = self.folder(key)
        try:
            check_relative_part(name, what="model name")
        except UnsafePathError as exc:
            raise UnsafeModelPathError(f"{exc} (folder {key!r})") from None
        found = next((root for root in self.folders(key) if os.path.exists(root / name)), primary)
        try:
            path = resolve_inside(found, name, what="model name")
        except UnsafePathError as exc:
            raise UnsafeModelPathError(f"{exc} (folder {key!r})") from None
        if path == found.resolve():
            raise UnsafeModelPathError(f"model name {name!r} names the {key!r} folder itself, not a file in it")
        return path


def _list_folder(root: Path, marker: str | None) -> list[str]:
    """The model entries under one folder, as POSIX paths relative to it: files with a model extension, or the
    folders holding ``marker`` when given."""
    if not root.is_dir():
        return []
    root_real = root.resolve()
    names = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [name for name in dirnames if not name.startswith(".")]
        here = Path(dirpath)
        if marker:
            found = [here] if marker in filenames and here != root else []
            if found:
                dirnames.clear()
        else:
            found = [here / name for name in filenames if _is_model_file(name)]
        names.extend(path.relative_to(root).as_posix() for path in found if _leads_inside(path, root_real))
    return names


def _leads_inside(path: Path, root_real: Path) -> bool:
    """Whether ``path`` exists and (through any links) stays inside the real folder ``root_real``."""
    return os.path.exists(path) and Path(os.path.realpath(path)).is_relative_to(root_real)


def _is_model_file(name: str) -> bool:
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in MODEL_EXTENSIONS
