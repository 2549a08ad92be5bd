"""The errors of the models layer: one base class, ``ModelLoadError``, and the two ways a load is refused."""

from __future__ import annotations

from pathlib import Path


class ModelLoadError(Exception):
    """A model file or folder cannot be loaded; the message is ``"NAME: reason"``.

    Args:
        path: the file or folder that failed (kept whole in ``path``; the message shows only its name).
        reason: why, in words a user can act on.
    """

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path.name}: {reason}")


class UnsafeModelFileError(ModelLoadError):
    """Refused: a pickle that needs code to run, or a format Reelgraph does not load."""


class CorruptModelFileError(ModelLoadError):
    """Unreadable: truncated, a damaged header, bad JSON, or a file missing from a model folder."""
