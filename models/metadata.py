"""The header of a safetensors file (its ``__metadata__`` and tensor table), read without loading any tensor.

A safetensors file is an 8-byte little-endian header length, that many bytes of JSON, then the tensor data; each
tensor's ``data_offsets`` count from the start of the data.
"""

from __future__ import annotations

import json
import math
import os
import struct
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from models.errors import CorruptModelFileError

MAX_HEADER_BYTES = 100 * 1024 * 1024
METADATA_KEY = "__metadata__"
DTYPE_BITS = MappingProxyType(
    {
        "BOOL": 8,
        "U8": 8,
        "I8": 8,
        "F8_E5M2": 8,
        "F8_E4M3": 8,
        "F8_E8M0": 8,
        "F8_E4M3FNUZ": 8,
        "F8_E5M2FNUZ": 8,
        "F4": 4,
        "F6_E2M3": 6,
        "F6_E3M2": 6,
        "I16": 16,
        "U16": 16,
        "F16": 16,
        "BF16": 16,
        "I32": 32,
        "U32": 32,
        "F32": 32,
        "I64": 64,
        "U64": 64,
        "F64": 64,
        "C64": 64,
    }
)


class ModelFileError(CorruptModelFileError):
    """A safetensors file that is not what its extension says (truncated, garbage, an impossible header).

    ``reason`` is the bare reason; the message adds the file name and "not a valid safetensors file".
    """

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(path, f"not a valid safetensors file: {reason}")
        self.reason = reason


@dataclass(frozen=True)
class TensorInfo:
    """One tensor's entry in the header: its dtype name (``"BF16"``), shape and size in bytes."""

    dtype: str
    shape: tuple[int, ...]
    nbytes: int


@dataclass(frozen=True)
class SafetensorsHeader:
    """A checked safetensors header: ``metadata`` is its ``__metadata__`` (empty when absent), ``tensors`` its table
    in file order, ``total_bytes`` the file size the header implies (length prefix + header + tensor data)."""

    metadata: dict[str, str]
    tensors: dict[str, TensorInfo]
    total_bytes: int


def read_safetensors_header(path: Path) -> SafetensorsHeader:
    """Read and check the header of the safetensors file ``path``, reading only the header's bytes.

    Raises ``ModelFileError`` naming the file and the reason; ``OSError`` when the file cannot be opened.
    """
    with path.open("rb") as file:
        file_size = os.fstat(file.fileno()).st_size
        prefix = file.read(8)
        if len(prefix) < 8:
            raise ModelFileError(path, f"it is {file_size} bytes, shorter than the 8-byte header length")
        (length,) = struct.unpack("<Q", prefix)
        if length > MAX_HEADER_BYTES:
            raise ModelFileError(path, f"its header length {length} is over the {MAX_HEADER_BYTES} bytes allowed")
        if length > file_size - 8:
            raise ModelFileError(path, f"truncated: expected at least {8 + length} bytes, file has {file_size}")
        raw = file.read(length)
    if len(raw) < length:
        raise ModelFileError(path, f"truncated while reading: expected {8 + length} bytes, got {8 + len(raw)}")
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ModelFileError(path, f"its header is not UTF-8 JSON ({exc})") from None
    if not isinstance(header, dict):
        raise ModelFileError(path, f"its header is a JSON {type(header).__name__}, not an object")
    metadata = _metadata(path, header.pop(METADATA_KEY, None))
    tensors: dict[str, TensorInfo] = {}
    data_end = 0
    for name, entry in header.items():
        tensors[name], end = _tensor(path, name, entry)
        data_end = max(data_end, end)
    expected = 8 + length + data_end
    if expected > file_size:
        raise ModelFileError(path, f"truncated: expected {expected} bytes, file has {file_size}")
    return SafetensorsHeader(metadata=metadata, tensors=tensors, total_bytes=expected)


def summarize(header: SafetensorsHeader) -> dict[str, Any]:
    """Counts for display: tensors, tensors per dtype, parameters, tensor bytes, file bytes, metadata entries."""
    return {
        "tensor_count": len(header.tensors),
        "dtypes": dict(sorted(Counter(info.dtype for info in header.tensors.values()).items())),
        "parameter_count": sum(math.prod(info.shape) for info in header.tensors.values()),
        "tensor_bytes": sum(info.nbytes for info in header.tensors.values()),
        "total_bytes": header.total_bytes,
        "metadata_count": len(header.metadata),
    }


def _metadata(path: Path, value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ModelFileError(path, f"its {METADATA_KEY} is a JSON {type(value).__name__}, not an object")
    for key, item in value.items():
        if not isinstance(item, str):
            raise ModelFileError(path, f"its {METADATA_KEY} entry {key!r} is not a string")
    return value


def _tensor(path: Path, name: str, entry: Any) -> tuple[TensorInfo, int]:
    """Check one tensor entry (a known dtype, a shape of non-negative ints, offsets matching the shape's size); give
    its info and the end of its data."""
    if not isinstance(entry, dict):
        raise ModelFileError(path, f"tensor {name!r}: its entry is not a JSON object")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if dtype not in DTYPE_BITS:
        raise ModelFileError(path, f"tensor {name!r}: unknown dtype {dtype!r}")
    if not isinstance(shape, list) or not all(_is_count(size) for size in shape):
        raise ModelFileError(path, f"tensor {name!r}: shape {shape!r} is not a list of non-negative integers")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_count(offset) for offset in offsets)):
        raise ModelFileError(path, f"tensor {name!r}: data_offsets {offsets!r} is not [begin, end]")
    begin, end = offsets
    bits = math.prod(shape) * DTYPE_BITS[dtype]
    if end < begin or bits % 8 or end - begin != bits // 8:
        raise ModelFileError(
            path, f"tensor {name!r}: data_offsets {offsets} do not hold a {dtype} tensor of shape {shape}"
        )
    return TensorInfo(dtype=dtype, shape=tuple(shape), nbytes=end - begin), end


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
