"""read_safetensors_header: real safetensors files, and broken ones refused with a reason naming the file."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file

from models.errors import CorruptModelFileError
from models.metadata import (
    MAX_HEADER_BYTES,
    ModelFileError,
    SafetensorsHeader,
    TensorInfo,
    read_safetensors_header,
    summarize,
)


def raw_file(path: Path, header: Any, data: bytes = b"", length: int | None = None) -> Path:
    """A file with ``header`` as its JSON header (``length`` overrides the length prefix)."""
    encoded = header if isinstance(header, bytes) else json.dumps(header).encode()
    prefix = struct.pack("<Q", len(encoded) if length is None else length)
    path.write_bytes(prefix + encoded + data)
    return path


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.safetensors"
    tensors = {
        "blocks.0.weight": torch.zeros(4, 3, dtype=torch.bfloat16),
        "blocks.0.bias": torch.zeros(4, dtype=torch.float32),
        "scale": torch.zeros((), dtype=torch.float16),
        "ids": torch.zeros(2, 5, dtype=torch.int64),
    }
    save_file(tensors, path, metadata={"ss_network_dim": "16", "modelspec.title": "Tiny"})
    return path


def test_reads_metadata_and_tensor_table_of_a_real_file(saved: Path) -> None:
    header = read_safetensors_header(saved)
    assert header.metadata == {"ss_network_dim": "16", "modelspec.title": "Tiny"}
    assert header.tensors["blocks.0.weight"] == TensorInfo("BF16", (4, 3), 24)
    assert header.tensors["blocks.0.bias"] == TensorInfo("F32", (4,), 16)
    assert header.tensors["scale"] == TensorInfo("F16", (), 2)
    assert header.tensors["ids"] == TensorInfo("I64", (2, 5), 80)
    assert set(header.tensors) == {"blocks.0.weight", "blocks.0.bias", "scale", "ids"}
    assert header.total_bytes == saved.stat().st_size


def test_summarize_counts_tensors_dtypes_parameters_and_bytes(saved: Path) -> None:
    assert summarize(read_safetensors_header(saved)) == {
        "tensor_count": 4,
        "dtypes": {"BF16": 1, "F16": 1, "F32": 1, "I64": 1},
        "parameter_count": 12 + 4 + 1 + 10,
        "tensor_bytes": 24 + 16 + 2 + 80,
        "total_bytes": saved.stat().st_size,
        "metadata_count": 2,
    }


def test_a_file_without_metadata_or_tensors(tmp_path: Path) -> None:
    path = tmp_path / "empty.safetensors"
    save_file({}, path)
    assert read_safetensors_header(path) == SafetensorsHeader(metadata={}, tensors={}, total_bytes=path.stat().st_size)


def test_sub_byte_dtypes_and_padding_are_accepted(tmp_path: Path) -> None:
    header = {"q": {"dtype": "F4", "shape": [2, 3], "data_offsets": [0, 3]}}
    encoded = json.dumps(header).encode() + b"    "
    path = raw_file(tmp_path / "fp4.safetensors", encoded, b"\x00" * 3)
    assert read_safetensors_header(path).tensors["q"] == TensorInfo("F4", (2, 3), 3)


def test_only_the_header_is_read(saved: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sizes: list[int] = []
    real_open = Path.open

    def counting_open(self: Path, *args: Any, **kwargs: Any) -> Any:
        file = real_open(self, *args, **kwargs)
        real_read = file.read

        class Reader:
            def __getattr__(self, name: str) -> Any:
                return getattr(file, name)

            def __enter__(self) -> Reader:
                return self

            def __exit__(self, *exc: object) -> None:
                file.close()

            def read(self, size: int = -1) -> bytes:
                sizes.append(size)
                return real_read(size)

        return Reader()

    (length,) = struct.unpack("<Q", saved.read_bytes()[:8])
    monkeypatch.setattr(Path, "open", counting_open)
    read_safetensors_header(saved)
    assert sizes == [8, length]


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"", "0 bytes, shorter than the 8-byte header length"),
        (b"\x01\x02", "2 bytes, shorter"),
        (b"this is not a safetensors file at all", "over the"),
        (struct.pack("<Q", MAX_HEADER_BYTES + 1) + b"{}", "over the"),
        (struct.pack("<Q", 100) + b'{"__metadata__": {}}', "truncated: expected at least 108 bytes, file has 28"),
        (struct.pack("<Q", 4) + b"\xff\xfe{[", "not UTF-8 JSON"),
        (struct.pack("<Q", 5) + b"{nope", "not UTF-8 JSON"),
        (struct.pack("<Q", 2) + b"[]", "JSON list, not an object"),
    ],
    ids=["empty", "two-bytes", "text", "huge-length", "cut-header", "not-utf8", "not-json", "list"],
)
def test_garbage_is_refused_with_a_reason(tmp_path: Path, content: bytes, words: str) -> None:
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    with pytest.raises(ModelFileError) as caught:
        read_safetensors_header(path)
    assert isinstance(caught.value, CorruptModelFileError)  # the models layer's error for unreadable files
    assert path.name in str(caught.value) and words in str(caught.value)
    assert caught.value.path == path and words in caught.value.reason


def test_truncated_data_says_how_many_bytes_were_expected(saved: Path) -> None:
    size = saved.stat().st_size
    saved.write_bytes(saved.read_bytes()[:-10])
    with pytest.raises(ModelFileError, match=f"truncated: expected {size} bytes, file has {size - 10}"):
        read_safetensors_header(saved)


@pytest.mark.parametrize(
    ("entry", "words"),
    [
        ({"dtype": "F99", "shape": [1], "data_offsets": [0, 4]}, "unknown dtype 'F99'"),
        ({"shape": [1], "data_offsets": [0, 4]}, "unknown dtype None"),
        ({"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}, "not a list of non-negative integers"),
        ({"dtype": "F32", "shape": "1", "data_offsets": [0, 4]}, "not a list of non-negative integers"),
        ({"dtype": "F32", "shape": [True], "data_offsets": [0, 4]}, "not a list of non-negative integers"),
        ({"dtype": "F32", "shape": [1], "data_offsets": [0]}, "is not [begin, end]"),
        ({"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}, "do not hold a F32 tensor of shape [1]"),
        ({"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}, "do not hold a F32 tensor"),
        ({"dtype": "F4", "shape": [3], "data_offsets": [0, 1]}, "do not hold a F4 tensor"),
        ("not an entry", "its entry is not a JSON object"),
    ],
)
def test_bad_tensor_entries_name_the_tensor(tmp_path: Path, entry: Any, words: str) -> None:
    path = raw_file(tmp_path / "bad.safetensors", {"w": entry}, b"\x00" * 8)
    with pytest.raises(ModelFileError) as caught:
        read_safetensors_header(path)
    assert "tensor 'w'" in str(caught.value) and words in str(caught.value)


@pytest.mark.parametrize(
    ("metadata", "words"),
    [(["a"], "__metadata__ is a JSON list"), ({"a": 1}, "__metadata__ entry 'a' is not a string")],
)
def test_bad_metadata_is_refused(tmp_path: Path, metadata: Any, words: str) -> None:
    path = raw_file(tmp_path / "bad.safetensors", {"__metadata__": metadata})
    with pytest.raises(ModelFileError, match=words):
        read_safetensors_header(path)


def test_offsets_past_the_end_of_the_file_are_truncation(tmp_path: Path) -> None:
    header = {"w": {"dtype": "U8", "shape": [8], "data_offsets": [4, 12]}}
    path = raw_file(tmp_path / "cut.safetensors", header, b"\x00" * 6)
    expected = 8 + len(json.dumps(header)) + 12
    with pytest.raises(ModelFileError, match=f"truncated: expected {expected} bytes, file has {expected - 6}"):
        read_safetensors_header(path)
