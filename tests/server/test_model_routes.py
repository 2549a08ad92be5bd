"""``POST /models/missing``: which models an editor workflow lists that the server's model folders lack."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from app.engine import Engine

VAE_URL = (
    "https://huggingface.co/Comfy-Org/Wan_2.1_ComfyUI_repackaged/resolve/main/split_files/vae/wan_2.1_vae.safetensors"
)
LORA_URL = "https://civitai.com/api/download/models/12345"


def workflow() -> dict[str, Any]:
    vae = {"name": "wan_2.1_vae.safetensors", "url": VAE_URL, "directory": "vae"}
    lora = {"name": "style.safetensors", "url": LORA_URL, "directory": "loras"}
    return {
        "nodes": [
            {"id": 10, "type": "VAELoader", "properties": {"models": [vae]}},
            {"id": 11, "type": "LoraLoaderModelOnly", "properties": {"models": [lora]}},
        ],
        "links": [],
        "extra": {"models": [{"name": "tiny-pipe", "directory": "diffusers"}]},
    }


async def error_of(response: Any, status: int) -> dict[str, Any]:
    assert response.status == status, await response.text()
    error = (await response.json())["error"]
    assert error["message"]
    return error


@pytest.mark.parametrize("prefix", ["", "/api"])
async def test_missing_and_present_models(client: TestClient, engine: Engine, prefix: str) -> None:
    folders = engine.config.model_folders
    vae = folders.folder("vae") / "wan_2.1_vae.safetensors"
    vae.parent.mkdir(parents=True)
    vae.write_bytes(b"weights")
    response = await client.post(f"{prefix}/models/missing", json={"workflow": workflow()})
    assert response.status == 200, await response.text()
    assert await response.json() == {
        "missing": [
            {"name": "style.safetensors", "folder": "loras", "url": LORA_URL, "repo_id": None, "nodes": ["11"]},
            {"name": "tiny-pipe", "folder": "diffusers", "url": None, "repo_id": None, "nodes": []},
        ],
        "present": [
            {
                "name": "wan_2.1_vae.safetensors",
                "folder": "vae",
                "url": VAE_URL,
                "repo_id": "Comfy-Org/Wan_2.1_ComfyUI_repackaged",
                "nodes": ["10"],
            }
        ],
    }
    assert not folders.folder("loras").exists()  # nothing is downloaded


async def test_a_workflow_without_models_needs_nothing(client: TestClient) -> None:
    response = await client.post("/models/missing", json={"workflow": {"nodes": [], "links": []}})
    assert await response.json() == {"missing": [], "present": []}


@pytest.mark.parametrize(
    ("body", "error_type", "message"),
    [
        (b"", "invalid_request", "the request body is empty"),
        (b"{not json", "invalid_request", "not valid JSON"),
        (b"[1, 2]", "invalid_request", "must be a JSON object, got list"),
        (b'{"prompt": {}}', "missing_workflow", 'send the editor workflow as {"workflow": {...}}'),
        (b'{"workflow": "wf.json"}', "invalid_workflow", "'workflow' must be the editor's workflow object, got str"),
        (b'{"workflow": {"1": {"class_type": "VAELoader", "inputs": {}}}}', "invalid_workflow", "no 'nodes' list"),
        (
            b'{"workflow": {"nodes": [{"id": 4, "properties": {"models": [{"name": "x"}]}}]}}',
            "invalid_workflow",
            "node 4: properties.models[0] ('x') has no 'directory'",
        ),
    ],
)
async def test_bad_bodies_are_400s(client: TestClient, body: bytes, error_type: str, message: str) -> None:
    response = await client.post("/api/models/missing", data=body, headers={"Content-Type": "application/json"})
    error = await error_of(response, 400)
    assert error["type"] == error_type
    assert message in error["message"]


async def test_the_folder_listing_route_is_unchanged(client: TestClient) -> None:
    response = await client.get("/models/vae")
    assert response.status == 200 and await response.json() == []
    assert (await client.get("/models/missing")).status == 404  # a GET names a folder, and there is none called so
