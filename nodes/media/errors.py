"""The one error type of the media library."""

from __future__ import annotations

from pathlib import Path


class MediaError(ValueError):
    """A media file cannot be read or written; the message names the file and the reason.

    It is a ``ValueError`` so the executor reports it like any bad input, under the node that raised it.
    """

    def __init__(self, path: str | Path | None, reason: str) -> None:
        self.path = None if path is None else Path(path)
        self.reason = reason
        super().__init__(reason if path is None else f"{Path(path).name}: {reason}")
