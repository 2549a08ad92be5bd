"""Output caches: LRU order, byte and entry budgets, RAM-pressure eviction, stats, the null cache, size estimates."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import graph.cache
from graph.cache import CacheEntry, LRUOutputCache, NullOutputCache, available_memory, estimate_nbytes

MB = 1024**2


def entry(nbytes: int, value: Any = None) -> CacheEntry:
    return CacheEntry(outputs=([value],), ui=None, nbytes=nbytes)


class Probe:
    """A fake free-RAM reading that counts how often it is read."""

    def __init__(self, free: int) -> None:
        self.free = free
        self.calls = 0

    def __call__(self) -> int:
        self.calls += 1
        return self.free


# --- LRU and budgets ----------------------------------------------------------------------------------------------


def test_get_and_put() -> None:
    cache = LRUOutputCache(max_bytes=None)
    stored = entry(10, "x")
    cache.put("a", stored)
    assert cache.get("a") is stored
    assert cache.get("b") is None
    assert "a" in cache and "b" not in cache
    assert len(cache) == 1
    assert cache.nbytes == 10


def test_byte_budget_evicts_least_recently_used() -> None:
    cache = LRUOutputCache(max_bytes=300)
    for key in "abc":
        cache.put(key, entry(100))
    assert cache.get("a") is not None  # "a" is now the most recent; "b" the oldest
    cache.put("d", entry(100))
    assert "b" not in cache
    assert [k for k in "abcd" if k in cache] == ["a", "c", "d"]
    assert cache.nbytes == 300
    assert cache.stats.evictions == 1


def test_byte_budget_evicts_as_many_as_needed() -> None:
    cache = LRUOutputCache(max_bytes=300)
    for key in "abc":
        cache.put(key, entry(100))
    cache.put("big", entry(250))
    assert [k for k in ("a", "b", "c", "big") if k in cache] == ["big"]
    assert cache.nbytes == 250
    assert cache.stats.evictions == 3


def test_put_refreshes_recency_and_size_of_an_existing_key() -> None:
    cache = LRUOutputCache(max_bytes=300)
    cache.put("a", entry(100))
    cache.put("b", entry(100))
    cache.put("a", entry(150))  # replaces "a" and makes it the most recent
    assert cache.nbytes == 250
    assert len(cache) == 2
    cache.put("c", entry(100))  # 350 > 300: the oldest, "b", goes
    assert "b" not in cache and "a" in cache and "c" in cache
    assert cache.nbytes == 250


def test_max_entries() -> None:
    cache = LRUOutputCache(max_bytes=None, max_entries=2)
    cache.put("a", entry(1))
    cache.put("b", entry(1))
    cache.get("a")
    cache.put("c", entry(1))
    assert "b" not in cache and "a" in cache and "c" in cache
    assert len(cache) == 2
    assert cache.stats.evictions == 1


def test_entry_larger_than_budget_is_not_kept() -> None:
    cache = LRUOutputCache(max_bytes=100)
    cache.put("small", entry(60))
    cache.put("huge", entry(101))
    assert "huge" not in cache
    assert "small" in cache  # the others are not evicted to make room for something that cannot fit
    assert cache.nbytes == 60
    assert cache.stats.evictions == 0


def test_oversized_replacement_drops_the_old_value() -> None:
    cache = LRUOutputCache(max_bytes=100)
    cache.put("a", entry(50, "old"))
    cache.put("a", entry(500, "new"))
    assert cache.get("a") is None  # a stale value must not survive under the key
    assert cache.nbytes == 0


def test_entry_exactly_the_budget_is_kept() -> None:
    cache = LRUOutputCache(max_bytes=100)
    cache.put("a", entry(100))
    assert "a" in cache and cache.nbytes == 100


def test_no_byte_budget() -> None:
    cache = LRUOutputCache(max_bytes=None)
    for index in range(50):
        cache.put(str(index), entry(10 * MB))
    assert len(cache) == 50
    assert cache.stats.evictions == 0


def test_negative_budget_is_refused() -> None:
    with pytest.raises(ValueError):
        LRUOutputCache(max_bytes=-1)


def test_stats_and_clear() -> None:
    cache = LRUOutputCache(max_bytes=150)
    cache.put("a", entry(100))
    cache.get("a")
    cache.get("a")
    cache.get("zzz")
    cache.put("b", entry(100))  # evicts "a"
    cache.get("a")
    assert (cache.stats.hits, cache.stats.misses, cache.stats.evictions) == (2, 2, 1)
    cache.clear()
    assert len(cache) == 0 and cache.nbytes == 0
    assert cache.get("b") is None
    cache.put("c", entry(150))
    assert cache.nbytes == 150


# --- RAM pressure -------------------------------------------------------------------------------------------------


def test_first_put_probes_and_low_memory_evicts_oldest_first() -> None:
    probe = Probe(free=10 * MB)
    cache = LRUOutputCache(max_bytes=None, min_free_bytes=8 * MB, memory_probe=probe)
    cache.put("a", entry(MB))
    assert probe.calls == 1  # the first put after construction reads free RAM
    assert "a" in cache

    # Later puts within the probe interval do not probe again (small entries)...
    cache.put("b", entry(MB))
    cache.put("c", entry(MB))
    assert probe.calls == 1
    assert len(cache) == 3

    # ... but a put that adds at least _PROBE_EVERY_BYTES does, whatever the clock says.
    probe.free = 8 * MB - 2 * MB  # 2 MB short
    cache.put("d", entry(graph.cache._PROBE_EVERY_BYTES))
    assert probe.calls == 2
    assert "a" not in cache and "b" not in cache  # oldest first, until 2 MB are freed
    assert "c" in cache and "d" in cache
    assert cache.stats.evictions == 2
    assert cache.nbytes == MB + graph.cache._PROBE_EVERY_BYTES


def test_low_memory_on_the_first_put_evicts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(graph.cache, "_PROBE_INTERVAL_S", 0.0)  # probe on every put
    probe = Probe(free=100 * MB)
    cache = LRUOutputCache(max_bytes=None, min_free_bytes=50 * MB, memory_probe=probe)
    for key in "abcd":
        cache.put(key, entry(10 * MB))
    assert probe.calls == 4
    assert len(cache) == 4
    probe.free = 25 * MB  # 25 MB short: three 10 MB entries must go (the newest one included if needed)
    cache.put("e", entry(10 * MB))
    assert [k for k in "abcde" if k in cache] == ["d", "e"]
    assert cache.nbytes == 20 * MB
    assert cache.stats.evictions == 3


def test_pressure_can_empty_the_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(graph.cache, "_PROBE_INTERVAL_S", 0.0)
    probe = Probe(free=0)
    cache = LRUOutputCache(max_bytes=None, min_free_bytes=1024**3, memory_probe=probe)
    cache.put("a", entry(MB))
    cache.put("b", entry(MB))
    assert len(cache) == 0 and cache.nbytes == 0


def test_no_probe_without_min_free_bytes() -> None:
    probe = Probe(free=0)
    cache = LRUOutputCache(max_bytes=None, min_free_bytes=0, memory_probe=probe)
    cache.put("a", entry(graph.cache._PROBE_EVERY_BYTES * 2))
    assert probe.calls == 0
    assert "a" in cache


def test_available_memory_reads_the_machine() -> None:
    assert available_memory() > 0


# --- null cache ---------------------------------------------------------------------------------------------------


def test_null_cache_keeps_nothing() -> None:
    cache = NullOutputCache()
    cache.put("a", entry(1))
    assert cache.get("a") is None
    assert cache.get("b") is None
    assert cache.stats.misses == 2 and cache.stats.hits == 0
    cache.clear()


# --- size estimates -----------------------------------------------------------------------------------------------


class Sized:
    def __init__(self, nbytes: int) -> None:
        self.nbytes = nbytes


def test_estimate_arrays_and_objects_with_nbytes() -> None:
    array = np.zeros((4, 8, 8, 3), dtype=np.float32)
    assert estimate_nbytes(array) == 4 * 8 * 8 * 3 * 4
    assert estimate_nbytes(Sized(12345)) == 12345


def test_estimate_nested_containers() -> None:
    a = np.zeros(100, dtype=np.uint8)
    b = np.zeros(10, dtype=np.float64)
    latent = {"samples": a, "noise_mask": b, "batch_index": [b, b]}
    assert estimate_nbytes(latent) == 100 + 80 + 160
    assert estimate_nbytes([a, (b, [a])]) == 100 + 80 + 100
    assert estimate_nbytes(("abc", b"12345")) == 3 + 5
    assert estimate_nbytes([]) == 0
    assert estimate_nbytes({}) == 0


def test_estimate_keys_of_dicts_do_not_count() -> None:
    assert estimate_nbytes({"a" * 1000: "xy"}) == 2


def test_estimate_opaque_objects_are_small() -> None:
    opaque = graph.cache._OPAQUE_OBJECT_BYTES
    assert estimate_nbytes(object()) == opaque
    assert estimate_nbytes(42) == opaque
    assert estimate_nbytes([1, 2.0, None]) == 3 * opaque


def test_estimate_stops_at_deep_nesting_and_cycles() -> None:
    opaque = graph.cache._OPAQUE_OBJECT_BYTES
    deep: Any = "x" * 1000
    for _ in range(10):
        deep = [deep]
    assert estimate_nbytes(deep) == opaque
    loop: list[Any] = []
    loop.append(loop)
    assert estimate_nbytes(loop) == opaque
    # an array inside five levels of containers (deeper than real node outputs go) is still measured
    array = np.zeros(1000, dtype=np.uint8)
    nested: Any = array
    for _ in range(5):
        nested = [nested]
    assert estimate_nbytes(nested) == 1000
