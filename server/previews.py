"""Turn a node's progress preview into ComfyUI's binary WebSocket frame (event 1, format JPEG or PNG)."""

from __future__ import annotations

import io
import struct
from typing import Any

import numpy as np
from PIL import Image

PREVIEW_IMAGE_EVENT = 1
FORMAT_CODES = {"JPEG": 1, "PNG": 2}
DEFAULT_MAX_SIZE = 512
JPEG_QUALITY = 90


def _to_pil(image: Any) -> Image.Image:
    """A PIL image from a PIL image or an ``[H, W, C]`` / ``[1, H, W, C]`` array or tensor of 0..1 floats."""
    if isinstance(image, Image.Image):
        return image
    array = np.asarray(image.detach().cpu() if hasattr(image, "detach") else image)
    if array.ndim == 4:
        array = array[0]
    if array.ndim != 3 or array.shape[-1] not in (1, 3, 4):
        raise ValueError(f"a preview must be an image, got an array of shape {array.shape}")
    if array.dtype != np.uint8:
        array = (np.clip(array.astype(np.float32), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)


def preview_frame(preview: Any) -> bytes:
    """Encode ``preview`` as the binary frame the editor shows.

    ``preview`` is a PIL image, an image array/tensor, or ComfyUI's ``(format, image, max_size)`` tuple.
    """
    fmt, image, max_size = "JPEG", preview, DEFAULT_MAX_SIZE
    if isinstance(preview, tuple) and len(preview) == 3:
        fmt, image, max_size = str(preview[0]).upper(), preview[1], int(preview[2] or DEFAULT_MAX_SIZE)
    if fmt not in FORMAT_CODES:
        raise ValueError(f"preview format must be JPEG or PNG, got {fmt!r}")
    picture = _to_pil(image)
    if max(picture.size) > max_size:
        picture = picture.copy()
        picture.thumbnail((max_size, max_size), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    if fmt == "JPEG":
        picture.convert("RGB").save(buffer, format="JPEG", quality=JPEG_QUALITY)
    else:
        picture.save(buffer, format="PNG", compress_level=1)
    return struct.pack(">II", PREVIEW_IMAGE_EVENT, FORMAT_CODES[fmt]) + buffer.getvalue()
