"""ComfyUI's model folders (``models/<key>/``): which keys exist, what files they hold, and safe name resolution."""

from __future__ import annotations

import os
from pathlib import Path

from graph.safe_paths import UnsafePathError, resolve_inside

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
    "diffusers",
    "embeddings",
)
MODEL_EXTENSIONS = frozenset({".safetensors", ".sft", ".gguf", ".ckpt", ".pt", ".pt2", ".pth", ".bin"})
DIFFUSERS_KEY = "diffusers"
DIFFUSERS_MARKER = "model_index.json"


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
    """The model folders under one ``models_dir``; a missing folder simply holds no files.

    Args:
        models_dir: the folder holding ``checkpoints/``, ``loras/``, ... (ComfyUI's ``models/``).
    """

    def __init__(self, models_dir: Path) -> None:
        self.models_dir = models_dir

    def keys(self) -> tuple[str, ...]:
        return FOLDER_KEYS

    def folder(self, key: str) -> Path:
        """The folder for ``key``; an unknown key raises ``UnknownModelFolderError``."""
        if key not in FOLDER_KEYS:
            raise UnknownModelFolderError(key, FOLDER_KEYS)
        return self.models_dir / key

    def list_files(self, key: str) -> list[str]:
        """Sorted POSIX paths relative to the folder, hidden entries and links leading outside left out.

        Model files are those with a model extension; in ``diffusers`` the entries are pipeline folders
        (those holding ``model_index.json``), as ComfyUI's ``DiffusersLoader`` offers them.
        """
        root = self.folder(key)
        if not root.is_dir():
            return []
        root_real = root.resolve()
        names = []
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [name for name in dirnames if not name.startswith(".")]
            here = Path(dirpath)
            if key == DIFFUSERS_KEY:
                found = [here] if DIFFUSERS_MARKER in filenames and here != root else []
                if found:
                    dirnames.clear()
            else:
                found = [here / name for name in filenames if _is_model_file(name)]
            names.extend(
                path.relative_to(root).as_posix() for path in found if path.resolve().is_relative_to(root_real)
            )
        return sorted(names)

    def resolve(self, key: str, name: str) -> Path:
        """The real path of ``name`` in folder ``key`` (it need not exist); escapes raise ``UnsafeModelPathError``."""
        root = self.folder(key)
        try:
            path = resolve_inside(root, name, what="model name")
        except UnsafePathError as exc:
            raise UnsafeModelPathError(f"{exc} (folder {key!r})") from None
        if path == root.resolve():
            raise UnsafeModelPathError(f"model name {name!r} names the {key!r} folder itself, not a file in it")
        return path


def _is_model_file(name: str) -> bool:
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in MODEL_EXTENSIONS
