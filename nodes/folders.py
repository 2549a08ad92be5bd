"""The folders nodes read from and write to, handed to nodes as the run's ``folders`` service.

Loader nodes list the input folder's files as their choices. ``INPUT_TYPES`` is a classmethod without a run
context, so such nodes derive from ``FolderBound`` and the registry gets a subclass bound to this app's folders
(``bound_to``): no module-level state, and two apps in one process see their own folders.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from graph.safe_paths import resolve_inside

FOLDERS_SERVICE = "folders"
ANNOTATIONS = ("input", "output", "temp")


@dataclass(frozen=True)
class Folders:
    """Where inputs come from and outputs go (``--input-dir``, ``--output-dir``, ``--temp-dir``)."""

    output_dir: Path
    input_dir: Path
    temp_dir: Path

    @classmethod
    def under(cls, base: Path) -> Folders:
        """The default layout: ``output/``, ``input/`` and ``temp/`` below ``base``."""
        return cls(output_dir=base / "output", input_dir=base / "input", temp_dir=base / "temp")

    def by_type(self, folder_type: str) -> Path:
        """The folder for ``input``, ``output`` or ``temp``."""
        if folder_type not in ANNOTATIONS:
            raise ValueError(f"folder type {folder_type!r} is not one of {', '.join(ANNOTATIONS)}")
        return {"input": self.input_dir, "output": self.output_dir, "temp": self.temp_dir}[folder_type]

    def list_input_files(self, extensions: Collection[str]) -> list[str]:
        """Files in the input folder (and its subfolders, as ``sub/name``) whose extension is in ``extensions``.

        Hidden files and upload part files are skipped; names are sorted case-insensitively.
        """
        root = self.input_dir
        if not root.is_dir():
            return []
        names: list[str] = []
        for folder, subfolders, files in os.walk(root):
            subfolders[:] = [name for name in subfolders if not name.startswith(".")]
            relative = Path(folder).relative_to(root)
            for name in files:
                if name.startswith(".") or Path(name).suffix.lower().lstrip(".") not in extensions:
                    continue
                names.append((relative / name).as_posix())
        return sorted(names, key=str.lower)

    def resolve_annotated(self, name: str, what: str = "file") -> Path:
        """The file a loader's choice names: ``sub/name.png`` in the input folder, or ``name.png [output]``
        (ComfyUI's annotation) in the output or temp folder. Raises ``ValueError`` if it leaves the folder
        or does not exist."""
        folder_type = "input"
        stripped = name.strip()
        for annotation in ANNOTATIONS:
            if stripped.endswith(f" [{annotation}]"):
                folder_type = annotation
                stripped = stripped[: -len(annotation) - 3].rstrip()
        path = resolve_inside(self.by_type(folder_type), stripped, what=what)
        if not path.is_file():
            raise ValueError(
                f"{what} {name!r} does not exist in the {folder_type} folder ({self.by_type(folder_type)})"
            )
        return path


class FolderBound:
    """Base for nodes whose choices list files: the registry holds a subclass that knows the app's folders."""

    FOLDERS: ClassVar[Folders | None] = None

    @classmethod
    def bound_to(cls, folders: Folders) -> type:
        """A subclass of this node class whose ``FOLDERS`` are ``folders``."""
        return type(cls.__name__, (cls,), {"FOLDERS": folders, "__module__": cls.__module__, "__doc__": cls.__doc__})

    @classmethod
    def input_choices(cls, extensions: Collection[str]) -> list[str]:
        """The input folder's files with these extensions (empty when not bound to folders)."""
        return [] if cls.FOLDERS is None else cls.FOLDERS.list_input_files(extensions)
