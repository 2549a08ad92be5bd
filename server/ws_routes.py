"""The WebSocket endpoint ``/ws?clientId=``: status on connect, then the events of this client's prompts."""

from __future__ import annotations

import uuid

from aiohttp import web

from server.errors import bad_request
from server.keys import RUNTIME

routes = web.RouteTableDef()

MAX_CLIENT_ID_LENGTH = 200
HEARTBEAT_SECONDS = 30.0


@routes.get("/ws")
async def websocket(request: web.Request) -> web.WebSocketResponse:
    sid = request.query.get("clientId") or uuid.uuid4().hex
    if len(sid) > MAX_CLIENT_ID_LENGTH or not sid.isprintable():
        raise bad_request(f"clientId must be 1 to {MAX_CLIENT_ID_LENGTH} printable characters")
    socket = web.WebSocketResponse(heartbeat=HEARTBEAT_SECONDS, max_msg_size=1024 * 1024)
    await socket.prepare(request)
    await request.app[RUNTIME].hub.serve(sid, socket)
    return socket
