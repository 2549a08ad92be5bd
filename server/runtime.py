"""The server's running parts: the data-dir lock, the store, the queue, the WebSocket hub and the worker.

``create_app`` builds one ``ServerRuntime``; its ``lifecycle`` (an aiohttp cleanup context) opens the database,
records prompts a dead process left running as failed, and starts the worker; on shutdown it stops the worker (the
running prompt goes back to the queue), closes the sockets and the database.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from app.engine import Engine
from server.config import ServerConfig
from server.hub import WebSocketHub
from server.prompt_queue import PromptQueue
from server.store import HistoryRecord, PromptStore, StoreError
from server.worker import PromptWorker, execution_error

logger = logging.getLogger(__name__)

DATABASE_NAME = "reelgraph.db"
LOCK_NAME = "reelgraph.lock"
ABANDONED_MESSAGE = (
    "the server stopped while this prompt was running (the process was killed or crashed), so it did not finish. "
    "Re-queue it with POST /history/{prompt_id}/requeue"
)


class DataDirLock:
    """An exclusive lock on the data dir, so two servers never run the same queue twice."""

    def __init__(self, data_dir: Path) -> None:
        self._path = data_dir / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        import fcntl

        self._path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreError(
                f"another Reelgraph server is using {self._path.parent}; stop it or give this one its own --data-dir"
            ) from None
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class ServerRuntime:
    """Owns the queue machinery for one application; routes reach it through the ``RUNTIME`` app key."""

    def __init__(self, engine: Engine, config: ServerConfig) -> None:
        self.engine = engine
        self.config = config
        self._lock = DataDirLock(config.data_dir)
        self._store: PromptStore | None = None
        self._queue: PromptQueue | None = None
        self._worker: PromptWorker | None = None
        self.hub = WebSocketHub(self._queue_remaining)

    def _queue_remaining(self) -> int:
        return self._queue.remaining() if self._queue is not None else 0

    @property
    def store(self) -> PromptStore:
        if self._store is None:
            raise RuntimeError("the server runtime has not started")
        return self._store

    @property
    def queue(self) -> PromptQueue:
        if self._queue is None:
            raise RuntimeError("the server runtime has not started")
        return self._queue

    @property
    def worker(self) -> PromptWorker:
        if self._worker is None:
            raise RuntimeError("the server runtime has not started")
        return self._worker

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._lock.acquire()
        try:
            store = PromptStore(self.config.data_dir / DATABASE_NAME)
        except BaseException:
            self._lock.release()
            raise
        abandoned = store.fail_abandoned(
            lambda prompt_id: HistoryRecord.failed(
                "execution_error",
                execution_error(prompt_id, "ServerStopped", ABANDONED_MESSAGE.format(prompt_id=prompt_id)),
            )
        )
        for prompt_id in abandoned:
            logger.warning("prompt %s was running when the server last stopped; recorded as failed", prompt_id)
        self._store = store
        self._queue = PromptQueue(store)
        self.hub.bind(loop)
        self._queue.on_change(self.hub.status_changed)
        self._worker = PromptWorker(self.engine, self._queue, self.hub)
        self._worker.start()
        pending = self._queue.remaining()
        if pending:
            logger.info("resuming %d queued prompt(s) from %s", pending, store.path)

    async def stop(self) -> None:
        if self._worker is not None:
            await asyncio.to_thread(self._worker.stop)
        await self.hub.close_all()
        if self._store is not None:
            self._store.close()
        self._lock.release()

    async def lifecycle(self, app: web.Application) -> AsyncIterator[None]:
        """aiohttp cleanup context: start with the application, stop with it."""
        self.start(asyncio.get_running_loop())
        yield
        await self.stop()
