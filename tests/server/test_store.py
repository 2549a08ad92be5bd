"""The SQLite store on its own: order, state changes across reopening, paging, abandoned runs, bad files."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from server.store import HistoryRecord, PromptStore, QueuedPrompt, StoreError


def item(prompt_id: str, number: float) -> QueuedPrompt:
    return QueuedPrompt(number, prompt_id, {"1": {"class_type": "X", "inputs": {}}}, {"client_id": "c"}, ["1"])


def done(label: str) -> HistoryRecord:
    return HistoryRecord({"1": {"text": [label]}}, {"status_str": "success", "completed": True, "messages": []})


def test_pending_order_and_state_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    store = PromptStore(path)
    for prompt_id, number in (("a", 0), ("b", 1), ("front", -2), ("c", 1)):
        store.add(item(prompt_id, number))
    store.mark_running("front")
    store.close()

    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    reopened = PromptStore(path)
    assert [queued.prompt_id for queued in reopened.pending()] == ["a", "b", "c"]
    assert reopened.next_number() == 3
    assert reopened.fail_abandoned(lambda prompt_id: HistoryRecord.failed("execution_error", {"id": prompt_id}))
    entry = reopened.history_entry("front")
    assert entry is not None and entry["status"]["messages"] == [["execution_error", {"id": "front"}]]
    assert entry["prompt"] == [-2, "front", {"1": {"class_type": "X", "inputs": {}}}, {"client_id": "c"}, ["1"]]
    assert reopened.fail_abandoned(lambda prompt_id: done(prompt_id)) == []


def test_history_pages_like_comfyui_and_deletes_only_what_it_is_asked(tmp_path: Path) -> None:
    store = PromptStore(tmp_path / "h.db")
    for index in range(5):
        store.add(item(f"p{index}", index))
        store.mark_running(f"p{index}")
        store.finish(f"p{index}", done(str(index)))
    store.add(item("waiting", 9))
    assert list(store.history()) == ["p0", "p1", "p2", "p3", "p4"]
    assert list(store.history(max_items=2)) == ["p3", "p4"]
    assert list(store.history(max_items=2, offset=0)) == ["p0", "p1"]
    assert list(store.history(offset=3)) == ["p3", "p4"]
    assert store.history()["p2"]["outputs"] == {"1": {"text": ["2"]}}
    assert store.delete_pending(["p1"]) == 0  # finished prompts are not in the queue
    assert store.delete_history(["p1", "waiting"]) == 1  # pending prompts are not in the history
    assert [queued.prompt_id for queued in store.pending()] == ["waiting"]
    assert store.delete_history(None) == 4 and store.history() == {}


def test_unreadable_or_newer_databases_are_refused_with_a_clear_error(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="cannot open the queue database"):
        PromptStore(garbage)
    newer = tmp_path / "newer.db"
    with sqlite3.connect(newer) as db:
        db.execute("PRAGMA user_version=99")
    with pytest.raises(StoreError, match="newer Reelgraph"):
        PromptStore(newer)
