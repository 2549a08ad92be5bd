"""Output caches behind one interface: an LRU with a byte budget and RAM-pressure eviction, and a null cache."""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import psutil

logger = logging.getLogger(__name__)

MemoryProbe = Callable[[], int]
"""Returns the bytes of RAM still available to the process's machine."""

_PROBE_INTERVAL_S = 0.25
_PROBE_EVERY_BYTES = 256 * 1024**2
_OPAQUE_OBJECT_BYTES = 64


@dataclass
class CacheEntry:
    """A node's cached result: one list of items per output, and its UI output (for output nodes)."""

    outputs: tuple[list[Any], ...]
    ui: dict[str, Any] | None
    nbytes: int


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    evictions: int = 0


class OutputCache(Protocol):
    """What the executor needs from a cache strategy."""

    stats: CacheStats

    def get(self, key: str) -> CacheEntry | None: ...

    def put(self, key: str, entry: CacheEntry) -> None: ...

    def clear(self) -> None: ...


def available_memory() -> int:
    """Bytes of RAM available now (psutil)."""
    return int(psutil.virtual_memory().available)


def estimate_nbytes(value: Any, _depth: int = 0) -> int:
    """Rough size of a node output: tensors and arrays by ``nbytes``, containers summed, other objects small."""
    nbytes = getattr(value, "nbytes", None)
    if isinstance(nbytes, int):
        return nbytes
    if _depth > 4:
        return _OPAQUE_OBJECT_BYTES
    if isinstance(value, (list, tuple)):
        return sum(estimate_nbytes(item, _depth + 1) for item in value)
    if isinstance(value, dict):
        return sum(estimate_nbytes(item, _depth + 1) for item in value.values())
    if isinstance(value, (str, bytes)):
        return len(value)
    return _OPAQUE_OBJECT_BYTES


class LRUOutputCache:
    """Keeps recent outputs within ``max_bytes`` and evicts early when free RAM drops below ``min_free_bytes``.

    Args:
        max_bytes: the budget for cached outputs (estimated sizes); None for no budget.
        min_free_bytes: evict least-recently-used entries while the machine has less RAM free than this.
        max_entries: optional cap on the number of entries.
        memory_probe: how free RAM is read (injected in tests).
    """

    def __init__(
        self,
        max_bytes: int | None,
        min_free_bytes: int = 0,
        *,
        max_entries: int | None = None,
        memory_probe: MemoryProbe = available_memory,
    ) -> None:
        if max_bytes is not None and max_bytes < 0:
            raise ValueError("max_bytes must be non-negative")
        self.max_bytes = max_bytes
        self.min_free_bytes = min_free_bytes
        self.max_entries = max_entries
        self.stats = CacheStats()
        self._entries: OrderedDict[str, CacheEntry] = OrderedDict()
        self._bytes = 0
        self._probe = memory_probe
        self._last_probe = 0.0
        self._bytes_since_probe = 0

    @property
    def nbytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def get(self, key: str) -> CacheEntry | None:
        entry = self._entries.get(key)
        if entry is None:
            self.stats.misses += 1
            return None
        self._entries.move_to_end(key)
        self.stats.hits += 1
        return entry

    def put(self, key: str, entry: CacheEntry) -> None:
        previous = self._entries.pop(key, None)
        if previous is not None:
            self._bytes -= previous.nbytes
        if self.max_bytes is not None and entry.nbytes > self.max_bytes:
            return  # larger than the whole budget: keeping it would evict everything else
        self._entries[key] = entry
        self._bytes += entry.nbytes
        self._bytes_since_probe += entry.nbytes
        self._evict_over_budget()
        self._evict_under_pressure()

    def clear(self) -> None:
        self._entries.clear()
        self._bytes = 0

    def _evict_oldest(self) -> None:
        _, entry = self._entries.popitem(last=False)
        self._bytes -= entry.nbytes
        self.stats.evictions += 1

    def _evict_over_budget(self) -> None:
        while self._entries and (
            (self.max_bytes is not None and self._bytes > self.max_bytes)
            or (self.max_entries is not None and len(self._entries) > self.max_entries)
        ):
            self._evict_oldest()

    def _evict_under_pressure(self) -> None:
        if self.min_free_bytes <= 0:
            return
        now = time.monotonic()
        if now - self._last_probe < _PROBE_INTERVAL_S and self._bytes_since_probe < _PROBE_EVERY_BYTES:
            return
        self._last_probe, self._bytes_since_probe = now, 0
        shortfall = self.min_free_bytes - self._probe()
        if shortfall <= 0:
            return
        freed = 0
        while self._entries and freed < shortfall:
            freed += next(iter(self._entries.values())).nbytes
            self._evict_oldest()
        logger.info("RAM pressure: evicted %.1f MB of cached outputs", freed / 1024**2)


class NullOutputCache:
    """Caches nothing: every node runs every time (``--cache-none``)."""

    def __init__(self) -> None:
        self.stats = CacheStats()

    def get(self, key: str) -> CacheEntry | None:
        self.stats.misses += 1
        return None

    def put(self, key: str, entry: CacheEntry) -> None:
        return None

    def clear(self) -> None:
        return None
