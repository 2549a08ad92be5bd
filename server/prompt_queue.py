"""The prompt queue: an in-memory view of the pending and running prompts, written through to the store."""

from __future__ import annotations

import bisect
import json
import threading
from collections.abc import Callable, Iterable

from server.store import HistoryRecord, PromptStore, QueuedPrompt

Listener = Callable[[], None]


def _order(item: QueuedPrompt) -> tuple[float, int]:
    return (item.number, item.seq)


class PromptQueue:
    """Pending prompts in run order plus the running one; thread-safe (the API adds, the worker takes).

    Every change is persisted before it is visible and then reported to the listeners (the WebSocket ``status``).
    """

    def __init__(self, store: PromptStore) -> None:
        self._store = store
        self._cond = threading.Condition()
        self._pending: list[QueuedPrompt] = store.pending()
        self._running: QueuedPrompt | None = None
        self._next_number = store.next_number()
        self._version = 0
        self._wire_cache: tuple[int, bytes] | None = None
        self._listeners: list[Listener] = []

    def on_change(self, listener: Listener) -> None:
        """Call ``listener()`` (from whichever thread made the change) after every queue change."""
        self._listeners.append(listener)

    def _changed(self) -> None:
        with self._cond:
            self._version += 1
            self._cond.notify_all()
        for listener in self._listeners:
            listener()

    def take_number(self, front: bool = False) -> int:
        """ComfyUI's numbering: a growing counter, negated for prompts sent to the front."""
        with self._cond:
            number = self._next_number
            self._next_number += 1
        return -number if front else number

    def put(self, item: QueuedPrompt) -> QueuedPrompt:
        stored = self._store.add(item)
        with self._cond:
            bisect.insort(self._pending, stored, key=_order)
        self._changed()
        return stored

    def take(self, timeout: float) -> QueuedPrompt | None:
        """The next prompt to run (now marked running), or None after ``timeout`` seconds or a ``wake()``."""
        with self._cond:
            if not self._pending:
                self._cond.wait(timeout)
            if not self._pending or self._running is not None:
                return None
            item = self._pending.pop(0)
            self._running = item
        self._store.mark_running(item.prompt_id)
        self._changed()
        return item

    def wake(self) -> None:
        """Make a waiting ``take`` return now (the worker has other work, or is stopping)."""
        with self._cond:
            self._cond.notify_all()

    def finish(self, item: QueuedPrompt, record: HistoryRecord) -> None:
        self._store.finish(item.prompt_id, record)
        with self._cond:
            self._running = None
        self._changed()

    def release(self, item: QueuedPrompt) -> None:
        """Return the running prompt to its place in the queue (the server is stopping, not failing)."""
        self._store.return_to_pending(item.prompt_id)
        with self._cond:
            self._running = None
            bisect.insort(self._pending, item, key=_order)
        self._changed()

    def delete(self, prompt_ids: Iterable[str] | None) -> int:
        """Delete pending prompts by id (all for None); returns how many went."""
        ids = None if prompt_ids is None else set(prompt_ids)
        self._store.delete_pending(ids)
        with self._cond:
            before = len(self._pending)
            self._pending = [item for item in self._pending if ids is not None and item.prompt_id not in ids]
            removed = before - len(self._pending)
        if removed:
            self._changed()
        return removed

    def remaining(self) -> int:
        """ComfyUI's ``queue_remaining``: pending plus running."""
        with self._cond:
            return len(self._pending) + (self._running is not None)

    def contains(self, prompt_id: str) -> bool:
        with self._cond:
            running = self._running is not None and self._running.prompt_id == prompt_id
            return running or any(item.prompt_id == prompt_id for item in self._pending)

    def wire_json(self) -> bytes:
        """``GET /queue``'s body, serialised once per queue change (a 500-node prompt is tens of KB)."""
        with self._cond:
            if self._wire_cache is not None and self._wire_cache[0] == self._version:
                return self._wire_cache[1]
            version = self._version
            running = [self._running.queue_item()] if self._running is not None else []
            pending = [item.queue_item() for item in self._pending]
        body = json.dumps({"queue_running": running, "queue_pending": pending}).encode()
        with self._cond:
            if self._version == version:
                self._wire_cache = (version, body)
        return body
