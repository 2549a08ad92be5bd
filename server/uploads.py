"""Upload mechanics: stream the multipart body under a size cap, check the media by decoding it, store it atomically.

The image part may arrive before the ``type`` and ``subfolder`` fields (ComfyUI's editor sends it first), so it is
streamed to a hidden part file in the temp folder and renamed into place once the destination is known.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from aiohttp import BodyPartReader, MultipartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from nodes.media.errors import MediaError
from nodes.media.sniff import MediaKind, sniff_media
from server.config import MIB
from server.errors import ApiError, bad_request

CHUNK_BYTES = 256 * 1024
FIELDS_LIMIT_BYTES = 64 * 1024
MAX_NAME_BYTES = 255
PART_PREFIX = ".upload-"
PART_SUFFIX = ".part"


@dataclass(frozen=True)
class ReceivedFile:
    """The uploaded file as streamed to a part file: the client's name for it, where it lies, its size and sha256."""

    client_name: str
    path: Path
    size: int
    sha256: str


@dataclass(frozen=True)
class UploadForm:
    """The text fields of an upload form and its file (None when the form had none)."""

    fields: dict[str, str]
    file: ReceivedFile | None


async def receive_form(
    request: web.Request, scratch_dir: Path, max_bytes: int, file_field: str = "image"
) -> UploadForm:
    """Read a multipart form, streaming its ``file_field`` part into ``scratch_dir``; 413 past ``max_bytes``.

    On any failure the part file is deleted; on success the caller owns it.
    """
    if request.content_type != "multipart/form-data":
        raise bad_request(f"send the upload as multipart/form-data, not {request.content_type!r}")
    try:
        reader = await request.multipart()
    except ValueError as exc:
        raise bad_request(f"the multipart body is malformed: {exc}") from None
    fields: dict[str, str] = {}
    received: ReceivedFile | None = None
    fields_budget = FIELDS_LIMIT_BYTES
    try:
        while (part := await _next_part(reader)) is not None:
            if not isinstance(part, BodyPartReader):
                raise bad_request("nested multipart bodies are not supported")
            if part.name == file_field:
                if received is not None:
                    raise bad_request(f"send one {file_field!r} file per upload")
                if part.filename is None:
                    raise bad_request(f"the {file_field!r} field must be a file with a filename")
                received = await _stream_to_part_file(part, part.filename, scratch_dir, max_bytes)
            else:
                raw = await _read_capped(part, fields_budget)
                fields_budget -= len(raw)
                try:
                    fields[part.name or ""] = raw.decode("utf-8")
                except UnicodeDecodeError:
                    raise bad_request(f"form field {part.name!r} is not UTF-8 text") from None
    except BaseException:
        if received is not None:
            received.path.unlink(missing_ok=True)
        raise
    return UploadForm(fields, received)


async def _next_part(reader: MultipartReader) -> MultipartReader | BodyPartReader | None:
    try:
        return await reader.next()
    except (ValueError, HttpProcessingError) as exc:
        raise bad_request(f"the multipart body is malformed: {exc}") from None


async def _read_capped(part: BodyPartReader, budget: int) -> bytes:
    data = bytearray()
    while chunk := await part.read_chunk(CHUNK_BYTES):
        data += chunk
        if len(data) > budget:
            raise bad_request(f"the form's text fields are over {FIELDS_LIMIT_BYTES} bytes in all")
    return bytes(data)


async def _stream_to_part_file(part: BodyPartReader, client_name: str, folder: Path, max_bytes: int) -> ReceivedFile:
    folder.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=folder, prefix=PART_PREFIX, suffix=PART_SUFFIX)
    path = Path(name)
    digest = hashlib.sha256()
    size = 0
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := await part.read_chunk(CHUNK_BYTES):
                size += len(chunk)
                if size > max_bytes:
                    raise ApiError(
                        413,
                        "upload_too_large",
                        f"the uploaded file is over this server's limit of {max_bytes} bytes "
                        f"({max_bytes / MIB:.2f} MB, set with --max-upload-mb)",
                    )
                digest.update(chunk)
                out.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return ReceivedFile(client_name, path, size, digest.hexdigest())


def upload_name(client_name: str) -> str:
    """The name to store an upload under: the last ``/`` component of the client's name, if it is a sensible one."""
    name = client_name.rsplit("/", 1)[-1]
    if not name:
        raise bad_request("the uploaded file has no name", "invalid_filename")
    if name.startswith("."):
        raise bad_request(f"file name {name!r} starts with '.'; hidden names are not accepted", "invalid_filename")
    if any(ord(char) < 32 or ord(char) == 127 for char in name):
        raise bad_request(f"file name {name!r} contains control characters", "invalid_filename")
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise bad_request(f"file name is over {MAX_NAME_BYTES} bytes", "invalid_filename")
    return name


def check_media(path: Path, name: str) -> MediaKind:
    """What ``path`` holds (image, video or audio, checked by decoding); a 400 naming ``name`` otherwise."""
    try:
        return sniff_media(path)
    except MediaError as exc:
        raise bad_request(f"{name!r} {exc.reason}", "invalid_media") from None


def store_upload(received: ReceivedFile, folder: Path, name: str, overwrite: bool) -> str:
    """Move the upload into ``folder`` and return the name it got.

    Without ``overwrite``, a taken name is reused when its file has the same bytes, else ComfyUI's ``name (1).ext``,
    ``name (2).ext``, ... is tried; a name is claimed with an exclusive create, so concurrent uploads never collide.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise bad_request(f"the upload's subfolder {folder.name!r} is a file, not a folder") from None
    if overwrite:
        _move_into_place(received.path, folder / name)
        return name
    stem, suffix = os.path.splitext(name)
    candidate, index = name, 1
    while True:
        target = folder / candidate
        try:
            target.open("xb").close()
        except FileExistsError:
            if _has_bytes(target, received):
                return candidate
            candidate, index = f"{stem} ({index}){suffix}", index + 1
            continue
        try:
            _move_into_place(received.path, target)
        except BaseException:
            target.unlink(missing_ok=True)
            raise
        return candidate


def _has_bytes(path: Path, received: ReceivedFile) -> bool:
    """True when ``path`` is a regular file (not a symlink) holding exactly the received bytes."""
    info = path.lstat()
    if not stat.S_ISREG(info.st_mode) or info.st_size != received.size:
        return False
    with path.open("rb") as existing:
        return hashlib.file_digest(existing, "sha256").hexdigest() == received.sha256


def _move_into_place(source: Path, target: Path) -> None:
    """Atomically replace ``target`` with ``source``; across filesystems, copy to a part file beside it first."""
    try:
        os.replace(source, target)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        fd, name = tempfile.mkstemp(dir=target.parent, prefix=PART_PREFIX, suffix=PART_SUFFIX)
        os.close(fd)
        try:
            shutil.copyfile(source, name)
            os.replace(name, target)
        except BaseException:
            Path(name).unlink(missing_ok=True)
            raise
