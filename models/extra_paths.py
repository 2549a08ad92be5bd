"""ComfyUI's ``extra_model_paths.yaml``: more folders to search for each model folder key.

The file holds sections (any names: ``comfyui:``, ``a111:``, ...), each a mapping with an optional ``base_path``
(relative paths in the section are taken from it; a relative ``base_path`` is taken from the YAML file's folder),
an optional ``is_default: true`` (the section's folders are searched before the main models folder) and folder keys
whose values are one path or several, one per line. ComfyUI's legacy key names (``clip``, ``unet``) are accepted;
keys that are not model folders here (``custom_nodes``, ``hypernetworks``, ...) are logged and ignored.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from models.folders import FOLDER_KEYS

logger = logging.getLogger(__name__)

LEGACY_KEYS = MappingProxyType({"clip": "text_encoders", "unet": "diffusion_models"})
SECTION_SETTINGS = frozenset({"base_path", "is_default"})


class ExtraPathsError(ValueError):
    """An ``extra_model_paths.yaml`` that cannot be read, is not YAML, or has a value of the wrong shape."""

    def __init__(self, file: Path, reason: str, section: str | None = None, key: str | None = None) -> None:
        self.file = file
        self.reason = reason
        self.section = section
        self.key = key
        where = "" if section is None else f" (section {section!r}" + ("" if key is None else f", key {key!r}") + ")"
        super().__init__(f"{file}{where}: {reason}")


@dataclass(frozen=True)
class ExtraModelPaths:
    """Extra folders per model folder key, in file order: ``first`` (``is_default`` sections) are searched before the
    main models folder, ``last`` after it."""

    first: dict[str, tuple[Path, ...]]
    last: dict[str, tuple[Path, ...]]


def read_extra_model_paths(path: Path) -> ExtraModelPaths:
    """Read an ``extra_model_paths.yaml``; every path in the result is absolute (none need exist).

    Raises ``ExtraPathsError`` for an unreadable file, a YAML syntax error (with its line) or a value of the wrong
    shape.
    """
    path = path.expanduser().absolute()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ExtraPathsError(path, f"cannot read the extra model paths file: {exc}") from None
    try:
        document = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = exc.problem or exc.context or "invalid YAML"
        raise ExtraPathsError(path, f"{where}invalid YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise ExtraPathsError(path, f"invalid YAML: {exc}") from None
    if document is None:
        return ExtraModelPaths(first={}, last={})
    if not isinstance(document, dict):
        raise ExtraPathsError(path, f"the top level must be a mapping of sections, not {_kind(document)}")
    first: dict[str, list[Path]] = {}
    last: dict[str, list[Path]] = {}
    for section, body in document.items():
        is_default, folders = _read_section(path, str(section), body)
        target = first if is_default else last
        for key, paths in folders.items():
            target.setdefault(key, []).extend(paths)
    return ExtraModelPaths(
        first={key: tuple(paths) for key, paths in first.items()},
        last={key: tuple(paths) for key, paths in last.items()},
    )


def _read_section(file: Path, section: str, body: Any) -> tuple[bool, dict[str, list[Path]]]:
    """One section's ``is_default`` and its folders per (canonical) key."""
    if body is None:
        return False, {}
    if not isinstance(body, dict):
        raise ExtraPathsError(file, f"a section must be a mapping of folder keys to paths, not {_kind(body)}", section)
    for name in body:
        if not isinstance(name, str):
            raise ExtraPathsError(file, f"key {name!r} is not a string", section)
    is_default = body.get("is_default", False)
    if not isinstance(is_default, bool):
        raise ExtraPathsError(file, f"must be true or false, not {is_default!r}", section, "is_default")
    base = _base_path(file, section, body.get("base_path"))
    folders: dict[str, list[Path]] = {}
    for name, value in body.items():
        if name in SECTION_SETTINGS:
            continue
        key = LEGACY_KEYS.get(name, name)
        entries = _entries(file, section, name, value)
        if key not in FOLDER_KEYS:
            logger.warning(
                "%s: section %r has key %r, which is not a model folder here; ignored (known: %s)",
                file,
                section,
                name,
                ", ".join(FOLDER_KEYS),
            )
            continue
        for entry in entries:
            folder = base / Path(entry).expanduser()
            if not folder.is_dir():
                logger.debug("%s: section %r, key %r: folder %s does not exist (yet)", file, section, name, folder)
            folders.setdefault(key, []).append(folder)
    return is_default, folders


def _base_path(file: Path, section: str, value: Any) -> Path:
    """The folder the section's relative paths start from: its ``base_path``, else the YAML file's folder."""
    if value is None:
        return file.parent
    if not isinstance(value, str) or not value.strip():
        raise ExtraPathsError(file, f"must be a non-empty path, not {value!r}", section, "base_path")
    return file.parent / Path(value.strip()).expanduser()


def _entries(file: Path, section: str, key: str, value: Any) -> list[str]:
    """The paths of one key: a string with one path per line (blank lines skipped), or a list of strings."""
    if value is None:
        return []
    if isinstance(value, str):
        lines = value.splitlines()
    elif isinstance(value, list) and all(isinstance(item, str) for item in value):
        lines = value
    else:
        raise ExtraPathsError(file, f"must be a path or several, one per line, not {_kind(value)}", section, key)
    return [line.strip() for line in lines if line.strip()]


def _kind(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string"}.get(type(value), f"{type(value).__name__} {value!r}")
