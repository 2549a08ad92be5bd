"""Machine and model routes: ``/system_stats``, ``/models``, ``/embeddings``, ``/extensions``, ``/view_metadata``."""

from __future__ import annotations

import asyncio
import os

from aiohttp import web

from models.folders import ModelFolders, UnknownModelFolderError, UnsafeModelPathError
from models.metadata import ModelFileError, read_safetensors_header
from server.errors import ApiError, bad_request
from server.keys import MODEL_FOLDERS, SYSTEM_INFO, WEB_ROOT

routes = web.RouteTableDef()

SAFETENSORS_EXTENSIONS = (".safetensors", ".sft")


@routes.get("/system_stats")
async def system_stats(request: web.Request) -> web.Response:
    return web.json_response(await request.app[SYSTEM_INFO].stats())


@routes.get("/models")
async def model_folders(request: web.Request) -> web.Response:
    return web.json_response(list(request.app[MODEL_FOLDERS].keys()))


@routes.get("/models/{folder}")
async def model_files(request: web.Request) -> web.Response:
    return web.json_response(await _list_files(request.app[MODEL_FOLDERS], request.match_info["folder"]))


@routes.get("/embeddings")
async def embeddings(request: web.Request) -> web.Response:
    names = await _list_files(request.app[MODEL_FOLDERS], "embeddings")
    return web.json_response([os.path.splitext(name)[0] for name in names])


@routes.get("/extensions")
async def extensions(request: web.Request) -> web.Response:
    """The editor extensions' scripts as URL paths (``/extensions/...js``), which the web-file route serves."""
    web_root = request.app[WEB_ROOT]
    folder = web_root / "extensions"
    scripts = sorted(p.relative_to(web_root).as_posix() for p in folder.rglob("*.js") if p.is_file())
    return web.json_response([f"/{script}" for script in scripts])


@routes.get("/view_metadata/{folder}")
async def view_metadata(request: web.Request) -> web.Response:
    """The ``__metadata__`` of a safetensors file's header (training info, trigger words, ...)."""
    folder = request.match_info["folder"]
    filename = request.query.get("filename", "")
    if not filename:
        raise bad_request("give the model file as ?filename=NAME", "missing_filename")
    folders = request.app[MODEL_FOLDERS]
    try:
        path = folders.resolve(folder, filename)
    except UnknownModelFolderError as exc:
        raise ApiError(404, "unknown_model_folder", str(exc)) from None
    except UnsafeModelPathError as exc:
        raise ApiError(403, "forbidden_path", str(exc)) from None
    if not filename.lower().endswith(SAFETENSORS_EXTENSIONS):
        raise bad_request(
            f"{filename!r} is not a safetensors file; only .safetensors/.sft carry metadata", "not_safetensors"
        )
    if not path.is_file():
        raise ApiError(404, "not_found", f"no model file {filename!r} in the {folder!r} folder")
    try:
        header = await asyncio.to_thread(read_safetensors_header, path)
    except ModelFileError as exc:
        raise bad_request(f"{filename!r} is not a valid safetensors file: {exc.reason}", "not_safetensors") from None
    metadata = header.metadata
    if not metadata:
        raise ApiError(404, "no_metadata", f"{filename!r} has no __metadata__ in its header")
    return web.json_response(metadata)


async def _list_files(folders: ModelFolders, key: str) -> list[str]:
    try:
        return await asyncio.to_thread(folders.list_files, key)
    except UnknownModelFolderError as exc:
        raise ApiError(404, "unknown_model_folder", str(exc)) from None
