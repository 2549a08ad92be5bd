"""The WebSocket hub: connected clients by id, each with its own send queue, fed from any thread."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

logger = logging.getLogger(__name__)

MAX_BACKLOG = 256
"""Messages a slow client may lag behind before its progress and preview messages are skipped."""

DROPPABLE = frozenset({"progress", "preview"})


@dataclass
class _Client:
    sid: str
    socket: web.WebSocketResponse
    outbox: asyncio.Queue[str | bytes | None] = field(default_factory=asyncio.Queue)
    sender: asyncio.Task[None] | None = None
    skipped: int = 0


class WebSocketHub:
    """Sends each event to the socket of the client that queued the prompt, or to everyone when it has none.

    ``publish*`` may be called from any thread (the worker runs prompts on its own); delivery happens on the loop.
    A client that reads slowly only misses progress and preview messages, never lifecycle events, and never slows
    the others down.
    """

    def __init__(self, queue_remaining: Callable[[], int]) -> None:
        self._queue_remaining = queue_remaining
        self._loop: asyncio.AbstractEventLoop | None = None
        self._clients: dict[str, _Client] = {}
        self._executing: tuple[str | None, dict[str, Any]] | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def status_message(self, sid: str | None = None) -> dict[str, Any]:
        data: dict[str, Any] = {"status": {"exec_info": {"queue_remaining": self._queue_remaining()}}}
        if sid is not None:
            data["sid"] = sid
        return data

    # ----- connections (on the loop) -----------------------------------------------------------------------------

    async def serve(self, sid: str, socket: web.WebSocketResponse) -> None:
        """Register ``socket`` as ``sid`` until it closes; a reconnect with the same id replaces the old socket."""
        client = _Client(sid, socket)
        previous = self._clients.get(sid)
        self._clients[sid] = client
        if previous is not None:
            await self._close(previous)
        client.sender = asyncio.create_task(self._send_loop(client))
        self._enqueue(client, _text("status", self.status_message(sid)), "status")
        if self._executing is not None and self._executing[0] == sid:
            self._enqueue(client, _text("executing", self._executing[1]), "executing")
        try:
            async for _ in socket:
                pass  # clients may send feature flags; nothing they say changes what we send
        finally:
            if self._clients.get(sid) is client:
                del self._clients[sid]
            await self._close(client)

    async def close_all(self) -> None:
        for client in list(self._clients.values()):
            await client.socket.close(code=1001, message=b"server shutdown")
            await self._close(client)
        self._clients.clear()

    async def _close(self, client: _Client) -> None:
        client.outbox.put_nowait(None)
        if client.sender is not None and client.sender is not asyncio.current_task():
            with contextlib.suppress(asyncio.CancelledError):
                await client.sender

    async def _send_loop(self, client: _Client) -> None:
        while (message := await client.outbox.get()) is not None:
            if client.socket.closed:
                continue
            try:
                if isinstance(message, bytes):
                    await client.socket.send_bytes(message)
                else:
                    await client.socket.send_str(message)
            except (ConnectionError, RuntimeError) as exc:
                logger.debug("dropping a message for client %s: %s", client.sid, exc)

    def _enqueue(self, client: _Client, message: str | bytes, kind: str) -> None:
        if kind in DROPPABLE and client.outbox.qsize() >= MAX_BACKLOG:
            client.skipped += 1
            return
        client.outbox.put_nowait(message)

    # ----- sending (on the loop) -----------------------------------------------------------------------------------

    def send(self, kind: str, data: dict[str, Any], sid: str | None) -> None:
        """Send ``{"type": kind, "data": data}`` to ``sid`` (everyone for None); must run on the loop."""
        if kind == "executing":
            self._executing = (sid, data) if data.get("node") is not None else None
        self._deliver(_text(kind, data), kind, sid)

    def _deliver(self, message: str | bytes, kind: str, sid: str | None) -> None:
        if sid is None:
            for client in self._clients.values():
                self._enqueue(client, message, kind)
        elif (client := self._clients.get(sid)) is not None:
            self._enqueue(client, message, kind)

    # ----- thread-safe entry points -------------------------------------------------------------------------------

    def publish(self, kind: str, data: dict[str, Any], sid: str | None) -> None:
        """``send`` from any thread."""
        self._call(self.send, kind, data, sid)

    def publish_preview(self, frame: bytes, sid: str | None) -> None:
        """Send a binary preview frame from any thread (skipped for clients that lag behind)."""
        self._call(self._deliver, frame, "preview", sid)

    def status_changed(self) -> None:
        """Broadcast the queue length; the queue calls this after every change, from any thread."""
        self._call(lambda: self.send("status", self.status_message(), None))

    def _call(self, function: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            function(*args)
        else:
            with contextlib.suppress(RuntimeError):  # the loop closed between the check and the call
                loop.call_soon_threadsafe(function, *args)


def _text(kind: str, data: dict[str, Any]) -> str:
    """ComfyUI's text frame: ``{"type": kind, "data": data}``."""
    return json.dumps({"type": kind, "data": data})
