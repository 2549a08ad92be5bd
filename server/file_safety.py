"""How the server hands out users' files safely: names that stay inside their folder, types that cannot run script."""

from __future__ import annotations

import mimetypes
from pathlib import Path

from graph.safe_paths import UnsafePathError, resolve_inside
from server.errors import ApiError

OCTET_STREAM = "application/octet-stream"
SCRIPTABLE_TYPES = frozenset(
    {
        "text/html",
        "application/xhtml+xml",
        "image/svg+xml",
        "text/xml",
        "application/xml",
        "text/javascript",
        "application/javascript",
        "text/css",
    }
)
"""Types a browser would render or run in the server's origin; they are served as plain downloads."""


def resolve_or_403(root: Path, *parts: str, what: str) -> Path:
    """``resolve_inside`` for a request: a name that would leave ``root`` is a 403 ``forbidden_path``."""
    try:
        return resolve_inside(root, *parts, what=what)
    except UnsafePathError as exc:
        raise ApiError(403, "forbidden_path", str(exc)) from None


def download_content_type(name: str) -> str:
    """The Content-Type to serve ``name`` with: its guessed type, unless a browser could run it."""
    content_type = mimetypes.guess_type(name)[0] or OCTET_STREAM
    return OCTET_STREAM if content_type in SCRIPTABLE_TYPES else content_type
