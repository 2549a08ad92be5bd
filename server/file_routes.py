"""ComfyUI's file routes: ``GET /view`` (with ``preview`` and ``channel``) and ``POST /upload/image``.

Every user-given folder and name goes through ``resolve_inside``: ``..``, absolute paths, backslashes and symlinks that
lead out of the output, input or temp folder are refused with 403.
"""

from __future__ import annotations

import asyncio
import logging
from io import BytesIO
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from aiohttp import hdrs, web
from PIL import Image

from server.errors import ApiError, bad_request
from server.file_safety import download_content_type, resolve_or_403
from server.keys import ENGINE, SERVER_CONFIG
from server.uploads import check_media, receive_form, store_upload, upload_name

logger = logging.getLogger(__name__)

routes = web.RouteTableDef()

FOLDER_TYPES = ("output", "input", "temp")
CHANNELS = ("rgba", "rgb", "a")
PREVIEW_FORMATS = ("webp", "jpeg")
DEFAULT_PREVIEW_QUALITY = 90


def _folder(request: web.Request, folder_type: str) -> Path:
    """The folder a ComfyUI ``type`` names; 400 for anything else."""
    if folder_type not in FOLDER_TYPES:
        raise bad_request(f"unknown type {folder_type!r}; use one of {', '.join(FOLDER_TYPES)}", "invalid_type")
    return request.app[ENGINE].config.folders.by_type(folder_type)


def _split_annotation(filename: str, folder_type: str) -> tuple[str, str]:
    """ComfyUI's annotated names: ``"x.png [input]"`` means ``x.png`` in the input folder, whatever ``type`` says."""
    for kind in FOLDER_TYPES:
        if filename.endswith(f" [{kind}]"):
            return filename[: -len(kind) - 3], kind
    return filename, folder_type


def _content_disposition(name: str) -> str:
    """ComfyUI's ``filename="name"``; names a quoted string cannot carry also get an RFC 6266 ``filename*``."""
    if all(char.isascii() and char.isprintable() and char not in '"\\' for char in name):
        return f'filename="{name}"'
    fallback = "".join(char if char.isascii() and char.isprintable() and char not in '"\\' else "_" for char in name)
    return f"filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def _preview_format(preview: str, channel: str) -> tuple[str, int]:
    """``preview=webp;90`` as ComfyUI reads it: webp unless jpeg was asked for without alpha; quality 90 by default."""
    parts = preview.split(";")
    image_format = parts[0] if parts[0] in PREVIEW_FORMATS and "a" not in channel else "webp"
    quality = min(int(parts[-1]), 100) if parts[-1].isdigit() else DEFAULT_PREVIEW_QUALITY
    return image_format, quality


def _decoded(path: Path) -> Image.Image:
    try:
        with Image.open(path) as image:
            image.load()
            return image
    except Exception as exc:  # Pillow's decoders raise many types for a broken or foreign file
        raise bad_request(f"{path.name!r} is not an image, so it has no preview or channels ({exc})") from None


def _encode(image: Image.Image, image_format: str, **options: int) -> bytes:
    buffer = BytesIO()
    image.save(buffer, format=image_format, **options)
    return buffer.getvalue()


def _preview(path: Path, image_format: str, quality: int, drop_alpha: bool) -> bytes:
    """The image re-encoded as ``image_format`` at ``quality`` (RGB for JPEG or when alpha is dropped)."""
    image = _decoded(path)
    if drop_alpha or image_format == "jpeg":
        image = image.convert("RGB")
    return _encode(image, image_format, quality=quality)


def _channel_png(path: Path, channel: str) -> bytes:
    """A PNG of the colour (``rgb``) or of the alpha (``a``: black RGBA carrying the alpha, as ComfyUI sends it)."""
    image = _decoded(path)
    if channel == "rgb":
        return _encode(image.convert("RGB"), "png")
    alpha_image = Image.new("RGBA", image.size)
    alpha_image.putalpha(image.convert("RGBA").getchannel("A"))
    return _encode(alpha_image, "png")


@routes.get("/view")
async def view(request: web.Request) -> web.StreamResponse:
    """A file of the output, input or temp folder, as-is or re-encoded (``preview=webp;90``, ``channel=rgb|a``)."""
    query = request.query
    filename, folder_type = _split_annotation(query.get("filename", ""), query.get("type") or "output")
    if not filename:
        raise bad_request("give the file to show: /view?filename=NAME&type=output|input|temp&subfolder=FOLDER")
    subfolder = query.get("subfolder", "")
    path = resolve_or_403(_folder(request, folder_type), subfolder, filename, what="file")
    if not path.is_file():
        shown = "/".join(part for part in (subfolder, filename) if part)
        raise ApiError(404, "not_found", f"no file {shown!r} in the {folder_type} folder")
    channel = query.get("channel", "")
    if channel and channel not in CHANNELS:
        raise bad_request(f"unknown channel {channel!r}; use one of {', '.join(CHANNELS)}")
    name = PurePosixPath(filename).name
    headers = {hdrs.CONTENT_DISPOSITION: _content_disposition(name), hdrs.X_CONTENT_TYPE_OPTIONS: "nosniff"}
    if "preview" in query:
        image_format, quality = _preview_format(query["preview"], channel)
        body = await asyncio.to_thread(_preview, path, image_format, quality, channel == "rgb")
        return web.Response(body=body, content_type=f"image/{image_format}", headers=headers)
    if channel in ("rgb", "a"):
        body = await asyncio.to_thread(_channel_png, path, channel)
        return web.Response(body=body, content_type="image/png", headers=headers)
    return web.FileResponse(path, headers={**headers, hdrs.CONTENT_TYPE: download_content_type(name)})


@routes.post("/upload/image")
async def upload_image(request: web.Request) -> web.Response:
    """Store a multipart ``image`` (an image, video or audio file, as ComfyUI's editor uploads all three here) in
    ``type``/``subfolder``; answers ComfyUI's ``{"name", "subfolder", "type"}``."""
    folders = request.app[ENGINE].config.folders
    form = await receive_form(request, folders.temp_dir, request.app[SERVER_CONFIG].max_upload_bytes)
    if form.file is None:
        raise bad_request("send the image as the multipart file field 'image'", "missing_image")
    received = form.file
    try:
        folder_type = form.fields.get("type") or "input"
        subfolder = form.fields.get("subfolder", "")
        root = _folder(request, folder_type)
        name = upload_name(received.client_name)
        folder = resolve_or_403(root, subfolder, what="subfolder")
        resolve_or_403(root, subfolder, name, what="file")
        media = await asyncio.to_thread(check_media, received.path, name)
        overwrite = form.fields.get("overwrite") in ("true", "1")
        stored = await asyncio.to_thread(store_upload, received, folder, name, overwrite)
    finally:
        received.path.unlink(missing_ok=True)
    logger.info(
        "stored upload %r (%s %s, %d bytes) in %s/%s",
        stored,
        media.kind,
        media.format,
        received.size,
        folder_type,
        subfolder,
    )
    return web.json_response({"name": stored, "subfolder": subfolder, "type": folder_type})
