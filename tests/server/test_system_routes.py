"""/system_stats, the model-folder routes, /extensions and /view_metadata, against real files on a loopback server."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yarl
from aiohttp.test_utils import TestClient

from app.config import AppConfig
from app.engine import Engine
from server.app import create_app
from server.config import ServerConfig
from server.keys import SYSTEM_INFO

DEVICE_KEYS = {"name", "type", "index", "vram_total", "vram_free", "torch_vram_total", "torch_vram_free"}


def put(path: Path, data: bytes = b"weights") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def safetensors(metadata: dict[str, str] | None) -> bytes:
    """A real safetensors file: one F32 tensor of two values, with ``metadata`` as ``__metadata__`` when given."""
    header: dict[str, Any] = {"weight": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}
    if metadata is not None:
        header["__metadata__"] = metadata
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + struct.pack("<2f", 1.0, 2.0)


async def error_of(response: Any, status: int) -> dict[str, Any]:
    assert response.status == status, await response.text()
    error = (await response.json())["error"]
    assert error["message"]
    return error


async def test_system_stats_has_comfyui_shape(client: TestClient) -> None:
    response = await client.get("/api/system_stats")
    assert response.status == 200
    stats = await response.json()
    system = stats["system"]
    assert {"os", "ram_total", "ram_free", "comfyui_version", "python_version", "pytorch_version"} <= set(system)
    assert system["os"] == sys.platform and system["python_version"] == sys.version
    assert system["embedded_python"] is False and isinstance(system["argv"], list)
    assert 0 < system["ram_free"] <= system["ram_total"]
    import torch

    assert system["pytorch_version"] == torch.__version__
    assert stats["devices"] and all(set(device) == DEVICE_KEYS for device in stats["devices"])
    first = stats["devices"][0]
    if torch.cuda.is_available():
        assert first["type"] == "cuda" and first["index"] == 0 and first["name"].startswith("cuda:0 ")
        assert 0 < first["vram_free"] <= first["vram_total"]
    else:
        assert first["name"] == first["type"] == "cpu" and first["index"] is None
        assert first["vram_total"] == first["torch_vram_total"] == system["ram_total"]
        assert first["vram_free"] > 0 and first["torch_vram_free"] > 0
    assert (await (await client.get("/system_stats")).json())["system"]["ram_total"] == system["ram_total"]


async def test_system_stats_probes_once(client: TestClient) -> None:
    """The torch import and device scan happen on the first request only (bench/api_load.py times the rest)."""
    await client.get("/system_stats")
    info = client.app[SYSTEM_INFO]
    probed = await info.static()
    for _ in range(3):
        assert (await client.get("/system_stats")).status == 200
    assert await info.static() is probed


async def test_cuda_devices_follow_comfyui_arithmetic(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a GPU here, torch.cuda is faked: free VRAM adds what torch reserved but does not use."""
    import torch

    fakes = {
        "is_available": lambda: True,
        "device_count": lambda: 2,
        "get_device_name": lambda index: f"GPU{index}",
        "get_allocator_backend": lambda: "native",
        "mem_get_info": lambda index: (30 + index, 100),
        "memory_reserved": lambda index: 20,
        "memory_allocated": lambda index: 5,
    }
    for name, fake in fakes.items():
        monkeypatch.setattr(torch.cuda, name, fake)
    devices = (await (await client.get("/system_stats")).json())["devices"]
    assert devices == [
        {
            "name": f"cuda:{index} GPU{index} : native",
            "type": "cuda",
            "index": index,
            "vram_total": 100,
            "vram_free": 30 + index + 15,
            "torch_vram_total": 20,
            "torch_vram_free": 15,
        }
        for index in (0, 1)
    ]


def test_the_server_does_not_import_torch_at_import_time() -> None:
    code = "import sys, server.app; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])


async def test_models_lists_folder_keys_and_files(client: TestClient, app_config: AppConfig) -> None:
    keys = await (await client.get("/models")).json()
    assert keys[0] == "checkpoints" and "loras" in keys and "embeddings" in keys
    loras = app_config.models_dir / "loras"
    for name in ("style.safetensors", "people/face.sft", "readme.txt", ".hidden.pt"):
        put(loras / name)
    assert await (await client.get("/api/models/loras")).json() == ["people/face.sft", "style.safetensors"]
    assert await (await client.get("/models/vae")).json() == []


async def test_unknown_model_folder_is_a_json_404_naming_the_known_ones(client: TestClient) -> None:
    error = await error_of(await client.get("/models/nope"), 404)
    assert error["type"] == "unknown_model_folder" and "checkpoints" in error["message"]


async def test_embeddings_are_names_without_extension(client: TestClient, app_config: AppConfig) -> None:
    assert await (await client.get("/embeddings")).json() == []
    for name in ("easynegative.safetensors", "sub/bad-hands.pt", "notes.txt"):
        put(app_config.models_dir / "embeddings" / name)
    assert await (await client.get("/api/embeddings")).json() == ["easynegative", "sub/bad-hands"]


async def test_extensions_lists_served_scripts(
    aiohttp_client: Any, engine: Engine, server_config: ServerConfig, tmp_path: Path
) -> None:
    web_root = tmp_path / "web"
    put(web_root / "index.html", b"<title>Reelgraph</title>")
    plain = await aiohttp_client(create_app(engine, server_config, web_root=web_root))
    assert await (await plain.get("/extensions")).json() == []
    put(web_root / "extensions" / "pack" / "widgets.js", b"export {};")
    put(web_root / "extensions" / "top.js", b"export {};")
    put(web_root / "extensions" / "pack" / "style.css", b"")
    scripts = await (await plain.get("/api/extensions")).json()
    assert scripts == ["/extensions/pack/widgets.js", "/extensions/top.js"]
    served = await plain.get(scripts[0])
    assert served.status == 200 and await served.text() == "export {};"


async def test_view_metadata_returns_the_header_metadata(client: TestClient, app_config: AppConfig) -> None:
    metadata = {"ss_network_dim": "16", "modelspec.title": "Tiny"}
    put(app_config.models_dir / "loras" / "sub" / "tiny.safetensors", safetensors(metadata))
    put(app_config.models_dir / "loras" / "short.sft", safetensors({"a": "b"}))
    response = await client.get("/view_metadata/loras", params={"filename": "sub/tiny.safetensors"})
    assert response.status == 200 and await response.json() == metadata
    response = await client.get("/api/view_metadata/loras", params={"filename": "short.sft"})
    assert await response.json() == {"a": "b"}


async def test_view_metadata_errors(client: TestClient, app_config: AppConfig) -> None:
    loras = app_config.models_dir / "loras"
    put(loras / "plain.safetensors", safetensors(None))
    put(loras / "old.ckpt")
    put(loras / "text.safetensors", b"this is not a safetensors file at all")
    put(loras / "tiny.safetensors", b"\x01\x02")
    put(loras / "huge.safetensors", struct.pack("<Q", 200 * 1024 * 1024) + b"{}")
    put(loras / "cut.safetensors", struct.pack("<Q", 100) + b'{"__metadata__": {}}')
    put(loras / "notjson.safetensors", struct.pack("<Q", 4) + b"\xff\xfe{[")
    put(loras / "list.safetensors", struct.pack("<Q", 2) + b"[]")

    async def metadata_error(status: int, filename: str | None, folder: str = "loras") -> dict[str, Any]:
        params = {} if filename is None else {"filename": filename}
        return await error_of(await client.get(f"/view_metadata/{folder}", params=params), status)

    assert (await metadata_error(404, "plain.safetensors"))["type"] == "no_metadata"
    assert (await metadata_error(400, "old.ckpt"))["type"] == "not_safetensors"
    assert "over" in (await metadata_error(400, "text.safetensors"))["message"]
    assert "over" in (await metadata_error(400, "huge.safetensors"))["message"]
    for name in ("tiny.safetensors", "cut.safetensors", "notjson.safetensors", "list.safetensors"):
        assert (await metadata_error(400, name))["type"] == "not_safetensors"
    assert (await metadata_error(400, None))["type"] == "missing_filename"
    assert (await metadata_error(404, "absent.safetensors"))["type"] == "not_found"
    assert (await metadata_error(404, "plain.safetensors", folder="nope"))["type"] == "unknown_model_folder"


@pytest.mark.parametrize(
    "query",
    [
        "filename=..%2Fcheckpoints%2Fsecret.safetensors",
        "filename=%2e%2e%2f%2e%2e%2foutside%2Fsecret.safetensors",
        "filename=..%5Coutside%5Csecret.safetensors",
        "filename=%2Fabsolute%2Fsecret.safetensors",
        "filename=link%2Fsecret.safetensors",
    ],
)
async def test_view_metadata_refuses_paths_leading_outside_the_folder(
    client: TestClient, app_config: AppConfig, tmp_path: Path, query: str
) -> None:
    secret = safetensors({"secret": "yes"})
    put(app_config.models_dir / "checkpoints" / "secret.safetensors", secret)
    put(tmp_path / "outside" / "secret.safetensors", secret)
    (app_config.models_dir / "loras").mkdir(parents=True)
    os.symlink(tmp_path / "outside", app_config.models_dir / "loras" / "link")
    query = query.replace("absolute", str(tmp_path / "outside").lstrip("/").replace("/", "%2F"))
    url = yarl.URL(f"/view_metadata/loras?{query}", encoded=True)
    error = await error_of(await client.get(url), 403)
    assert error["type"] == "forbidden_path"
