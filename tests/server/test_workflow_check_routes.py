"""``POST /workflow/check``, the check's items in a refused ``POST /prompt``, and ``POST /models/download`` fetching a
workflow's missing models from a (fake) Hub on a thread, on a real server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.app.check_samples import (
    MODEL_FILES,
    PACK,
    REPO,
    TEXT_ENCODER,
    UNET,
    UNSUPPORTED_SAMPLER,
    VAE,
    hub_url,
    put_models,
    unsupported_workflow,
    wan_workflow,
)
from tests.models.fake_hub import FakeHub, running_hub, use_hub
from tests.server.ws_helpers import TIMEOUT, connect

REGISTRY_URL = f"https://registry.comfy.org/nodes/{PACK}"


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    return tmp_path / "models"  # the app_config fixture's


async def test_check_names_the_pack_the_choice_and_the_models(client: TestClient) -> None:
    for path in ("/workflow/check", "/api/workflow/check"):
        response = await client.post(path, json={"workflow": unsupported_workflow()})
        assert response.status == 200
        report = await response.json()
        assert report["ready"] is False
        assert [(item["node_id"], item["pack"]["url"]) for item in report["missing_node_types"]] == [
            ("9", REGISTRY_URL)
        ]
        assert [(item["node_id"], item["value"]) for item in report["input_issues"]] == [("6", UNSUPPORTED_SAMPLER)]
        assert {(item["name"], item["url"]) for item in report["missing_models"]} == {
            (name, hub_url(repo_path)) for name, (_, repo_path) in MODEL_FILES.items()
        }


async def test_check_says_ready_when_everything_is_there(client: TestClient, models_dir: Path) -> None:
    put_models(models_dir)
    report = await (await client.post("/workflow/check", json={"workflow": wan_workflow()})).json()
    assert report["ready"] is True and len(report["present_models"]) == 3


@pytest.mark.parametrize(
    ("body", "error_type"),
    [
        ({}, "missing_workflow"),
        ({"workflow": [1]}, "invalid_workflow"),
        ({"workflow": {"nodes": 3}}, "invalid_workflow"),
    ],
)
async def test_check_refuses_what_is_not_a_workflow(client: TestClient, body: dict, error_type: str) -> None:
    response = await client.post("/workflow/check", json=body)
    assert response.status == 400
    assert (await response.json())["error"]["type"] == error_type


def assert_comfy_shape(node_errors: dict[str, Any]) -> None:
    for entry in node_errors.values():
        assert set(entry) == {"errors", "dependent_outputs", "class_type"}
        for error in entry["errors"]:
            assert set(error) == {"type", "message", "details", "extra_info"}


async def test_a_refused_prompt_carries_the_report_on_its_nodes(client: TestClient, models_dir: Path) -> None:
    put_models(models_dir, (UNET, TEXT_ENCODER))
    response = await client.post("/prompt", json={"prompt": unsupported_workflow()})
    assert response.status == 400
    body = await response.json()
    assert body["error"]["type"] == "missing_node_type"
    assert body["error"]["extra_info"]["pack"]["id"] == PACK
    node_errors = body["node_errors"]
    assert_comfy_shape(node_errors)
    (missing,) = node_errors["9"]["errors"]
    assert missing["type"] == "missing_node_type" and missing["extra_info"]["pack"]["url"] == REGISTRY_URL
    (sampler,) = node_errors["6"]["errors"]  # no known output needs the KSampler: validation alone skips it
    assert sampler["type"] == "value_not_in_list" and sampler["extra_info"]["input_name"] == "sampler_name"
    assert UNSUPPORTED_SAMPLER in sampler["extra_info"]["unsupported"] and node_errors["6"]["class_type"] == "KSampler"
    (model,) = node_errors["7"]["errors"]
    assert model["extra_info"]["missing_model"]["url"] == hub_url(MODEL_FILES[VAE][1])
    assert (
        model["details"]
        == f"vae_name: model file {VAE!r} is not in the vae folder; download it from {hub_url(MODEL_FILES[VAE][1])}"
    )
    assert body["report"]["ready"] is False and len(body["report"]["missing_models"]) == 1
    assert set(node_errors) == {"6", "7", "9"}


async def test_an_api_prompt_with_its_editor_workflow_gets_pack_names(client: TestClient, models_dir: Path) -> None:
    put_models(models_dir)
    workflow = unsupported_workflow()
    converted = await (await client.post("/workflow/check", json={"workflow": workflow})).json()
    assert converted["missing_node_types"][0]["pack"]["id"] == PACK
    prompt = {"9": {"class_type": "VHS_VideoCombine", "inputs": {"frame_rate": 16}}}
    response = await client.post(
        "/prompt", json={"prompt": prompt, "extra_data": {"extra_pnginfo": {"workflow": workflow}}}
    )
    assert response.status == 400
    body = await response.json()
    assert body["node_errors"]["9"]["errors"][0]["extra_info"]["pack"]["version"] == "1.6.1"
    assert body["report"]["source_format"] == "api"


async def test_each_left_over_widget_value_is_its_own_error(client: TestClient, models_dir: Path) -> None:
    put_models(models_dir)
    workflow = wan_workflow(sampler=UNSUPPORTED_SAMPLER)  # refused for the sampler; widget values alone are not
    workflow["nodes"][5]["widgets_values"] += ["extra", 3]
    response = await client.post("/prompt", json={"prompt": workflow})
    assert response.status == 400
    errors = (await response.json())["node_errors"]["6"]["errors"]
    assert [(error["type"], error["extra_info"]["received_value"]) for error in errors] == [
        ("value_not_in_list", UNSUPPORTED_SAMPLER),
        ("left_over_widget", "extra"),
        ("left_over_widget", 3),
    ]
    assert errors[2]["message"] == "widget value #8 (3) has no matching input in Reelgraph's KSampler"


async def test_a_valid_prompt_is_still_queued_without_a_report(client: TestClient) -> None:
    prompt = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
        "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
    }
    response = await client.post("/prompt", json={"prompt": prompt})
    assert response.status == 200
    assert "report" not in await response.json()


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeHub]:
    with running_hub() as hub:
        hub.add_repo(REPO, {repo_path: f"weights of {name}".encode() for name, (_, repo_path) in MODEL_FILES.items()})
        use_hub(monkeypatch, hub.url, tmp_path / "hf-home")
        yield hub


async def wait_for_job(client: TestClient, job_id: str) -> dict[str, Any]:
    async with asyncio.timeout(TIMEOUT):
        while True:
            status = await (await client.get(f"/models/download/{job_id}")).json()
            if status["state"] != "running":
                return status
            await asyncio.sleep(0.05)


async def test_downloads_run_on_a_thread_and_report_progress(
    client: TestClient, hub: FakeHub, models_dir: Path
) -> None:
    put_models(models_dir, (UNET,))
    workflow = unsupported_workflow()
    workflow["nodes"][1]["properties"]["models"][0]["url"] = "https://civitai.com/api/download/models/1"
    socket = await connect(client, "watcher")
    response = await client.post("/models/download", json={"workflow": workflow})
    assert response.status == 202
    started = await response.json()
    assert [item["name"] for item in started["models"]] == [VAE]
    assert [(item["name"], item["download"]) for item in started["by_hand"]] == [(TEXT_ENCODER, "by_hand")]

    status = await wait_for_job(client, started["job_id"])
    assert status["state"] == "done"
    (model,) = status["models"]
    target = models_dir / "vae" / VAE
    assert model["status"] == "done" and model["paths"] == [str(target)] and model["error"] is None
    assert target.read_bytes() == f"weights of {VAE}".encode()
    assert await (await client.get("/models/download/latest")).json() == status
    finished = await socket.until(lambda kind, data: kind == "reelgraph.model_download" and data["finished"])
    assert finished == {"job_id": started["job_id"], "finished": True, "state": "done"}
    progress = [
        data["model"]["status"]
        for kind, data in socket.text
        if kind == "reelgraph.model_download" and not data["finished"]
    ]
    assert progress == ["downloading", "downloading", "done"]  # started, size known, done


async def test_a_failed_download_is_reported_on_its_model(client: TestClient, hub: FakeHub) -> None:
    workflow = wan_workflow()
    workflow["nodes"][0]["properties"]["models"][0]["url"] = hub_url("split_files/nope.safetensors")
    started = await (await client.post("/api/models/download", json={"workflow": workflow})).json()
    status = await wait_for_job(client, started["job_id"])
    assert status["state"] == "failed"
    by_name = {item["name"]: item for item in status["models"]}
    assert by_name[UNET]["status"] == "failed"
    assert by_name[UNET]["error"] == f"{REPO}@main has no file 'split_files/nope.safetensors'"
    assert by_name[VAE]["status"] == by_name[TEXT_ENCODER]["status"] == "done"


async def test_an_unknown_job_is_404(client: TestClient) -> None:
    response = await client.get("/models/download/nope")
    assert response.status == 404
    assert (await response.json())["error"]["type"] == "download_not_found"
