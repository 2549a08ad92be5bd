"""Workflows embedded in saved files: written into PNG/APNG, WebP and GIF files, read back from those and from videos.

Conventions match ComfyUI and VideoHelperSuite: PNG text chunks ``prompt``/``workflow``; WebP EXIF tags whose value
is ``"<key>:<json>"`` (``prompt`` in 0x0110 Model, ``workflow`` in 0x010F Make); a GIF comment holding a JSON object;
video container tags ``prompt``/``workflow`` or a ``comment`` tag holding a JSON object. This module must not import
torch: the web server imports it.
"""

from __future__ import annotations

import io
import json
import os
import stat
import struct
import tempfile
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import av
from PIL import Image

from nodes.media.errors import MediaError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_TEXT_CHUNKS = (b"tEXt", b"zTXt", b"iTXt")
MAX_TEXT_BYTES = 64 * 1024 * 1024
EBML_MAGIC = b"\x1a\x45\xdf\xa3"
MATROSKA_SEGMENT_ID = 0x18538067
ISO_BOX_TYPES = (b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot")
WORKFLOW_KEYS = ("prompt", "workflow")
EXIF_PROMPT_TAG = 0x0110
# Tags for the other texts, in order (ComfyUI counts down from Make); all are ASCII or unassigned in TIFF.
EXIF_EXTRA_TAGS = (0x010F, 0x010E, 0x010D, 0x010C, 0x010B)
VP8X_EXIF_FLAG = 0x08
VP8X_ALPHA_FLAG = 0x10
GIF_COMMENT_LABEL = 0xFE
GIF_APPLICATION_LABEL = 0xFF
GIF_SUB_BLOCK = 255


@dataclass(frozen=True)
class EmbeddedWorkflow:
    """The API prompt and the UI workflow found in a file (``None`` where absent or not valid JSON objects)."""

    prompt: dict | None
    workflow: dict | None
    source: str


def workflow_texts(prompt: Mapping | None, extra_pnginfo: Mapping | None) -> dict[str, str]:
    """The texts to embed: ``prompt`` as JSON, plus one JSON entry per ``extra_pnginfo`` key (normally ``workflow``)."""
    texts = {} if prompt is None else {"prompt": json.dumps(prompt)}
    for key, value in (extra_pnginfo or {}).items():
        texts[str(key)] = json.dumps(value)
    return texts


def read_embedded_workflow(path: Path) -> EmbeddedWorkflow:
    """The workflow embedded in a PNG/APNG, WebP, GIF or MP4/MOV/WebM/MKV file, recognised by its first bytes.

    Raises ``MediaError`` when the file cannot be read, is not one of those formats, or is truncated.
    """
    path = Path(path)
    try:
        with path.open("rb") as handle:
            return _sniffed_workflow(path, handle, os.fstat(handle.fileno()).st_size)
    except OSError as error:
        raise MediaError(path, f"the file cannot be read: {error.strerror or error}") from error


def _sniffed_workflow(path: Path, handle: BinaryIO, size: int) -> EmbeddedWorkflow:
    """Pick the reader by the file's first bytes."""
    head = handle.read(16)
    if not head:
        raise MediaError(path, "the file is empty")
    if head.startswith(PNG_SIGNATURE):
        return _texts_workflow(_png_texts(path, handle, size), "png")
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return _texts_workflow(_webp_texts(path, handle, size), "webp")
    if head[:6] in (b"GIF87a", b"GIF89a"):
        handle.seek(0)
        return _texts_workflow(_gif_texts(path, handle.read()), "gif")
    if head[4:8] in ISO_BOX_TYPES:
        _check_iso_boxes(path, handle, size)
        return _container_workflow(path)
    if head.startswith(EBML_MAGIC):
        _check_matroska_segment(path, handle, size)
        return _container_workflow(path)
    raise MediaError(path, "not a PNG, WebP, GIF, MP4/MOV or WebM/MKV file (unrecognised first bytes)")


def _texts_workflow(texts: Mapping[str, Any], source: str) -> EmbeddedWorkflow:
    """The workflow from a key -> text (or already parsed) mapping found in a ``source`` file."""
    return EmbeddedWorkflow(_json_object(texts.get("prompt")), _json_object(texts.get("workflow")), source)


def _json_object(value: object) -> dict | None:
    """``value`` as a dict: a dict as is, JSON text parsed; anything else (or JSON that is not an object) -> None."""
    if isinstance(value, dict):
        return value
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return None
    try:
        parsed = json.loads(value)
    except (ValueError, RecursionError):
        return None
    return parsed if isinstance(parsed, dict) else None


def _json_or_text(text: str) -> Any:
    """``text`` parsed as JSON, or the text itself when it is not JSON."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return text


def _read_exactly(path: Path, handle: BinaryIO, count: int, what: str) -> bytes:
    """Read ``count`` bytes; ``MediaError`` saying ``what`` is cut off when the file ends first."""
    data = handle.read(count)
    if len(data) < count:
        raise MediaError(path, f"the file is truncated ({what} is cut off)")
    return data


# PNG / APNG


def _png_chunks(path: Path, handle: BinaryIO, size: int) -> Iterator[tuple[bytes, int, int]]:
    """``(type, body offset, body length)`` of each chunk up to IEND; checks the file is complete."""
    offset = len(PNG_SIGNATURE)
    while True:
        handle.seek(offset)
        length, kind = struct.unpack(">I4s", _read_exactly(path, handle, 8, "a PNG chunk header"))
        if offset == len(PNG_SIGNATURE) and kind != b"IHDR":
            raise MediaError(path, "not a valid PNG: the first chunk is not IHDR")
        end = offset + 12 + length
        if end > size:
            raise MediaError(path, f"the file is truncated (the PNG {kind.decode('latin-1')} chunk is cut off)")
        yield kind, offset + 8, length
        if kind == b"IEND":
            return
        offset = end


def _png_texts(path: Path, handle: BinaryIO, size: int) -> dict[str, str]:
    """Keyword -> text of the PNG's tEXt/zTXt/iTXt chunks (the first of each keyword wins)."""
    texts: dict[str, str] = {}
    for kind, offset, length in list(_png_chunks(path, handle, size)):
        if kind in PNG_TEXT_CHUNKS:
            handle.seek(offset)
            parsed = _parse_png_text(kind, handle.read(length))
            if parsed is not None:
                texts.setdefault(*parsed)
    return texts


def _parse_png_text(kind: bytes, body: bytes) -> tuple[str, str] | None:
    """``(keyword, text)`` of one text chunk, or ``None`` when it is malformed."""
    keyword, _, rest = body.partition(b"\0")
    try:
        if kind == b"tEXt":
            return keyword.decode("latin-1"), rest.decode("latin-1")
        if kind == b"zTXt":
            return keyword.decode("latin-1"), _inflate(rest[1:]).decode("latin-1")
        compressed, rest = rest[0], rest[2:]
        _language, _, rest = rest.partition(b"\0")
        _translated, _, text = rest.partition(b"\0")
        return keyword.decode("latin-1"), (_inflate(text) if compressed else text).decode("utf-8")
    except (IndexError, UnicodeDecodeError, zlib.error):
        return None


def _inflate(data: bytes) -> bytes:
    """zlib-decompress at most ``MAX_TEXT_BYTES`` (a guard against decompression bombs)."""
    return zlib.decompressobj().decompress(data, MAX_TEXT_BYTES)


def _png_text_chunk(keyword: str, text: str) -> bytes:
    """A tEXt chunk, or an uncompressed iTXt chunk when ``text`` is not latin-1."""
    key = keyword.encode("latin-1", "replace")
    if not 1 <= len(key) <= 79 or b"\0" in key:
        raise ValueError(f"PNG text keywords must be 1 to 79 characters without NUL; got {keyword!r}")
    try:
        kind, body = b"tEXt", key + b"\0" + text.encode("latin-1")
    except UnicodeEncodeError:
        kind, body = b"iTXt", key + b"\0\0\0\0\0" + text.encode("utf-8")
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def embed_in_png(path: Path, texts: Mapping[str, str]) -> None:
    """Insert ``texts`` as text chunks right after IHDR (replacing chunks with the same keywords); works for APNG."""
    path = Path(path)
    data = _read_bytes(path)
    if not data.startswith(PNG_SIGNATURE):
        raise MediaError(path, "not a PNG file")
    kept = []
    for kind, offset, length in list(_png_chunks(path, io.BytesIO(data), len(data))):
        parsed = _parse_png_text(kind, data[offset : offset + length]) if kind in PNG_TEXT_CHUNKS else None
        if parsed is None or parsed[0] not in texts:
            kept.append(data[offset - 8 : offset + length + 4])
    new_chunks = b"".join(_png_text_chunk(key, text) for key, text in texts.items())
    _replace_contents(path, PNG_SIGNATURE + kept[0] + new_chunks + b"".join(kept[1:]))


# WebP


def _riff_chunks(path: Path, handle: BinaryIO, size: int) -> Iterator[tuple[bytes, int, int]]:
    """``(fourcc, body offset, body length)`` of each chunk of a RIFF/WEBP file; checks the file is complete."""
    handle.seek(4)
    riff_end = 8 + struct.unpack("<I", _read_exactly(path, handle, 4, "the RIFF header"))[0]
    if riff_end > size:
        raise MediaError(path, f"the file is truncated (RIFF says {riff_end} bytes, the file has {size})")
    offset = 12
    while offset + 8 <= riff_end:
        handle.seek(offset)
        fourcc, length = struct.unpack("<4sI", _read_exactly(path, handle, 8, "a WebP chunk header"))
        if offset + 8 + length > riff_end:
            raise MediaError(path, f"the file is truncated (the WebP {fourcc.decode('latin-1')} chunk is cut off)")
        yield fourcc, offset + 8, length
        offset += 8 + length + (length & 1)


def _webp_texts(path: Path, handle: BinaryIO, size: int) -> dict[str, str]:
    """Key -> text from the EXIF tags written as ``"<key>:<text>"`` (ComfyUI's convention)."""
    for fourcc, offset, length in list(_riff_chunks(path, handle, size)):
        if fourcc == b"EXIF":
            handle.seek(offset)
            return _exif_texts(handle.read(length))
    return {}


def _exif_texts(data: bytes) -> dict[str, str]:
    """Key -> text of each EXIF tag whose value reads ``"<key>:<text>"``, highest tag first (0x0110 Model leads)."""
    exif = Image.Exif()
    try:
        exif.load(data)
    except Exception:  # Pillow raises assorted errors for corrupt EXIF; treat it as nothing embedded.
        return {}
    texts: dict[str, str] = {}
    for _tag, value in sorted(exif.items(), key=lambda item: -item[0]):
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
        if isinstance(text, str) and ":" in text:
            key, _, rest = text.partition(":")
            texts.setdefault(key.strip("\0 "), rest.rstrip("\0"))
    return texts


def _exif_bytes(texts: Mapping[str, str]) -> bytes:
    """Raw TIFF EXIF with one ASCII ``"<key>:<text>"`` tag per text (non-ASCII JSON is re-escaped)."""
    others = [key for key in texts if key != "prompt"]
    if len(others) > len(EXIF_EXTRA_TAGS):
        raise ValueError(f"at most {len(EXIF_EXTRA_TAGS)} texts besides 'prompt' fit in WebP EXIF; got {len(others)}")
    exif = Image.Exif()
    if "prompt" in texts:
        exif[EXIF_PROMPT_TAG] = f"prompt:{_ascii_text(texts['prompt'])}"
    for tag, key in zip(EXIF_EXTRA_TAGS, others, strict=False):
        exif[tag] = f"{key}:{_ascii_text(texts[key])}"
    data = exif.tobytes()
    return data[6:] if data.startswith(b"Exif\0\0") else data


def _ascii_text(text: str) -> str:
    """``text`` in ASCII: JSON re-dumped with escapes, other text with backslash escapes."""
    if text.isascii():
        return text
    try:
        return json.dumps(json.loads(text))
    except ValueError:
        return text.encode("ascii", "backslashreplace").decode("ascii")


def embed_in_webp(path: Path, texts: Mapping[str, str]) -> None:
    """Add (or replace) the EXIF chunk with ``texts``, set VP8X's EXIF flag and fix the RIFF size; works animated."""
    path = Path(path)
    data = _read_bytes(path)
    if not (data[:4] == b"RIFF" and data[8:12] == b"WEBP"):
        raise MediaError(path, "not a WebP file")
    chunks = [
        (fourcc, data[offset : offset + length])
        for fourcc, offset, length in _riff_chunks(path, io.BytesIO(data), len(data))
    ]
    chunks = [chunk for chunk in chunks if chunk[0] != b"EXIF"]
    if not chunks:
        raise MediaError(path, "the WebP file has no image data")
    if chunks[0][0] != b"VP8X":
        chunks.insert(0, (b"VP8X", _vp8x_for(path, *chunks[0])))
    flags = chunks[0][1][0] | VP8X_EXIF_FLAG
    chunks[0] = (b"VP8X", bytes([flags]) + chunks[0][1][1:])
    xmp_at = next((index for index, chunk in enumerate(chunks) if chunk[0] == b"XMP "), len(chunks))
    chunks.insert(xmp_at, (b"EXIF", _exif_bytes(texts)))
    body = b"".join(
        fourcc + struct.pack("<I", len(chunk)) + chunk + b"\0" * (len(chunk) & 1) for fourcc, chunk in chunks
    )
    _replace_contents(path, b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body)


def _vp8x_for(path: Path, fourcc: bytes, bitstream: bytes) -> bytes:
    """A VP8X chunk body for a simple (VP8 or VP8L) WebP, with its canvas size and alpha flag."""
    if fourcc == b"VP8 " and len(bitstream) >= 10 and bitstream[3:6] == b"\x9d\x01\x2a":
        width, height = (value & 0x3FFF for value in struct.unpack("<HH", bitstream[6:10]))
        flags = 0
    elif fourcc == b"VP8L" and len(bitstream) >= 5 and bitstream[0] == 0x2F:
        bits = struct.unpack("<I", bitstream[1:5])[0]
        width, height = (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
        flags = VP8X_ALPHA_FLAG if (bits >> 28) & 1 else 0
    else:
        raise MediaError(path, f"unexpected first WebP chunk {fourcc.decode('latin-1')!r}")
    return bytes([flags, 0, 0, 0]) + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")


# GIF


def _gif_blocks(path: Path, data: bytes) -> Iterator[tuple[int, int, int]]:
    """``(kind, start, end)`` of each block after the global colour table: kind is the extension label,
    0x2C for an image, 0x3B for the trailer. Checks the file is complete."""
    offset = 13
    if len(data) < offset:
        raise MediaError(path, "the file is truncated (the GIF screen descriptor is cut off)")
    if data[10] & 0x80:
        offset += 3 << ((data[10] & 7) + 1)
    while True:
        if offset >= len(data):
            raise MediaError(path, "the file is truncated (the GIF has no trailer)")
        introducer = data[offset]
        if introducer == 0x3B:
            yield 0x3B, offset, offset + 1
            return
        if introducer == 0x21 and offset + 1 < len(data):
            end = _skip_sub_blocks(path, data, offset + 2)
            yield data[offset + 1], offset, end
        elif introducer == 0x2C and offset + 10 < len(data):
            table = 3 << ((data[offset + 9] & 7) + 1) if data[offset + 9] & 0x80 else 0
            end = _skip_sub_blocks(path, data, offset + 10 + table + 1)
            yield 0x2C, offset, end
        elif introducer in (0x21, 0x2C):
            raise MediaError(path, "the file is truncated (a GIF block is cut off)")
        else:
            raise MediaError(path, f"corrupt GIF: unexpected byte 0x{introducer:02X} at offset {offset}")
        offset = end


def _skip_sub_blocks(path: Path, data: bytes, offset: int) -> int:
    """The offset just past the data sub-blocks starting at ``offset``."""
    while True:
        if offset >= len(data):
            raise MediaError(path, "the file is truncated (GIF data sub-blocks are cut off)")
        if data[offset] == 0:
            return offset + 1
        offset += 1 + data[offset]


def _sub_block_data(data: bytes, offset: int, end: int) -> bytes:
    """The concatenated payload of the sub-blocks in ``data[offset:end]``."""
    parts = []
    while offset < end - 1:
        parts.append(data[offset + 1 : offset + 1 + data[offset]])
        offset += 1 + data[offset]
    return b"".join(parts)


def _gif_comment_objects(path: Path, data: bytes) -> Iterator[tuple[dict, int, int]]:
    """Each GIF comment that holds a JSON object, with the comment block's span."""
    for kind, start, end in list(_gif_blocks(path, data)):
        if kind == GIF_COMMENT_LABEL:
            value = _json_object(_sub_block_data(data, start + 2, end))
            if value is not None:
                yield value, start, end


def _gif_texts(path: Path, data: bytes) -> dict[str, Any]:
    """The first GIF comment object with a prompt or a workflow."""
    for value, _start, _end in _gif_comment_objects(path, data):
        if any(key in value for key in WORKFLOW_KEYS):
            return value
    return {}


def embed_in_gif(path: Path, texts: Mapping[str, str]) -> None:
    """Insert one comment extension holding ``texts`` as a JSON object after the global colour table (and after the
    NETSCAPE loop block when that comes first), replacing earlier comments that held any of these keys."""
    path = Path(path)
    data = _read_bytes(path)
    if data[:6] not in (b"GIF87a", b"GIF89a"):
        raise MediaError(path, "not a GIF file")
    blocks = list(_gif_blocks(path, data))
    insert_at = blocks[0][1]
    if blocks[0][0] == GIF_APPLICATION_LABEL and data[insert_at + 3 : insert_at + 14] == b"NETSCAPE2.0":
        insert_at = blocks[0][2]
    stale = [
        (start, end) for value, start, end in _gif_comment_objects(path, data) if any(key in value for key in texts)
    ]
    payload = json.dumps({key: _json_or_text(text) for key, text in texts.items()}).encode("ascii")
    pieces = [payload[start : start + GIF_SUB_BLOCK] for start in range(0, len(payload), GIF_SUB_BLOCK)]
    comment = b"\x21\xfe" + b"".join(bytes([len(piece)]) + piece for piece in pieces) + b"\0"
    out = bytearray(b"GIF89a" + data[6:insert_at] + comment)
    cursor = insert_at
    for start, end in stale:
        out += data[cursor:start]
        cursor = end
    out += data[cursor:]
    _replace_contents(path, bytes(out))


# Video containers


def _check_iso_boxes(path: Path, handle: BinaryIO, size: int) -> None:
    """Walk the top-level MP4/MOV boxes; raise ``MediaError`` if one runs past the end of the file."""
    offset = 0
    while offset + 8 <= size:
        handle.seek(offset)
        box_size, kind = struct.unpack(">I4s", handle.read(8))
        if box_size == 1:
            box_size = struct.unpack(">Q", _read_exactly(path, handle, 8, "an MP4 box header"))[0]
        elif box_size == 0:
            return
        if box_size < 8:
            raise MediaError(path, f"corrupt MP4: the {kind.decode('latin-1')!r} box has size {box_size}")
        if offset + box_size > size:
            raise MediaError(path, f"the file is truncated (the MP4 {kind.decode('latin-1')!r} box is cut off)")
        offset += box_size


def _read_ebml_number(path: Path, handle: BinaryIO, keep_marker: bool) -> tuple[int, bool]:
    """One EBML variable-length number (an element ID with ``keep_marker``) and whether it means 'unknown size'."""
    first = _read_exactly(path, handle, 1, "an EBML element header")[0]
    length = 9 - first.bit_length() if first else 9
    if length > 8:
        raise MediaError(path, "corrupt Matroska: invalid EBML number")
    raw = int.from_bytes(bytes([first]) + _read_exactly(path, handle, length - 1, "an EBML element header"), "big")
    value = raw if keep_marker else raw & ((1 << (7 * length)) - 1)
    return value, value == (1 << (7 * length)) - 1


def _check_matroska_segment(path: Path, handle: BinaryIO, size: int) -> None:
    """Check the Matroska/WebM Segment (when its size is known) ends within the file."""
    handle.seek(0)
    for expected in (None, MATROSKA_SEGMENT_ID):
        element, _ = _read_ebml_number(path, handle, keep_marker=True)
        length, unknown = _read_ebml_number(path, handle, keep_marker=False)
        if expected is not None and element != expected:
            return
        if not unknown and handle.tell() + length > size:
            raise MediaError(path, "the file is truncated (the Matroska segment is cut off)")
        handle.seek(length, os.SEEK_CUR)


def _container_workflow(path: Path) -> EmbeddedWorkflow:
    """The workflow in a video's container tags: ``prompt``/``workflow`` (any case) or a JSON ``comment``."""
    try:
        with av.open(str(path), metadata_errors="replace") as container:
            tags = {key.lower(): value for key, value in container.metadata.items()}
    except av.FFmpegError as error:
        raise MediaError(path, f"FFmpeg cannot read the file: {error}") from error
    comment = _json_object(tags.get("comment")) or {}
    prompt = _json_object(tags.get("prompt")) or _json_object(comment.get("prompt"))
    workflow = _json_object(tags.get("workflow")) or _json_object(comment.get("workflow"))
    return EmbeddedWorkflow(prompt, workflow, "container")


# Files


def _read_bytes(path: Path) -> bytes:
    """The whole file; ``MediaError`` when it cannot be read."""
    try:
        return path.read_bytes()
    except OSError as error:
        raise MediaError(path, f"the file cannot be read: {error.strerror or error}") from error


def _replace_contents(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path`` and rename it over ``path`` (keeping its permissions)."""
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.chmod(temp, stat.S_IMODE(path.stat().st_mode))
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
