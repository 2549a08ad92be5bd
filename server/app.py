"""The aiohttp application factory and ``serve``: routes per area, guards, and the prompt worker's lifecycle."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from aiohttp import web

from app.config import REPO_ROOT, AppConfig
from app.engine import Engine, build_engine
from server import (
    check_routes,
    download_routes,
    editor_routes,
    file_routes,
    model_routes,
    node_routes,
    prompt_routes,
    system_routes,
    userdata_routes,
    workflow_routes,
    ws_routes,
)
from server.config import ServerConfig
from server.downloads import DOWNLOAD_EVENT, ModelDownloadService
from server.keys import (
    DOWNLOADS,
    ENGINE,
    LIBRARY_ROOT,
    MODEL_FOLDERS,
    RUNTIME,
    SERVER_CONFIG,
    SYSTEM_INFO,
    TEMPLATES_ROOT,
    WEB_ROOT,
)
from server.runtime import ServerRuntime
from server.security import middlewares
from server.store import StoreError
from server.system_info import SystemInfo

logger = logging.getLogger(__name__)

API_PREFIX = "/api"
LITEGRAPH_DIST = REPO_ROOT / "node_modules" / "@comfyorg" / "litegraph" / "dist"
ROUTE_MODULES = (
    node_routes,
    prompt_routes,
    file_routes,
    system_routes,
    model_routes,
    check_routes,
    download_routes,
    userdata_routes,
    workflow_routes,
    ws_routes,
    editor_routes,
)


def create_app(
    engine: Engine,
    server_config: ServerConfig,
    web_root: Path = REPO_ROOT / "web",
    library_root: Path = LITEGRAPH_DIST,
    templates_root: Path = REPO_ROOT / "workflows",
) -> web.Application:
    """Build the application; every API route is served at ``/x`` and ``/api/x`` like ComfyUI.

    Args:
        web_root: the editor's own files; library_root: the canvas library's ``dist/``; templates_root: the
            shipped workflows the editor offers as templates.
    """
    server_config.check()
    app = web.Application(middlewares=middlewares(server_config), client_max_size=server_config.max_body_bytes)
    app[ENGINE] = engine
    app[MODEL_FOLDERS] = engine.config.model_folders
    app[SYSTEM_INFO] = SystemInfo()
    app[SERVER_CONFIG] = server_config
    app[WEB_ROOT] = web_root
    app[LIBRARY_ROOT] = library_root
    app[TEMPLATES_ROOT] = templates_root
    runtime = ServerRuntime(engine, server_config)
    app[RUNTIME] = runtime
    app.cleanup_ctx.append(runtime.lifecycle)
    downloads = ModelDownloadService(
        engine.config.model_folders, lambda data: runtime.hub.publish(DOWNLOAD_EVENT, data, None)
    )
    app[DOWNLOADS] = downloads
    app.on_shutdown.append(lambda _: _stop_downloads(downloads))
    for module in ROUTE_MODULES:
        for route in module.routes:
            assert isinstance(route, web.RouteDef)
            app.router.add_route(route.method, route.path, route.handler)
            app.router.add_route(route.method, API_PREFIX + route.path, route.handler)
    editor_routes.add_static_routes(app)
    return app


async def _stop_downloads(downloads: ModelDownloadService) -> None:
    downloads.stop()  # the running job stops after its current file


def serve(config: AppConfig, server_config: ServerConfig, engine: Engine | None = None) -> int:
    """Run the server until Ctrl-C; ``engine`` defaults to one with the built-in nodes. Returns the exit code."""
    engine = engine or build_engine(config)
    app = create_app(engine, server_config)
    host = server_config.host
    shown_host = f"[{host}]" if ":" in host else host
    url = f"http://{shown_host}:{server_config.port}/"

    def announce(_: str) -> None:  # run_app calls this once the port is bound and the queue has resumed
        print(f"Reelgraph is running at {url} (Ctrl-C to stop)", flush=True)

    try:
        web.run_app(app, host=host, port=server_config.port, print=announce, access_log=None)
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(
            f"error: cannot listen on {host}:{server_config.port}: {exc.strerror or exc}; try --port", file=sys.stderr
        )
        return 1
    return 0
