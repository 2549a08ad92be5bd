"""Helpers for tests that drive the API: prompts as GraphBuilder graphs and a WebSocket message reader."""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import ClientWebSocketResponse, WSMsgType
from aiohttp.test_utils import TestClient

TIMEOUT = 20.0


@dataclass
class Messages:
    """Everything one WebSocket received: text messages as ``(type, data)`` and binary preview frames."""

    socket: ClientWebSocketResponse
    text: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    binary: list[bytes] = field(default_factory=list)

    async def until(self, predicate: Callable[[str, dict[str, Any]], bool], timeout: float = TIMEOUT) -> dict:
        """Read until a text message matches; returns its data."""
        for kind, data in self.text:
            if predicate(kind, data):
                return data
        async with asyncio.timeout(timeout):
            while True:
                message = await self.socket.receive()
                if message.type == WSMsgType.BINARY:
                    self.binary.append(message.data)
                    continue
                if message.type != WSMsgType.TEXT:
                    raise AssertionError(f"socket closed while waiting: {message.type}")
                parsed = json.loads(message.data)
                self.text.append((parsed["type"], parsed["data"]))
                if predicate(parsed["type"], parsed["data"]):
                    return parsed["data"]

    async def done(self, prompt_id: str) -> dict:
        """Wait for ComfyUI's end-of-prompt signal: ``executing`` with ``node`` null."""
        return await self.until(lambda k, d: k == "executing" and d["node"] is None and d["prompt_id"] == prompt_id)

    def kinds(self, prompt_id: str) -> list[str]:
        return [kind for kind, data in self.text if data.get("prompt_id") == prompt_id]

    def preview_formats(self) -> list[tuple[int, int]]:
        return [struct.unpack(">II", frame[:8]) for frame in self.binary]


async def connect(client: TestClient, client_id: str) -> Messages:
    return Messages(await client.ws_connect(f"/ws?clientId={client_id}"))


def image_chain(*middle: tuple[str, dict[str, Any]], prefix: str = "test", size: int = 8) -> dict[str, Any]:
    """EmptyImage -> each ``(class_type, widget inputs)`` in turn (fed ``image``) -> SaveImage."""
    prompt: dict[str, Any] = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": size, "height": size, "batch_size": 1, "color": 0xFF8000}}
    }
    previous = "1"
    for index, (class_type, inputs) in enumerate(middle, start=2):
        prompt[str(index)] = {"class_type": class_type, "inputs": {"image": [previous, 0], **inputs}}
        previous = str(index)
    prompt["99"] = {"class_type": "SaveImage", "inputs": {"images": [previous, 0], "filename_prefix": prefix}}
    return prompt


async def submit(client: TestClient, prompt: dict[str, Any], **body: Any) -> dict[str, Any]:
    response = await client.post("/prompt", json={"prompt": prompt, **body})
    payload = await response.json()
    assert response.status == 200, payload
    return payload
