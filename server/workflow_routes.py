"""Workflows embedded in media files: ``POST /workflow/extract`` for a dropped file, ``GET`` for a file on the server.

The editor uses these for drag and drop: a PNG, WebP, GIF, APNG, mp4 or webm that Reelgraph or ComfyUI saved
carries its API prompt and editor workflow, and dropping it restores the graph.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from aiohttp import web

from nodes.folders import ANNOTATIONS
from nodes.media.errors import MediaError
from nodes.media.provenance import read_embedded_workflow
from server.errors import ApiError, bad_request
from server.file_safety import resolve_or_403
from server.keys import ENGINE, SERVER_CONFIG
from server.uploads import receive_form

routes = web.RouteTableDef()

FILE_FIELD = "file"


async def _extract(path: Path, shown_name: str) -> dict[str, Any]:
    try:
        found = await asyncio.to_thread(read_embedded_workflow, path)
    except MediaError as exc:
        raise bad_request(f"{shown_name!r} {exc.reason}", "invalid_media") from None
    return {"prompt": found.prompt, "workflow": found.workflow, "source": found.source}


@routes.post("/workflow/extract")
async def extract_from_upload(request: web.Request) -> web.Response:
    """The embedded ``prompt`` and ``workflow`` (null when absent) of the multipart ``file``; nothing is stored."""
    folders = request.app[ENGINE].config.folders
    form = await receive_form(request, folders.temp_dir, request.app[SERVER_CONFIG].max_upload_bytes, FILE_FIELD)
    if form.file is None:
        raise bad_request(f"send the media file as the multipart file field {FILE_FIELD!r}", "missing_file")
    try:
        return web.json_response(await _extract(form.file.path, form.file.client_name))
    finally:
        form.file.path.unlink(missing_ok=True)


@routes.get("/workflow/extract")
async def extract_from_folder(request: web.Request) -> web.Response:
    """The embedded ``prompt`` and ``workflow`` of ``filename`` in the ``type`` folder (``/view``'s parameters)."""
    folders = request.app[ENGINE].config.folders
    filename = request.query.get("filename", "")
    if not filename:
        raise bad_request("give the file: /workflow/extract?filename=NAME&type=output|input|temp&subfolder=FOLDER")
    folder_type = request.query.get("type") or "output"
    if folder_type not in ANNOTATIONS:
        raise bad_request(f"unknown type {folder_type!r}; use one of {', '.join(ANNOTATIONS)}", "invalid_type")
    root = folders.by_type(folder_type)
    subfolder = request.query.get("subfolder", "")
    path = resolve_or_403(root, subfolder, filename, what="file")
    if not path.is_file():
        raise ApiError(404, "not_found", f"no file {filename!r} in the {folder_type} folder")
    return web.json_response(await _extract(path, filename))
