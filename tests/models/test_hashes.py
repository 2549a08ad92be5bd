"""ModelHashCache: SHA-256 computed once per file version, remembered in memory and in a JSON file."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from pathlib import Path

import pytest

from models.hashes import CHUNK_BYTES, ModelHashCache


class Reads:
    """An ``on_progress`` callback counting the chunks read."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

    def __call__(self, done: int, total: int) -> None:
        self.calls.append((done, total))


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_hash_matches_hashlib_and_progress_follows_chunks(tmp_path: Path) -> None:
    data = os.urandom(CHUNK_BYTES * 2 + 123)
    path = write(tmp_path / "model.safetensors", data)
    reads = Reads()
    digest = ModelHashCache(None).sha256(path, on_progress=reads)
    assert digest == hashlib.sha256(data).hexdigest()
    total = len(data)
    assert reads.calls == [(CHUNK_BYTES, total), (2 * CHUNK_BYTES, total), (total, total)]


def test_autov2_is_the_first_ten_hex_digits(tmp_path: Path) -> None:
    path = write(tmp_path / "m.ckpt", b"abc")
    assert ModelHashCache(None).autov2(path) == hashlib.sha256(b"abc").hexdigest()[:10]


def test_second_call_does_not_read_the_file_again(tmp_path: Path) -> None:
    path = write(tmp_path / "m.safetensors", b"weights")
    cache = ModelHashCache(None)
    first = cache.sha256(path)
    reads = Reads()
    assert cache.sha256(path, on_progress=reads) == first
    assert cache.autov2(path, on_progress=reads) == first[:10]
    assert reads.calls == []


def test_a_link_shares_the_entry_of_its_target(tmp_path: Path) -> None:
    path = write(tmp_path / "m.safetensors", b"weights")
    os.symlink(path, tmp_path / "link.safetensors")
    cache = ModelHashCache(None)
    cache.sha256(path)
    reads = Reads()
    assert cache.sha256(tmp_path / "link.safetensors", on_progress=reads) == hashlib.sha256(b"weights").hexdigest()
    assert reads.calls == []


def test_a_changed_file_is_hashed_again(tmp_path: Path) -> None:
    path = write(tmp_path / "m.safetensors", b"one")
    cache = ModelHashCache(None)
    assert cache.sha256(path) == hashlib.sha256(b"one").hexdigest()
    path.write_bytes(b"three")  # a new size
    assert cache.sha256(path) == hashlib.sha256(b"three").hexdigest()
    stat = path.stat()
    path.write_bytes(b"THREE")  # same size; force a different mtime
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert cache.sha256(path) == hashlib.sha256(b"THREE").hexdigest()


def test_hashes_persist_across_instances(tmp_path: Path) -> None:
    path = write(tmp_path / "models" / "m.safetensors", b"weights")
    cache_file = tmp_path / "state" / "hashes.json"
    digest = ModelHashCache(cache_file).sha256(path)
    stored = json.loads(cache_file.read_text())
    stat = path.stat()
    assert stored["files"] == {
        os.path.realpath(path): {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": digest}
    }
    assert [p.name for p in cache_file.parent.iterdir()] == ["hashes.json"]  # no temporary file left behind
    reads = Reads()
    assert ModelHashCache(cache_file).sha256(path, on_progress=reads) == digest
    assert reads.calls == []


def test_a_persisted_entry_for_an_older_version_is_not_trusted(tmp_path: Path) -> None:
    path = write(tmp_path / "m.safetensors", b"old")
    cache_file = tmp_path / "hashes.json"
    ModelHashCache(cache_file).sha256(path)
    path.write_bytes(b"newer")
    assert ModelHashCache(cache_file).sha256(path) == hashlib.sha256(b"newer").hexdigest()


@pytest.mark.parametrize(
    "content",
    [
        b"{ not json",
        b"\xff\xfe",
        b"[]",
        b'{"version": 99, "files": {}}',
        b'{"version": 1, "files": []}',
    ],
)
def test_a_corrupt_cache_file_is_logged_and_ignored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, content: bytes
) -> None:
    path = write(tmp_path / "m.safetensors", b"weights")
    cache_file = write(tmp_path / "hashes.json", content)
    with caplog.at_level(logging.WARNING, logger="models.hashes"):
        cache = ModelHashCache(cache_file)
    assert any(str(cache_file) in record.getMessage() for record in caplog.records)
    assert cache.sha256(path) == hashlib.sha256(b"weights").hexdigest()
    assert json.loads(cache_file.read_text())["version"] == 1  # rewritten as a good cache


def test_malformed_entries_are_skipped_and_good_ones_kept(tmp_path: Path) -> None:
    good = write(tmp_path / "good.safetensors", b"good")
    bad = write(tmp_path / "bad.safetensors", b"bad")
    stat_good, stat_bad = good.stat(), bad.stat()
    fake = "0" * 64  # a stored hash the cache must trust for the good entry
    files = {
        os.path.realpath(good): {"size": stat_good.st_size, "mtime_ns": stat_good.st_mtime_ns, "sha256": fake},
        os.path.realpath(bad): {"size": stat_bad.st_size, "mtime_ns": stat_bad.st_mtime_ns, "sha256": "zz"},
    }
    cache_file = write(tmp_path / "hashes.json", json.dumps({"version": 1, "files": files}).encode())
    cache = ModelHashCache(cache_file)
    assert cache.sha256(good) == fake
    assert cache.sha256(bad) == hashlib.sha256(b"bad").hexdigest()


def test_an_unwritable_cache_file_is_not_fatal(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write(tmp_path / "m.safetensors", b"weights")
    blocker = write(tmp_path / "not-a-folder", b"")
    cache = ModelHashCache(blocker / "hashes.json")
    with caplog.at_level(logging.WARNING, logger="models.hashes"):
        assert cache.sha256(path) == hashlib.sha256(b"weights").hexdigest()
    assert "could not write" in caplog.text
    reads = Reads()
    cache.sha256(path, on_progress=reads)
    assert reads.calls == []


def test_a_missing_file_raises_oserror(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        ModelHashCache(None).sha256(tmp_path / "absent.safetensors")


def test_threads_share_one_cache(tmp_path: Path) -> None:
    paths = [write(tmp_path / f"m{i}.safetensors", bytes([i]) * 1000) for i in range(8)]
    cache_file = tmp_path / "hashes.json"
    cache = ModelHashCache(cache_file)
    results: dict[Path, str] = {}
    threads = [threading.Thread(target=lambda p=p: results.__setitem__(p, cache.sha256(p))) for p in paths]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}
    assert len(json.loads(cache_file.read_text())["files"]) == len(paths)
