"""Middlewares that guard every request: JSON errors, loopback Host checks, same-origin writes, and the auth token."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from aiohttp import web

from server.config import ServerConfig, is_loopback_host
from server.errors import ApiError, error_body

logger = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
TOKEN_COOKIE = "reelgraph_token"


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure becomes JSON with a message; unexpected exceptions are logged, never shown as a trace page."""
    try:
        return await handler(request)
    except ApiError as exc:
        return exc.response()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        error_type = (exc.reason or "error").lower().replace(" ", "_")
        message = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else exc.reason
        return web.json_response(error_body(error_type, message or error_type), status=exc.status)
    except Exception:
        logger.exception("unhandled error in %s %s", request.method, request.path)
        message = f"internal error while handling {request.method} {request.path}; the server log has the details"
        return web.json_response(error_body("internal_error", message), status=500)


def _host_name(value: str) -> str:
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def host_guard(config: ServerConfig) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """On a loopback server, refuse requests whose Host is not loopback (DNS-rebinding attacks from web pages)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if config.loopback_only and not is_loopback_host(_host_name(request.host)):
            raise ApiError(403, "forbidden_host", f"host {request.host!r} is not this machine; use 127.0.0.1")
        return await handler(request)

    return middleware


@web.middleware
async def same_origin_writes(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse state-changing requests and WebSocket upgrades that a foreign web page sent (CSRF, socket hijacking)."""
    is_upgrade = request.headers.get("Upgrade", "").lower() == "websocket"
    if request.method not in SAFE_METHODS or is_upgrade:
        origin = request.headers.get("Origin")
        if origin is not None:
            parts = urlsplit(origin)
            if origin == "null" or parts.netloc.lower() != request.host.lower():
                raise ApiError(403, "cross_origin_refused", f"requests from origin {origin!r} are not allowed")
        elif request.headers.get("Sec-Fetch-Site") == "cross-site":
            raise ApiError(403, "cross_origin_refused", "cross-site requests are not allowed")
    return await handler(request)


def token_auth(token: str) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """Require ``Authorization: Bearer TOKEN``, a ``token`` query parameter, or the cookie a token query sets.

    The query form exists for WebSockets and ``<img src>``; a browser that opened ``/?token=...`` gets an HttpOnly,
    SameSite=Strict cookie so the editor's own requests carry the token without scripts seeing it.
    """
    expected = token.encode()

    def matches(candidate: str | None) -> bool:
        return candidate is not None and hmac.compare_digest(candidate.encode(), expected)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        header = request.headers.get("Authorization", "")
        bearer = header[7:].strip() if header.lower().startswith("bearer ") else None
        from_query = request.query.get("token")
        if not (matches(bearer) or matches(from_query) or matches(request.cookies.get(TOKEN_COOKIE))):
            raise ApiError(401, "unauthorized", "this server needs its auth token: Authorization: Bearer TOKEN")
        response = await handler(request)
        if matches(from_query) and not response.prepared:
            response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="Strict", path="/")
        return response

    return middleware


def middlewares(config: ServerConfig) -> list[Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]]:
    """The guards in the order they run: errors outermost, then Host, origin and token checks."""
    chain = [json_errors, host_guard(config), same_origin_writes]
    if config.auth_token:
        chain.append(token_auth(config.auth_token))
    return chain
