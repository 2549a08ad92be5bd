"""Weight file formats: recognise a file by its content, and read each format without running code from it.

Reelgraph reads safetensors (memory-mapped), GGUF, and ``torch.save`` checkpoints (zip or legacy pickle) only through
``torch.load(weights_only=True)``. Everything else is refused with ``UnsafeModelFileError``; a file that cannot be
parsed gives ``CorruptModelFileError`` with the library's reason.
"""

from __future__ import annotations

import io
import logging
import pickle
import pickletools
import re
import zipfile
from pathlib import Path

import torch

from models.errors import CorruptModelFileError, ModelLoadError, UnsafeModelFileError

logger = logging.getLogger(__name__)

WEIGHT_FORMATS = ("safetensors", "gguf", "pickle")
# What a file's suffix promises; a pickle behind a safe format's suffix is refused (a renamed pickle hides code).
SUFFIX_FORMATS = {
    ".safetensors": "safetensors",
    ".sft": "safetensors",
    ".gguf": "gguf",
    ".pt": "pickle",
    ".pth": "pickle",
    ".ckpt": "pickle",
    ".bin": "pickle",
}
_SAFE_FORMATS = frozenset({"safetensors", "gguf"})
_HEAD_BYTES = 32
_ZIP_MAGIC = b"PK\x03\x04"
_GGUF_MAGIC = b"GGUF"
_PICKLE_PROTO = 0x80  # PROTO opcode; torch.save's legacy format and pickle protocols 2-5 start with it
_LEGACY_PICKLES = 5  # magic number, protocol, system info, the object, storage keys; then raw storage bytes
_MAX_PICKLE_LINE = 1 << 16  # text arguments of pickle opcodes (module and class names, numbers) are short
_CONVERT_HINT = "convert it to safetensors with a tool you trust, or get a .safetensors version of the model"


def detect_weight_format(path: Path) -> str:
    """Which of ``WEIGHT_FORMATS`` the file holds, judged by its content rather than its suffix.

    safetensors: an 8-byte little-endian header length followed by ``{``; GGUF: ``b"GGUF"``; pickle: a ``torch.save``
    zip (holding ``data.pkl``) or a legacy pickle (``PROTO`` 2-5). A pickle named ``.safetensors``/``.sft``/``.gguf``
    and anything unknown (TorchScript archives included) raise ``UnsafeModelFileError``; an empty, short or damaged
    file raises ``CorruptModelFileError``; a missing path or a folder raises ``ModelLoadError``.
    """
    path = Path(path)
    if path.is_dir():
        raise ModelLoadError(
            path, "is a folder, not a weights file (a diffusers folder loads with load_diffusers_folder)"
        )
    try:
        size = path.stat().st_size
        with path.open("rb") as file:
            head = file.read(_HEAD_BYTES)
    except FileNotFoundError:
        raise ModelLoadError(path, "no such file") from None
    except OSError as exc:
        raise CorruptModelFileError(path, f"cannot read it: {exc}") from exc
    if size == 0:
        raise CorruptModelFileError(path, "the file is empty")
    fmt = _format_from_head(path, head, size)
    claimed = SUFFIX_FORMATS.get(path.suffix.lower())
    if fmt == "pickle" and claimed in _SAFE_FORMATS:
        raise UnsafeModelFileError(
            path, f"named {path.suffix} but holds a pickle (torch.save) checkpoint; refusing a renamed pickle"
        )
    if claimed is not None and claimed != fmt:
        logger.warning("%s is named %s but holds %s; loading it as %s", path.name, path.suffix, fmt, fmt)
    return fmt


def _format_from_head(path: Path, head: bytes, size: int) -> str:
    """The format the first bytes show (zip archives are opened to check they are ``torch.save`` checkpoints)."""
    if head.startswith(_GGUF_MAGIC):
        return "gguf"
    if head.startswith(_ZIP_MAGIC):
        _check_torch_zip(path)
        return "pickle"
    if len(head) >= 2 and head[0] == _PICKLE_PROTO and 2 <= head[1] <= 5:
        return "pickle"
    if len(head) >= 9 and head[8:9] == b"{":
        return "safetensors"
    if head.startswith(b"version https://git-lfs"):
        raise CorruptModelFileError(path, "a Git LFS pointer, not the weights; fetch the real file (git lfs pull)")
    if head.lstrip().lower().startswith((b"<!doctype", b"<html")):
        raise CorruptModelFileError(path, "an HTML page, not weights (a failed download?)")
    if size < 9:
        raise CorruptModelFileError(path, f"only {size} bytes long, too short for any weights format")
    raise UnsafeModelFileError(
        path,
        f"not a weights format Reelgraph loads: it starts with {head[:8]!r}; "
        "expected safetensors, GGUF, or a torch.save checkpoint",
    )


def _check_torch_zip(path: Path) -> None:
    """Refuse zip archives that are not ``torch.save`` checkpoints (TorchScript, ``.pt2``, others)."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except Exception as exc:  # zipfile fails in many ways on damaged bytes (BadZipFile, NotImplementedError, ...)
        raise CorruptModelFileError(path, f"truncated or damaged zip archive ({exc})") from exc
    if any(name.endswith("constants.pkl") for name in names):
        raise UnsafeModelFileError(path, "a TorchScript archive, which holds code; Reelgraph loads only weights")
    if not any(name == "data.pkl" or name.endswith("/data.pkl") for name in names):
        raise UnsafeModelFileError(path, "a zip archive that is not a torch.save checkpoint (no data.pkl)")


def read_safetensors(path: Path, device: str | torch.device) -> dict[str, torch.Tensor]:
    """All tensors of a safetensors file; on the CPU they are views of a private memory map of the file, not copies."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(path, device=str(device))
    except (SafetensorError, OSError) as exc:
        raise CorruptModelFileError(path, f"unreadable safetensors file: {exc}") from exc


def check_safetensors_header(path: Path) -> None:
    """Parse the header (names, shapes, offsets against the file size) without reading tensor data."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(path, framework="pt") as file:
            file.keys()
    except (SafetensorError, OSError) as exc:
        raise CorruptModelFileError(path, f"unreadable safetensors file: {exc}") from exc


def read_gguf(path: Path) -> dict[str, torch.Tensor]:
    """All tensors of a GGUF file, through diffusers' ``load_gguf_checkpoint``.

    F32/F16 tensors come back as plain tensors; quantized ones stay ``GGUFParameter`` (raw blocks, ``quant_type`` set),
    which diffusers' GGUF layers use as they are and ``dequantize_gguf_tensor`` expands. The data is copied out of the
    file (diffusers copies each tensor), so GGUF files are not memory-mapped after loading. Quantization types diffusers
    cannot dequantize are refused with ``UnsafeModelFileError``.
    """
    from diffusers.models.model_loading_utils import load_gguf_checkpoint
    from diffusers.quantizers.gguf.utils import SUPPORTED_GGUF_QUANT_TYPES
    from gguf import GGMLQuantizationType, GGUFReader

    try:
        reader = GGUFReader(path)
        types = {tensor.tensor_type for tensor in reader.tensors}
    except Exception as exc:  # a parser over untrusted bytes: any failure means the file is damaged
        raise CorruptModelFileError(path, f"unreadable GGUF file: {type(exc).__name__}: {exc}") from exc
    plain = {GGMLQuantizationType.F32, GGMLQuantizationType.F16}
    unsupported = sorted(t.name for t in types - plain if t not in SUPPORTED_GGUF_QUANT_TYPES)
    if unsupported:
        raise UnsafeModelFileError(path, f"GGUF quantization types diffusers cannot load: {', '.join(unsupported)}")
    del reader
    return load_gguf_checkpoint(str(path))


def read_pickle(path: Path, device: str | torch.device) -> object:
    """Unpickle a ``torch.save`` checkpoint with ``weights_only=True`` (memory-mapped when it is a zip).

    The weights-only unpickler admits tensors, storages and plain containers only, so no code from the file runs; a
    file that needs anything else is refused with ``UnsafeModelFileError``.
    """
    is_zip = zipfile.is_zipfile(path)
    try:
        return torch.load(path, map_location=device, weights_only=True, mmap=is_zip)
    except pickle.UnpicklingError as exc:
        message = str(exc)
        if "Weights only load failed" in message and not _pickles_damaged(path, is_zip):
            raise UnsafeModelFileError(path, _refusal_reason(message)) from None
        raise CorruptModelFileError(path, f"unreadable pickle: {message}") from exc
    except Exception as exc:  # damaged bytes fail anywhere in torch.load (struct, index, assertion, type errors)
        raise CorruptModelFileError(path, f"unreadable checkpoint: {type(exc).__name__}: {exc}") from exc


def check_pickle_safe(path: Path) -> None:
    """Refuse a checkpoint that ``weights_only`` would reject, before a library loads it.

    Zip checkpoints are scanned statically (``torch.serialization.get_unsafe_globals_in_checkpoint`` reads only
    ``data.pkl``); legacy pickles have no such scan, so they are loaded once with ``weights_only=True``. This gives a
    clear error early; the libraries' own ``torch.load(weights_only=True)`` is what keeps the payload from running.
    """
    if not zipfile.is_zipfile(path):
        read_pickle(path, "cpu")
        return
    try:
        unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception as exc:  # a damaged archive fails anywhere in the scan
        raise CorruptModelFileError(path, f"unreadable checkpoint: {type(exc).__name__}: {exc}") from exc
    if unsafe:
        raise UnsafeModelFileError(
            path,
            f"torch.load(weights_only=True) refuses it: it needs {', '.join(sorted(unsafe))}, "
            f"so loading it would run code from the file; {_CONVERT_HINT}",
        )


def _pickles_damaged(path: Path, is_zip: bool) -> bool:
    """Whether a checkpoint the weights-only unpickler refused is damaged rather than asking for code.

    A cut or bit-flipped pickle can make the unpickler refuse a mangled global name (``torch.HalfSto``); that is
    damage, not a payload. In a zip, ``data.pkl`` is checked against its CRC; a legacy file's leading pickles are
    parsed with ``pickletools.genops``, which reads opcodes and never builds objects.
    """
    if is_zip:
        try:
            with zipfile.ZipFile(path) as archive:
                for name in archive.namelist():
                    if name.endswith("data.pkl"):
                        archive.read(name)
        except Exception:  # CRC mismatch or any other damage
            return True
        return False
    with path.open("rb") as file:
        reader = _BoundedReader(file, path.stat().st_size)
        for _ in range(_LEGACY_PICKLES):
            if not file.peek(1):
                return False
            try:
                for _ in pickletools.genops(reader):
                    pass
            except ValueError:
                return True
    return False


class _BoundedReader:
    """Reads that never ask for more than the file holds, so a damaged length field cannot allocate gigabytes."""

    def __init__(self, file: io.BufferedReader, size: int) -> None:
        self._file = file
        self._size = size

    def read(self, n: int = -1) -> bytes:
        left = self._size - self._file.tell()
        return self._file.read(left if n < 0 else min(n, left))

    def readline(self) -> bytes:
        return self._file.readline(_MAX_PICKLE_LINE)

    def tell(self) -> int:
        return self._file.tell()


def _refusal_reason(message: str) -> str:
    """A short reason from torch's long weights-only error message."""
    found = re.search(r"WeightsUnpickler error:\s*(.+?)(?:\.\s|\n|$)", message)
    detail = found.group(1).strip() if found else message.splitlines()[0]
    return (
        f"torch.load(weights_only=True) refused it ({detail}); loading it would run code from the file; {_CONVERT_HINT}"
    )
