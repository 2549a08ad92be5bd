"""What a weight file holds, cheaply: its tensors' shapes and dtypes (as meta tensors) and its metadata.

Loaders detect a file's family and configuration from shapes before loading any weights: a safetensors header is
read without touching the data; other formats are loaded (they have no header to read).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from models.formats import detect_weight_format
from models.loading import load_state_dict
from models.metadata import read_safetensors_header

__all__ = ["CheckpointShapes", "read_shapes"]

SAFETENSORS_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "F8_E4M3": torch.float8_e4m3fn,
    "F8_E5M2": torch.float8_e5m2,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}


@dataclass(frozen=True)
class CheckpointShapes:
    """A file's tensors as meta tensors (shape and dtype, no data), its metadata and its weight bytes."""

    path: Path
    tensors: dict[str, torch.Tensor]
    metadata: dict[str, str]
    nbytes: int


def read_shapes(path: Path) -> CheckpointShapes:
    """The shapes of ``path``'s tensors; raises the loaders' ``ModelLoadError`` subclasses for bad files."""
    path = Path(path)
    if detect_weight_format(path) == "safetensors":
        header = read_safetensors_header(path)
        tensors = {
            name: torch.empty(info.shape, dtype=SAFETENSORS_DTYPES.get(info.dtype, torch.uint8), device="meta")
            for name, info in header.tensors.items()
        }
        return CheckpointShapes(path, tensors, header.metadata, sum(info.nbytes for info in header.tensors.values()))
    loaded = load_state_dict(path)
    tensors = {name: torch.empty(t.shape, dtype=t.dtype, device="meta") for name, t in loaded.items()}
    return CheckpointShapes(path, tensors, {}, sum(t.numel() * t.element_size() for t in loaded.values()))
