"""Queue a prompt over the real API and watch it over a real WebSocket: messages, history, errors, routing."""

from __future__ import annotations

from pathlib import Path

from aiohttp.test_utils import TestClient

from app.config import AppConfig
from tests.server.ws_helpers import connect, image_chain, submit


async def test_full_message_sequence_history_and_output_file(client: TestClient, app_config: AppConfig) -> None:
    messages = await connect(client, "alice")
    hello = await messages.until(lambda kind, data: kind == "status")
    assert hello == {"status": {"exec_info": {"queue_remaining": 0}}, "sid": "alice"}

    queued = await submit(client, image_chain(("ImageInvert", {})), client_id="alice")
    prompt_id = queued["prompt_id"]
    assert queued["node_errors"] == {} and isinstance(queued["number"], int)
    await messages.done(prompt_id)

    kinds = messages.kinds(prompt_id)
    assert kinds[:2] == ["execution_start", "execution_cached"]
    assert kinds[-2:] == ["execution_success", "executing"]
    executing = [data["node"] for kind, data in messages.text if kind == "executing" and data["node"] is not None]
    assert executing == ["1", "2", "99"]
    executed = await messages.until(lambda kind, data: kind == "executed")
    image = executed["output"]["images"][0]
    assert executed["node"] == "99" and image["type"] == "output"
    assert (app_config.folders.output_dir / image["subfolder"] / image["filename"]).is_file()
    queue_sizes = [data["status"]["exec_info"]["queue_remaining"] for kind, data in messages.text if kind == "status"]
    assert 1 in queue_sizes and queue_sizes[-1] == 0

    history = await (await client.get(f"/history/{prompt_id}")).json()
    entry = history[prompt_id]
    assert entry["prompt"][1] == prompt_id and entry["prompt"][3]["client_id"] == "alice"
    assert entry["prompt"][4] == ["99"]
    assert entry["outputs"]["99"]["images"] == [image]
    assert entry["status"]["status_str"] == "success" and entry["status"]["completed"] is True
    assert [kind for kind, _ in entry["status"]["messages"]] == [
        "execution_start",
        "execution_cached",
        "execution_success",
    ]
    assert entry["meta"]["99"]["node_id"] == "99"
    assert (await (await client.get("/api/history")).json()).keys() == {prompt_id}
    params = {"filename": image["filename"], "subfolder": image["subfolder"], "type": image["type"]}
    viewed = await client.get("/view", params=params)
    saved = app_config.folders.output_dir / image["subfolder"] / image["filename"]
    assert viewed.status == 200 and await viewed.read() == saved.read_bytes()


async def test_second_run_reports_cached_nodes(client: TestClient) -> None:
    messages = await connect(client, "c")
    first = await submit(client, image_chain(("ImageInvert", {})), client_id="c")
    await messages.done(first["prompt_id"])
    second = await submit(client, image_chain(("ImageInvert", {})), client_id="c")
    await messages.done(second["prompt_id"])
    cached = [d for k, d in messages.text if k == "execution_cached" and d["prompt_id"] == second["prompt_id"]]
    assert cached[0]["nodes"] == ["99"]  # the whole result comes from the cache: nothing upstream is needed
    second_kinds = messages.kinds(second["prompt_id"])
    assert "executed" in second_kinds  # the cached output node's images are shown again
    assert second_kinds.count("executing") == 1  # only the final node-null message


async def test_validation_failure_is_400_with_node_errors_and_nothing_is_queued(client: TestClient) -> None:
    prompt = image_chain(("ImageScaleBy", {"upscale_method": "bilinear", "scale_by": 99.0}))
    response = await client.post("/prompt", json={"prompt": prompt})
    body = await response.json()
    assert response.status == 400
    assert body["error"]["type"] == "prompt_outputs_failed_validation"
    error = body["node_errors"]["2"]["errors"][0]
    assert error["type"] == "value_bigger_than_max" and error["extra_info"]["input_name"] == "scale_by"
    assert body["node_errors"]["2"]["class_type"] == "ImageScaleBy"
    assert await (await client.get("/queue")).json() == {"queue_running": [], "queue_pending": []}


async def test_bad_bodies_get_clear_json_errors(client: TestClient) -> None:
    cases = {
        "": "empty",
        "{not json": "not valid JSON",
        "[1, 2]": "JSON object",
        '{"prompt": {"1": 5}}': "node 1",
        '{"prompt": {"1": {"class_type": "Nope", "inputs": {}}}}': "Nope",
        '{"prompt": {}, "client_id": 7}': "client_id must be a str",
    }
    for raw, expected in cases.items():
        response = await client.post("/prompt", data=raw, headers={"Content-Type": "application/json"})
        body = await response.json()
        assert response.status == 400, raw
        assert expected in body["error"]["message"], (raw, body)
    missing = await (await client.post("/prompt", json={"client_id": "x"})).json()
    assert missing["error"]["type"] == "no_prompt" and missing["node_errors"] == {}
    no_outputs = await (await client.post("/prompt", json={"prompt": {}})).json()
    assert no_outputs["error"]["type"] == "prompt_no_outputs"


async def test_a_failing_node_is_reported_and_recorded(client: TestClient) -> None:
    messages = await connect(client, "f")
    queued = await submit(client, image_chain(("FailWith", {"message": "no good"})), client_id="f")
    await messages.done(queued["prompt_id"])
    error = await messages.until(lambda kind, data: kind == "execution_error")
    assert error["node_id"] == "2" and error["node_type"] == "FailWith"
    assert error["exception_message"] == "no good" and error["executed"] == ["1"]
    entry = (await (await client.get(f"/history/{queued['prompt_id']}")).json())[queued["prompt_id"]]
    assert entry["status"]["status_str"] == "error" and entry["status"]["completed"] is False
    assert entry["status"]["messages"][-1][0] == "execution_error"


async def test_events_go_to_the_submitting_client_and_status_to_everyone(client: TestClient) -> None:
    alice, bob = await connect(client, "alice"), await connect(client, "bob")
    queued = await submit(client, image_chain(("ImageInvert", {})), client_id="alice")
    await alice.done(queued["prompt_id"])
    await bob.until(lambda kind, data: kind == "status" and data["status"]["exec_info"]["queue_remaining"] == 0)
    assert alice.kinds(queued["prompt_id"]) and not bob.kinds(queued["prompt_id"])
    anonymous = await submit(client, image_chain(("ImageInvert", {}), prefix="anon"))
    await bob.done(anonymous["prompt_id"])  # no client_id: everyone sees it, as in ComfyUI
    await alice.done(anonymous["prompt_id"])


async def test_progress_and_binary_jpeg_previews(client: TestClient) -> None:
    messages = await connect(client, "p")
    queued = await submit(client, image_chain(("SlowPass", {"steps": 4, "seconds": 0.0}), size=32), client_id="p")
    await messages.done(queued["prompt_id"])
    progress = [(d["value"], d["max"], d["node"]) for k, d in messages.text if k == "progress"]
    assert progress == [(1, 4, "2"), (2, 4, "2"), (3, 4, "2"), (4, 4, "2")]
    assert messages.preview_formats() == [(1, 1)] * 4  # event 1 = preview image, format 1 = JPEG
    assert all(frame[8:10] == b"\xff\xd8" for frame in messages.binary)


async def test_a_ui_format_workflow_is_accepted_and_converted(client: TestClient, tmp_path: Path) -> None:
    import json

    from app.config import REPO_ROOT

    workflow = json.loads((REPO_ROOT / "workflows" / "blend_scale_ui.json").read_text())
    messages = await connect(client, "ui")
    queued = await submit(client, workflow, client_id="ui")
    await messages.done(queued["prompt_id"])
    entry = (await (await client.get(f"/history/{queued['prompt_id']}")).json())[queued["prompt_id"]]
    assert entry["status"]["status_str"] == "success"
    assert entry["prompt"][3]["extra_pnginfo"]["workflow"]["nodes"] == workflow["nodes"]
