"""The errors of the models layer: one base, ``ModelError``; loads refused (``ModelLoadError``: unsafe or corrupt)
and memory that cannot be found (``ModelMemoryError``, in ``models.memory_types``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


class ModelError(Exception):
    """Base of every error the models layer raises."""


class ModelLoadError(ModelError):
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


class NotAFrameInterpolatorError(ModelLoadError):
    """The file is no frame-interpolation model Reelgraph knows (a RIFE v4.x checkpoint or a FILM TorchScript
    export); the message says what it holds."""


class StateDictError(ModelError):
    """A state dict's tensors do not form a layout its loader knows (missing or misshapen tensors, another
    architecture, an unsupported quantization). Raised by the functions that read tensors, which know no file;
    loaders of files re-raise it as a ``ModelLoadError`` naming the file."""


def read_naming_file(path: Path, read: Callable[[], T]) -> T:
    """``read()`` (which reads a file's tensors), a ``StateDictError`` re-raised as ``CorruptModelFileError`` naming
    ``path``."""
    try:
        return read()
    except StateDictError as error:
        raise CorruptModelFileError(path, str(error)) from error
