"""Naming the node (and input) in the errors of the code a node calls."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from models.errors import ModelLoadError

__all__ = ["named_errors", "named_model_errors"]


@contextmanager
def named_errors(prefix: str) -> Iterator[None]:
    """Re-raise a ``ValueError`` from within as ``ValueError("<prefix>: <message>")``, caused by it; ``prefix`` is the
    node, and the input when the message does not name it."""
    try:
        yield
    except ValueError as error:
        raise ValueError(f"{prefix}: {error}") from error


@contextmanager
def named_model_errors(prefix: str) -> Iterator[None]:
    """Re-raise a model file's ``ModelLoadError`` with ``prefix`` (the node and/or input it came from) in front
    (``lora_name: FILE: reason``), keeping its type so callers can still tell the kind of failure."""
    try:
        yield
    except ModelLoadError as error:
        error.args = (f"{prefix}: {error}", *error.args[1:])
        raise
