"""What kind of media a file is, checked by decoding a little of it (uploads use this; no torch here)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
from PIL import Image, UnidentifiedImageError

from nodes.media.errors import MediaError


@dataclass(frozen=True)
class MediaKind:
    """``kind`` is ``image``, ``video`` or ``audio``; ``format`` the Pillow or FFmpeg format name."""

    kind: str
    format: str


def sniff_media(path: Path) -> MediaKind:
    """Identify an image (Pillow), video or audio file (PyAV, one frame decoded); ``MediaError`` for anything else."""
    image_format = _image_format(path)
    if image_format is not None:
        return MediaKind("image", image_format)
    try:
        with av.open(str(path)) as container:
            stream = next(iter(container.streams.video), None) or next(iter(container.streams.audio), None)
            if stream is None:
                raise MediaError(path, "has no video or audio stream")
            for _frame in container.decode(stream):
                kind = "video" if stream.type == "video" else "audio"
                return MediaKind(kind, container.format.name)
    except MediaError:
        raise
    except (av.FFmpegError, OSError, ValueError, EOFError) as exc:
        raise MediaError(path, f"is not an image, video or audio file this server can read ({exc})") from None
    raise MediaError(path, "has no frames that decode (empty or truncated)")


def _image_format(path: Path) -> str | None:
    """Pillow's format name for an image file; None when Pillow does not know the format; ``MediaError`` when it
    knows it but the file is broken."""
    try:
        with Image.open(path) as image:
            image_format = image.format
    except UnidentifiedImageError:
        return None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise MediaError(path, f"cannot be read ({exc})") from None
    try:
        with Image.open(path) as image:
            image.verify()
        with Image.open(path) as image:
            image.load()
    except Exception as exc:  # Pillow's decoders raise many types for a broken file
        raise MediaError(path, f"is a broken {image_format} image ({exc})") from None
    return image_format
