"""Node catalogue routes: ``GET /object_info`` and ``GET /object_info/{node_class}``."""

from __future__ import annotations

from aiohttp import web

from server.keys import ENGINE

routes = web.RouteTableDef()


@routes.get("/object_info")
async def object_info(request: web.Request) -> web.Response:
    return web.json_response(request.app[ENGINE].registry.object_info())


@routes.get("/object_info/{node_class}")
async def object_info_for(request: web.Request) -> web.Response:
    node_class = request.match_info["node_class"]
    info = request.app[ENGINE].registry.object_info(node_class)
    return web.json_response(info)
