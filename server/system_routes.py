"""Machine and model routes: ``/system_stats``, ``/models``, ``/embeddings``, ``/extensions``, ``/view_metadata``."""

from __future__ import annotations

import asyncio
import json
import os
import struct
from pathlib import Path
from typing import Any

from aiohttp import web

from models.folders import ModelFolders, UnknownModelFolderError, UnsafeModelPathError
from server.errors import ApiError, bad_request
from server.keys import MODEL_FOLDERS, SYSTEM_INFO, WEB_ROOT

routes = web.RouteTableDef()

MAX_HEADER_BYTES = 100 * 1024 * 1024
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
    header = await asyncio.to_thread(_read_safetensors_header, path, filename)
    metadata = header.get("__metadata__")
    if metadata is None:
        raise ApiError(404, "no_metadata", f"{filename!r} has no __metadata__ in its header")
    if not isinstance(metadata, dict):
        raise bad_request(f"{filename!r} has a __metadata__ that is not a JSON object", "not_safetensors")
    return web.json_response(metadata)


async def _list_files(folders: ModelFolders, key: str) -> list[str]:
    try:
        return await asyncio.to_thread(folders.list_files, key)
    except UnknownModelFolderError as exc:
        raise ApiError(404, "unknown_model_folder", str(exc)) from None


def _read_safetensors_header(path: Path, shown: str) -> dict[str, Any]:
    """The header of a safetensors file: an 8-byte little-endian length, then that many bytes of JSON."""
    with path.open("rb") as file:
        prefix = file.read(8)
        if len(prefix) < 8:
            raise _not_safetensors(shown, "it is shorter than the 8-byte header length")
        (length,) = struct.unpack("<Q", prefix)
        if length > MAX_HEADER_BYTES:
            raise _not_safetensors(shown, f"its header claims {length} bytes, over the {MAX_HEADER_BYTES} allowed")
        raw = file.read(length)
    if len(raw) < length:
        raise _not_safetensors(shown, f"its header claims {length} bytes but the file ends after {len(raw)}")
    try:
        header = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise _not_safetensors(shown, "its header is not JSON") from None
    if not isinstance(header, dict):
        raise _not_safetensors(shown, "its header is not a JSON object")
    return header


def _not_safetensors(shown: str, reason: str) -> ApiError:
    return bad_request(f"{shown!r} is not a valid safetensors file: {reason}", "not_safetensors")
