"""The browser editor's files: ``web/``, the canvas library from ``node_modules/``, and the shipped templates.

``GET /reelgraph/templates`` lists ``workflows/*.json``; ``GET /reelgraph/templates/{name}`` answers one of them as
an editor (UI-format) workflow, laying out API-format templates on the way.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from aiohttp import web

from graph.api_to_ui import api_to_ui
from graph.errors import GraphError
from graph.safe_paths import UnsafePathError, resolve_inside
from graph.workflow_file import load_workflow
from server.errors import ApiError
from server.keys import ENGINE, LIBRARY_ROOT, TEMPLATES_ROOT, WEB_ROOT

routes = web.RouteTableDef()

LIBRARY_URL = "/lib/litegraph"
SETUP_COMMAND = "./start.sh (or scripts/bootstrap.sh runtime, which runs npm ci)"
TEMPLATE_SUFFIX = ".json"


def _file_inside(root: Path, name: str) -> Path:
    """``name`` inside ``root`` as an existing file; escapes and unknown names are JSON 404s."""
    try:
        path = resolve_inside(root, name, what="file")
    except UnsafePathError as exc:
        raise ApiError(404, "not_found", str(exc)) from None
    if not path.is_file():
        raise ApiError(404, "not_found", f"no route or file {name!r}")
    return path


async def web_file(request: web.Request) -> web.FileResponse:
    """A file of the editor (``web/``); the bare path is ``index.html``."""
    return web.FileResponse(_file_inside(request.app[WEB_ROOT], request.match_info.get("path") or "index.html"))


async def library_file(request: web.Request) -> web.FileResponse:
    """A file of the canvas library's ``dist/``; a 500 naming the set-up command when it was never installed."""
    root = request.app[LIBRARY_ROOT]
    if not root.is_dir():
        raise ApiError(
            500,
            "editor_not_installed",
            f"the editor's canvas library is not installed ({root} is missing); run {SETUP_COMMAND}",
        )
    return web.FileResponse(_file_inside(root, request.match_info["path"]))


def _template_path(root: Path, name: str) -> Path:
    if not name.endswith(TEMPLATE_SUFFIX) or "/" in name:
        raise ApiError(404, "not_found", f"no template {name!r}; templates are the .json files listed by /templates")
    return _file_inside(root, name)


@routes.get("/reelgraph/templates")
async def list_templates(request: web.Request) -> web.Response:
    """The names of the shipped workflows, sorted."""
    root = request.app[TEMPLATES_ROOT]
    names = sorted(p.name for p in root.glob(f"*{TEMPLATE_SUFFIX}") if p.is_file()) if root.is_dir() else []
    return web.json_response({"templates": names})


@routes.get("/reelgraph/templates/{name}")
async def get_template(request: web.Request) -> web.Response:
    """One shipped workflow in the editor's UI format (API-format ones are laid out)."""
    path = _template_path(request.app[TEMPLATES_ROOT], request.match_info["name"])
    registry = request.app[ENGINE].registry

    def load() -> dict[str, Any]:
        loaded = load_workflow(path, registry)
        return loaded.ui if loaded.ui is not None else api_to_ui(loaded.api, registry)

    try:
        return web.json_response(await asyncio.to_thread(load))
    except GraphError as exc:
        raise ApiError(500, "invalid_template", f"template {path.name!r} cannot be read: {exc}") from None


def add_static_routes(app: web.Application) -> None:
    """The library and the editor's files; added last, since ``/{path}`` catches every other GET."""
    app.router.add_get(LIBRARY_URL + "/{path:.*}", library_file)
    app.router.add_get("/{path:.*}", web_file)
