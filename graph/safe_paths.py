"""Resolve user-given names inside a folder, refusing anything that could leave it.

Shared by every layer that takes a file name from a user (API routes, model folders, loader nodes).
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath, PureWindowsPath


class UnsafePathError(ValueError):
    """A user-given path is absolute, climbs with ``..``, or resolves (through a symlink) outside its folder."""


def check_relative_part(part: str, what: str = "path") -> None:
    """Refuse a relative path component that is absolute, has ``..``, a NUL, a backslash or a drive."""
    if "\x00" in part:
        raise UnsafePathError(f"{what} {part!r} contains a NUL byte")
    if "\\" in part or PureWindowsPath(part).drive:
        raise UnsafePathError(f"{what} {part!r} must use '/' separators and no drive letter")
    posix = PurePosixPath(part)
    if posix.is_absolute():
        raise UnsafePathError(f"{what} {part!r} is absolute; give a name relative to its folder")
    if ".." in posix.parts:
        raise UnsafePathError(f"{what} {part!r} climbs out of its folder with '..'")


def resolve_inside(root: Path, *parts: str, what: str = "path") -> Path:
    """``root / parts``, fully resolved, provided it stays inside ``root`` (symlinks included)."""
    for part in parts:
        check_relative_part(part, what)
    root_real = root.resolve()
    candidate = root_real.joinpath(*(part for part in parts if part)).resolve()
    if not candidate.is_relative_to(root_real):
        shown = "/".join(part for part in parts if part)
        raise UnsafePathError(f"{what} {shown!r} leads outside its folder")
    return candidate
