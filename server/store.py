"""Queue and history in one SQLite file (WAL): a restart, even after ``kill -9``, loses nothing.

A prompt is one row whose ``state`` moves pending -> running -> done. The row is written before ``POST /prompt``
answers, so an accepted prompt survives any crash; a row still ``running`` when the server starts belonged to a
process that died mid-run and is recorded as failed.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from graph.validation import ValidationResult

SCHEMA_VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS prompts (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    prompt_id TEXT NOT NULL UNIQUE,
    number REAL NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'running', 'done')),
    prompt TEXT NOT NULL,
    extra_data TEXT NOT NULL,
    outputs TEXT NOT NULL,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    done_seq INTEGER,
    result TEXT
);
CREATE INDEX IF NOT EXISTS prompts_by_state ON prompts (state, number, seq);
CREATE INDEX IF NOT EXISTS prompts_by_completion ON prompts (done_seq) WHERE done_seq IS NOT NULL;
"""


class StoreError(RuntimeError):
    """The database cannot be opened or is from a newer Reelgraph."""


@dataclass(frozen=True)
class QueuedPrompt:
    """A prompt waiting or running, in ComfyUI's queue-item form."""

    number: float
    prompt_id: str
    prompt: dict[str, Any]
    extra_data: dict[str, Any]
    outputs: list[str]
    seq: int = 0
    validated: ValidationResult | None = field(default=None, compare=False, repr=False)
    """The validation ``POST /prompt`` did, kept in memory so the worker need not repeat it (None once reloaded)."""

    @property
    def client_id(self) -> str | None:
        client_id = self.extra_data.get("client_id")
        return client_id if isinstance(client_id, str) else None

    def queue_item(self) -> list[Any]:
        """``[number, prompt_id, prompt, extra_data, outputs_to_execute]``."""
        number = int(self.number) if float(self.number).is_integer() else self.number
        return [number, self.prompt_id, self.prompt, self.extra_data, self.outputs]


@dataclass(frozen=True)
class HistoryRecord:
    """What a finished prompt left: its UI outputs, ComfyUI's ``status`` block, and per-node ``meta``."""

    outputs: dict[str, Any]
    status: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def failed(cls, message_type: str, data: dict[str, Any]) -> HistoryRecord:
        return cls(outputs={}, status={"status_str": "error", "completed": False, "messages": [[message_type, data]]})


class PromptStore:
    """The SQLite file behind the queue and history; safe to call from the loop and the worker thread."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # durable across process crashes, fast commits
            self._db.execute("PRAGMA busy_timeout=5000")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(f"{path} was written by a newer Reelgraph (schema {version} > {SCHEMA_VERSION})")
            self._db.executescript(SCHEMA)
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open the queue database {path}: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _query(self, sql: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, tuple(params)).fetchall()

    # ----- queue ----------------------------------------------------------------------------------------------

    def next_number(self) -> int:
        """One past the largest queue number ever used, so numbers keep growing across restarts."""
        (largest,) = self._query("SELECT MAX(ABS(number)) FROM prompts")[0]
        return int(largest) + 1 if largest is not None else 0

    def add(self, item: QueuedPrompt) -> QueuedPrompt:
        """Persist a new pending prompt; returns it with its submission sequence number."""
        with self._transaction() as db:
            cursor = db.execute(
                "INSERT INTO prompts (prompt_id, number, state, prompt, extra_data, outputs, created_at)"
                " VALUES (?, ?, 'pending', ?, ?, ?, ?)",
                (
                    item.prompt_id,
                    item.number,
                    json.dumps(item.prompt),
                    json.dumps(item.extra_data),
                    json.dumps(item.outputs),
                    time.time(),
                ),
            )
        return replace(item, seq=cursor.lastrowid)

    def exists(self, prompt_id: str) -> bool:
        return bool(self._query("SELECT 1 FROM prompts WHERE prompt_id = ?", (prompt_id,)))

    def pending(self) -> list[QueuedPrompt]:
        """Pending prompts in run order: by number, then submission."""
        rows = self._query(
            "SELECT number, prompt_id, prompt, extra_data, outputs, seq FROM prompts"
            " WHERE state = 'pending' ORDER BY number, seq"
        )
        return [_queued(row) for row in rows]

    def mark_running(self, prompt_id: str) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE prompts SET state = 'running', started_at = ? WHERE prompt_id = ?", (time.time(), prompt_id)
            )

    def return_to_pending(self, prompt_id: str) -> None:
        """Put a prompt the server stopped (not the user) back in the queue, at its old place."""
        with self._transaction() as db:
            db.execute("UPDATE prompts SET state = 'pending', started_at = NULL WHERE prompt_id = ?", (prompt_id,))

    def delete_pending(self, prompt_ids: Iterable[str] | None) -> int:
        """Delete the given pending prompts (all of them for None); running and finished ones are untouched."""
        with self._transaction() as db:
            if prompt_ids is None:
                return db.execute("DELETE FROM prompts WHERE state = 'pending'").rowcount
            ids = list(prompt_ids)
            return db.executemany(
                "DELETE FROM prompts WHERE state = 'pending' AND prompt_id = ?", ((i,) for i in ids)
            ).rowcount

    def finish(self, prompt_id: str, record: HistoryRecord) -> None:
        """Record how a prompt ended; it leaves the queue and joins the history."""
        result = json.dumps({"outputs": record.outputs, "status": record.status, "meta": record.meta})
        with self._transaction() as db:
            (last,) = db.execute("SELECT MAX(done_seq) FROM prompts").fetchone()
            db.execute(
                "UPDATE prompts SET state = 'done', finished_at = ?, done_seq = ?, result = ? WHERE prompt_id = ?",
                (time.time(), (last or 0) + 1, result, prompt_id),
            )

    def fail_abandoned(self, record_for: Callable[[str], HistoryRecord]) -> list[str]:
        """Record every prompt a dead process left ``running`` as failed (``record_for(prompt_id)``); returns ids."""
        rows = self._query("SELECT prompt_id FROM prompts WHERE state = 'running' ORDER BY seq")
        for (prompt_id,) in rows:
            self.finish(prompt_id, record_for(prompt_id))
        return [prompt_id for (prompt_id,) in rows]

    # ----- history ----------------------------------------------------------------------------------------------

    def history(self, max_items: int | None = None, offset: int = -1) -> dict[str, dict[str, Any]]:
        """Finished prompts, oldest first, with ComfyUI's paging: ``max_items`` alone gives the newest ones."""
        (count,) = self._query("SELECT COUNT(*) FROM prompts WHERE state = 'done'")[0]
        if offset < 0:
            offset = max(count - max_items, 0) if max_items is not None else 0
        limit = -1 if max_items is None else max(max_items, 0)
        rows = self._query(
            "SELECT number, prompt_id, prompt, extra_data, outputs, seq, result FROM prompts"
            " WHERE state = 'done' ORDER BY done_seq LIMIT ? OFFSET ?",
            (limit, offset),
        )
        return {row[1]: _history_entry(row) for row in rows}

    def history_entry(self, prompt_id: str) -> dict[str, Any] | None:
        rows = self._query(
            "SELECT number, prompt_id, prompt, extra_data, outputs, seq, result FROM prompts"
            " WHERE state = 'done' AND prompt_id = ?",
            (prompt_id,),
        )
        return _history_entry(rows[0]) if rows else None

    def finished_prompt(self, prompt_id: str) -> QueuedPrompt | None:
        rows = self._query(
            "SELECT number, prompt_id, prompt, extra_data, outputs, seq FROM prompts"
            " WHERE state = 'done' AND prompt_id = ?",
            (prompt_id,),
        )
        return _queued(rows[0]) if rows else None

    def delete_history(self, prompt_ids: Iterable[str] | None) -> int:
        """Forget finished prompts (all for None); their output files stay on disk."""
        with self._transaction() as db:
            if prompt_ids is None:
                return db.execute("DELETE FROM prompts WHERE state = 'done'").rowcount
            ids = [(prompt_id,) for prompt_id in prompt_ids]
            return db.executemany("DELETE FROM prompts WHERE state = 'done' AND prompt_id = ?", ids).rowcount


def _queued(row: tuple[Any, ...]) -> QueuedPrompt:
    number, prompt_id, prompt, extra_data, outputs, seq = row[:6]
    return QueuedPrompt(number, prompt_id, json.loads(prompt), json.loads(extra_data), json.loads(outputs), seq)


def _history_entry(row: tuple[Any, ...]) -> dict[str, Any]:
    result = json.loads(row[6])
    return {"prompt": _queued(row).queue_item(), **result}
