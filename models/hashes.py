"""SHA-256 of model files, computed once per file version and remembered (in memory and, optionally, in a JSON file).

A file is known by its real path, size and modification time (ns); when either changes it is hashed again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

CHUNK_BYTES = 1024 * 1024
CACHE_VERSION = 1
AUTOV2_LENGTH = 10

ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class _Entry:
    size: int
    mtime_ns: int
    sha256: str


class ModelHashCache:
    """SHA-256 hashes of files, each computed once per (real path, size, mtime); safe to share between threads.

    Args:
        cache_file: a JSON file the hashes persist to (written atomically after each new hash); None keeps them in
            memory only. A missing, unreadable or corrupt cache file is logged and started afresh, never fatal.
    """

    def __init__(self, cache_file: Path | None) -> None:
        self.cache_file = cache_file
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = _load(cache_file) if cache_file is not None else {}

    def sha256(self, path: Path, on_progress: ProgressCallback | None = None) -> str:
        """The hex SHA-256 of ``path``, read in 1 MiB chunks unless already known for this size and mtime.

        ``on_progress(done_bytes, total_bytes)`` is called after each chunk read (never when the hash was known).
        Raises ``OSError`` when the file cannot be read.
        """
        real = os.path.realpath(path)
        before = os.stat(real)
        with self._lock:
            entry = self._entries.get(real)
        if entry is not None and (entry.size, entry.mtime_ns) == (before.st_size, before.st_mtime_ns):
            return entry.sha256
        digest = _hash_file(real, before.st_size, on_progress)
        after = os.stat(real)
        if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
            logger.warning("%s changed while it was hashed; its hash is not remembered", real)
            return digest
        with self._lock:
            self._entries[real] = _Entry(before.st_size, before.st_mtime_ns, digest)
            if self.cache_file is not None:
                _save(self.cache_file, self._entries)
        return digest

    def autov2(self, path: Path, on_progress: ProgressCallback | None = None) -> str:
        """The short hash A1111 and Civitai show (``AutoV2``): the first 10 hex digits of the SHA-256."""
        return self.sha256(path, on_progress)[:AUTOV2_LENGTH]


def _hash_file(path: str, total: int, on_progress: ProgressCallback | None) -> str:
    digest = hashlib.sha256()
    done = 0
    with open(path, "rb") as file:
        while chunk := file.read(CHUNK_BYTES):
            digest.update(chunk)
            done += len(chunk)
            if on_progress is not None:
                on_progress(done, total)
    return digest.hexdigest()


def _load(cache_file: Path) -> dict[str, _Entry]:
    """The entries of a cache file; nothing (logged) when it is unreadable or not a cache, skipping bad entries."""
    try:
        document = json.loads(cache_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        logger.warning("ignoring the model hash cache %s: it cannot be read as JSON (%s)", cache_file, exc)
        return {}
    files = document.get("files") if isinstance(document, dict) else None
    if not isinstance(document, dict) or document.get("version") != CACHE_VERSION or not isinstance(files, dict):
        logger.warning("ignoring the model hash cache %s: not a version %d hash cache", cache_file, CACHE_VERSION)
        return {}
    entries = {}
    for path, item in files.items():
        entry = _entry(item)
        if entry is None:
            logger.warning("ignoring a malformed entry for %s in the model hash cache %s", path, cache_file)
        else:
            entries[path] = entry
    return entries


def _entry(item: Any) -> _Entry | None:
    if not isinstance(item, dict):
        return None
    size, mtime_ns, sha256 = item.get("size"), item.get("mtime_ns"), item.get("sha256")
    if not (isinstance(size, int) and isinstance(mtime_ns, int) and isinstance(sha256, str) and len(sha256) == 64):
        return None
    try:
        int(sha256, 16)
    except ValueError:
        return None
    return _Entry(size, mtime_ns, sha256.lower())


def _save(cache_file: Path, entries: dict[str, _Entry]) -> None:
    """Write the cache through a temporary file and ``os.replace``, so readers never see half a file; failures are
    logged, not raised (the hashes stay known in memory)."""
    document = {
        "version": CACHE_VERSION,
        "files": {
            path: {"size": e.size, "mtime_ns": e.mtime_ns, "sha256": e.sha256} for path, e in sorted(entries.items())
        },
    }
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=cache_file.parent, prefix=f".{cache_file.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                json.dump(document, file, indent=1)
            os.replace(temp, cache_file)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
    except OSError as exc:
        logger.warning("could not write the model hash cache %s: %s", cache_file, exc)
