"""The aiohttp application factory and ``serve``.

So far it serves the editor page and the node catalogue; the full ComfyUI-compatible API (prompt queue, history,
WebSocket events, uploads) is the server issue's work.
"""

from __future__ import annotations

import logging
from pathlib import Path

from aiohttp import web

from app.config import REPO_ROOT, AppConfig
from app.engine import Engine, build_engine
from server import node_routes
from server.keys import ENGINE, WEB_ROOT

logger = logging.getLogger(__name__)

API_PREFIX = "/api"


async def _index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(request.app[WEB_ROOT] / "index.html")


def create_app(engine: Engine, web_root: Path = REPO_ROOT / "web") -> web.Application:
    """Build the application; every API route is served at ``/x`` and ``/api/x`` like ComfyUI."""
    app = web.Application()
    app[ENGINE] = engine
    app[WEB_ROOT] = web_root
    app.router.add_get("/", _index)
    for route in node_routes.routes:
        assert isinstance(route, web.RouteDef)
        app.router.add_route(route.method, route.path, route.handler)
        app.router.add_route(route.method, API_PREFIX + route.path, route.handler)
    app.router.add_static("/", web_root, show_index=False, follow_symlinks=False)
    return app


def serve(config: AppConfig, host: str, port: int) -> int:
    """Run the server until Ctrl-C."""
    engine = build_engine(config)
    app = create_app(engine)
    shown_host = f"[{host}]" if ":" in host else host
    print(f"Reelgraph is running at http://{shown_host}:{port}/ (Ctrl-C to stop)", flush=True)
    web.run_app(app, host=host, port=port, print=None, access_log=None)
    return 0
