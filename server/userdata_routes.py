"""ComfyUI's user data API: each user's saved workflows and settings under ``<data_dir>/users/<user>/``.

The user comes from the ``comfy-user`` header (``default`` without one). File names are relative paths, URL-encoded
into one path segment (``workflows%2Fa.json``); anything leading outside the user's folder is refused with a 403.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from aiohttp import web

from server.errors import ApiError, bad_request
from server.file_safety import download_content_type, resolve_or_403
from server.keys import SERVER_CONFIG

routes = web.RouteTableDef()

USER_HEADER = "comfy-user"
DEFAULT_USER = "default"
USER_NAME = re.compile(r"[A-Za-z0-9_-]{1,128}")
INLINE_FILES = frozenset({"user.css"})  # the editor links the user's stylesheet; everything else is a download


@routes.get("/users")
async def users(request: web.Request) -> web.Response:
    """ComfyUI's single-user answer: data is stored on the server, ``migrated`` once the user's folder exists."""
    return web.json_response({"storage": "server", "migrated": _user_root(request).is_dir()})


@routes.get("/userdata")
async def list_userdata(request: web.Request) -> web.Response:
    """Files in ``?dir=`` (``recurse``, ``full_info`` and ``split`` are ``true``/other, as in ComfyUI)."""
    directory = request.query.get("dir", "")
    if not directory:
        raise bad_request("give the folder to list as ?dir=NAME (for example workflows)", "missing_dir")
    root = _user_root(request)
    folder = resolve_or_403(root, directory, what="folder")
    if not folder.exists():
        raise ApiError(404, "not_found", f"no folder {directory!r} in the user's data")
    recurse, full_info, split = (
        request.query.get(flag, "").lower() == "true" for flag in ("recurse", "full_info", "split")
    )
    names = await asyncio.to_thread(_list_files, folder, root.resolve(), recurse)
    if full_info:
        return web.json_response([_file_info(folder / name, folder) for name in names])
    if split:
        return web.json_response([[name, *name.split("/")] for name in names])
    return web.json_response(names)


@routes.get("/userdata/{file}")
async def get_userdata(request: web.Request) -> web.FileResponse:
    """A file's bytes, as a download (never rendered inline, so saved markup cannot run in the editor's origin)."""
    root, path = _user_file(request, "file")
    if not path.is_file():
        raise ApiError(404, "not_found", f"no file {request.match_info['file']!r} in the user's data")
    inline = path.relative_to(root).as_posix() in INLINE_FILES
    content_type = "text/css" if inline else download_content_type(path.name)
    headers = {
        "Content-Type": content_type,
        "X-Content-Type-Options": "nosniff",
        "Content-Disposition": "inline" if inline else "attachment",
    }
    return web.FileResponse(path, headers=headers)


@routes.post("/userdata/{file}")
async def post_userdata(request: web.Request) -> web.Response:
    """Save the raw body (``?overwrite=false``: 409 if it exists); answers the path, or its info with ``full_info``."""
    root, path = _user_file(request, "file")
    overwrite, full_info = _write_flags(request)
    name = request.match_info["file"]
    if path.is_dir():
        raise bad_request(f"{name!r} is a folder; give a file name", "invalid_filename")
    if not overwrite and path.exists():
        raise ApiError(409, "file_exists", f"{name!r} already exists; send overwrite=true to replace it")
    body = await request.read()
    try:
        await asyncio.to_thread(_write_atomic, path, body)
    except OSError as exc:
        raise bad_request(f"cannot save {name!r}: {exc.strerror or exc}", "invalid_filename") from None
    return web.json_response(_saved(path, root, full_info))


@routes.delete("/userdata/{file}")
async def delete_userdata(request: web.Request) -> web.Response:
    _root, path = _user_file(request, "file")
    name = request.match_info["file"]
    if path.is_dir():
        raise bad_request(f"{name!r} is a folder; only files can be deleted", "invalid_filename")
    if not path.is_file():
        raise ApiError(404, "not_found", f"no file {name!r} in the user's data")
    path.unlink()
    return web.Response(status=204)


@routes.post("/userdata/{file}/move/{dest}")
async def move_userdata(request: web.Request) -> web.Response:
    """Rename a file (``?overwrite=false``: 409 if the destination exists); answers like saving does."""
    root, source = _user_file(request, "file")
    _root, dest = _user_file(request, "dest")
    overwrite, full_info = _write_flags(request)
    if not source.is_file():
        raise ApiError(404, "not_found", f"no file {request.match_info['file']!r} in the user's data")
    if dest.is_dir():
        raise bad_request(f"{request.match_info['dest']!r} is a folder; give a file name", "invalid_filename")
    if not overwrite and dest.exists():
        raise ApiError(409, "file_exists", f"{request.match_info['dest']!r} already exists; send overwrite=true")
    try:
        await asyncio.to_thread(_move, source, dest)
    except OSError as exc:
        raise bad_request(
            f"cannot move to {request.match_info['dest']!r}: {exc.strerror or exc}", "invalid_filename"
        ) from None
    return web.json_response(_saved(dest, root, full_info))


def _user_root(request: web.Request) -> Path:
    """The requesting user's folder (which may not exist yet); a malformed user name is a 400."""
    user = request.headers.get(USER_HEADER, DEFAULT_USER)
    if not USER_NAME.fullmatch(user):
        raise bad_request(f"user {user!r} must be 1-128 letters, digits, '-' or '_'", "invalid_user")
    return request.app[SERVER_CONFIG].data_dir / "users" / user


def _user_file(request: web.Request, param: str) -> tuple[Path, Path]:
    """The user's real root and the file named by the route parameter ``param``, which must lie below it."""
    root = _user_root(request)
    path = resolve_or_403(root, request.match_info[param], what="file")
    root_real = root.resolve()
    if path == root_real:
        raise ApiError(403, "forbidden_path", f"file {request.match_info[param]!r} names the user's folder itself")
    return root_real, path


def _write_flags(request: web.Request) -> tuple[bool, bool]:
    """``overwrite`` (true unless ``false``) and ``full_info`` (false unless ``true``), ComfyUI's defaults."""
    return request.query.get("overwrite", "true") != "false", request.query.get("full_info", "").lower() == "true"


def _list_files(folder: Path, root: Path, recurse: bool) -> list[str]:
    """Sorted POSIX paths of the files in ``folder``; hidden entries and links leading outside ``root`` left out."""
    names = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [name for name in dirnames if not name.startswith(".")] if recurse else []
        for name in filenames:
            path = Path(dirpath) / name
            if not name.startswith(".") and path.is_file() and path.resolve().is_relative_to(root):
                names.append(path.relative_to(folder).as_posix())
    return sorted(names)


def _file_info(path: Path, relative_to: Path) -> dict[str, Any]:
    """ComfyUI's ``FileInfo``: the relative path, the size, and the times in milliseconds."""
    stat = path.stat()
    return {
        "path": path.relative_to(relative_to).as_posix(),
        "size": stat.st_size,
        "modified": int(stat.st_mtime * 1000),
        "created": int(stat.st_ctime * 1000),
    }


def _saved(path: Path, root: Path, full_info: bool) -> Any:
    return _file_info(path, root) if full_info else path.relative_to(root).as_posix()


def _write_atomic(path: Path, data: bytes) -> None:
    """Write through a hidden temporary file in the same folder, then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise


def _move(source: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(source, dest)
