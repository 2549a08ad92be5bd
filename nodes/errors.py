"""Naming the node (and input) in the errors of the code a node calls."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["named_errors"]


@contextmanager
def named_errors(prefix: str) -> Iterator[None]:
    """Re-raise a ``ValueError`` from within as ``ValueError("<prefix>: <message>")``, caused by it; ``prefix`` is the
    node, and the input when the message does not name it."""
    try:
        yield
    except ValueError as error:
        raise ValueError(f"{prefix}: {error}") from error
