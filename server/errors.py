"""JSON errors for every route: ComfyUI's ``{"error": {type, message, details, extra_info}}`` shape."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web


def error_body(error_type: str, message: str, details: str = "", extra_info: dict[str, Any] | None = None) -> dict:
    return {"error": {"type": error_type, "message": message, "details": details, "extra_info": extra_info or {}}}


class ApiError(Exception):
    """Raised by handlers; the error middleware turns it into a JSON response with ``status``."""

    def __init__(self, status: int, error_type: str, message: str, details: str = "", **body: Any) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message
        self.details = details
        self.body = body

    def response(self) -> web.Response:
        payload = error_body(self.error_type, self.message, self.details)
        payload.update(self.body)
        return web.json_response(payload, status=self.status)


def bad_request(message: str, error_type: str = "invalid_request", details: str = "") -> ApiError:
    return ApiError(400, error_type, message, details)


async def read_json_object(request: web.Request, *, allow_empty: bool = False) -> dict[str, Any]:
    """The request body as a JSON object; a clear 400 for anything else (413 comes from the size limit)."""
    raw = await request.read()
    if not raw.strip():
        if allow_empty:
            return {}
        raise bad_request("the request body is empty; send a JSON object")
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_request(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise bad_request(f"the request body must be a JSON object, got {type(value).__name__}")
    return value
