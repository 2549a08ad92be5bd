"""Queue control over the real API: interrupt, delete, clear, front, history paging, requeue, free, restarts."""

from __future__ import annotations

import asyncio
from typing import Any

import torch
from aiohttp.test_utils import TestClient

from app.config import AppConfig
from app.engine import Engine, build_engine
from server.app import create_app
from server.config import ServerConfig
from tests.server.conftest import ClientFactory
from tests.server.ws_helpers import Messages, connect, image_chain, submit


def slow(steps: int = 2000, seconds: float = 0.005, prefix: str = "slow") -> dict[str, Any]:
    return image_chain(("SlowPass", {"steps": steps, "seconds": seconds}), prefix=prefix)


async def started(messages: Messages, prompt_id: str) -> None:
    await messages.until(lambda kind, data: kind == "progress" and data["prompt_id"] == prompt_id)


async def test_interrupt_stops_the_running_prompt_and_the_queue_moves_on(client: TestClient) -> None:
    messages = await connect(client, "i")
    running = await submit(client, slow(), client_id="i")
    after = await submit(client, image_chain(("ImageInvert", {})), client_id="i")
    await started(messages, running["prompt_id"])
    other = await client.post("/interrupt", json={"prompt_id": after["prompt_id"]})  # not running: no effect
    assert other.status == 200
    assert (await client.post("/api/interrupt")).status == 200
    interrupted = await messages.until(lambda kind, data: kind == "execution_interrupted")
    assert interrupted["prompt_id"] == running["prompt_id"] and interrupted["node_id"] == "2"
    assert interrupted["node_type"] == "SlowPass" and interrupted["executed"] == ["1"]
    await messages.done(after["prompt_id"])
    entry = (await (await client.get(f"/history/{running['prompt_id']}")).json())[running["prompt_id"]]
    assert entry["status"]["status_str"] == "error" and entry["status"]["messages"][-1][0] == "execution_interrupted"
    assert (await (await client.get(f"/history/{after['prompt_id']}")).json())[after["prompt_id"]]["outputs"]


async def test_queue_shows_running_and_pending_and_delete_and_clear_edit_pending_only(client: TestClient) -> None:
    messages = await connect(client, "q")
    running = await submit(client, slow(), client_id="q")
    pending = [(await submit(client, slow(prefix=f"p{i}"), client_id="q"))["prompt_id"] for i in range(3)]
    await started(messages, running["prompt_id"])
    queue = await (await client.get("/queue")).json()
    assert [item[1] for item in queue["queue_running"]] == [running["prompt_id"]]
    assert [item[1] for item in queue["queue_pending"]] == pending
    number, prompt_id, prompt, extra, outputs = queue["queue_pending"][0]
    assert prompt_id == pending[0] and prompt["2"]["class_type"] == "SlowPass"
    assert extra["client_id"] == "q" and outputs == ["99"] and number > running["number"]
    assert await (await client.get("/prompt")).json() == {"exec_info": {"queue_remaining": 4}}

    await client.post("/queue", json={"delete": [pending[1], running["prompt_id"]]})
    queue = await (await client.get("/queue")).json()
    assert [item[1] for item in queue["queue_pending"]] == [pending[0], pending[2]]
    assert len(queue["queue_running"]) == 1  # delete never touches the running prompt
    await client.post("/queue", json={"clear": True})
    queue = await (await client.get("/api/queue")).json()
    assert queue["queue_pending"] == [] and len(queue["queue_running"]) == 1
    await client.post("/interrupt")
    await messages.done(running["prompt_id"])
    assert await (await client.get(f"/history/{pending[0]}")).json() == {}


async def test_front_puts_a_prompt_before_the_others(client: TestClient) -> None:
    messages = await connect(client, "o")
    running = await submit(client, slow(), client_id="o")
    back = await submit(client, slow(prefix="back"), client_id="o")
    front = await submit(client, slow(prefix="front"), client_id="o", front=True)
    assert front["number"] < 0 < back["number"]
    await started(messages, running["prompt_id"])
    queue = await (await client.get("/queue")).json()
    assert [item[1] for item in queue["queue_pending"]] == [front["prompt_id"], back["prompt_id"]]
    await client.post("/queue", json={"clear": True})
    await client.post("/interrupt")
    await messages.done(running["prompt_id"])


async def test_history_paging_delete_and_clear(client: TestClient) -> None:
    messages = await connect(client, "h")
    ids = []
    for index in range(5):
        queued = await submit(client, image_chain(("ImageInvert", {}), prefix=f"h{index}"), client_id="h")
        ids.append(queued["prompt_id"])
    await messages.done(ids[-1])
    assert list(await (await client.get("/history")).json()) == ids
    assert list(await (await client.get("/history?max_items=2")).json()) == ids[-2:]
    assert list(await (await client.get("/history?max_items=2&offset=1")).json()) == ids[1:3]
    bad = await client.get("/history?max_items=two")
    assert bad.status == 400 and "max_items" in (await bad.json())["error"]["message"]
    for path in ("/history", "/queue"):
        refused = await client.post(path, json={"delete": ids[0]})
        assert refused.status == 400 and "list of prompt ids" in (await refused.json())["error"]["message"]
    assert len(await (await client.get("/history")).json()) == 5
    await client.post("/history", json={"delete": [ids[0]]})
    assert list(await (await client.get("/history")).json()) == ids[1:]
    await client.post("/history", json={"clear": True})
    assert await (await client.get("/history")).json() == {}


async def test_requeue_runs_a_finished_prompt_again_under_a_new_id(client: TestClient) -> None:
    messages = await connect(client, "r")
    first = await submit(client, image_chain(("FailWith", {"message": "x"})), client_id="r")
    await messages.done(first["prompt_id"])
    again = await client.post(f"/history/{first['prompt_id']}/requeue")
    body = await again.json()
    assert again.status == 200 and body["prompt_id"] != first["prompt_id"] and body["node_errors"] == {}
    missing = await client.post("/history/nope/requeue")
    assert missing.status == 404 and "nope" in (await missing.json())["error"]["message"]
    await messages.until(lambda kind, data: kind == "execution_error" and data["prompt_id"] == body["prompt_id"])


async def test_prompt_id_and_number_from_the_client_are_kept_and_duplicates_refused(client: TestClient) -> None:
    messages = await connect(client, "n")
    queued = await submit(client, image_chain(("ImageInvert", {})), client_id="n", prompt_id="mine-1", number=7.5)
    assert queued["prompt_id"] == "mine-1" and queued["number"] == 7.5
    await messages.done("mine-1")
    duplicate = await client.post("/prompt", json={"prompt": image_chain(), "prompt_id": "mine-1"})
    assert duplicate.status == 400 and (await duplicate.json())["error"]["type"] == "prompt_id_in_use"


async def test_free_drops_cached_outputs_so_the_next_run_recomputes(client: TestClient) -> None:
    messages = await connect(client, "m")
    first = await submit(client, image_chain(("ImageInvert", {})), client_id="m")
    await messages.done(first["prompt_id"])
    assert (await client.post("/free", json={"free_memory": True})).status == 200
    second = await submit(client, image_chain(("ImageInvert", {})), client_id="m")
    await messages.done(second["prompt_id"])
    cached = [d["nodes"] for k, d in messages.text if k == "execution_cached" and d["prompt_id"] == second["prompt_id"]]
    assert cached == [[]]


async def test_a_stopped_server_resumes_its_queue_including_the_prompt_it_was_running(
    make_client: ClientFactory,
) -> None:
    client = await make_client()
    messages = await connect(client, "s")
    running = await submit(client, slow(steps=100, seconds=0.01), client_id="s")
    pending = [(await submit(client, image_chain(("ImageInvert", {}), prefix=f"s{i}")))["prompt_id"] for i in range(2)]
    await started(messages, running["prompt_id"])
    await client.close()  # graceful stop: the running prompt goes back to the queue

    restarted = await make_client()
    watcher = await connect(restarted, "s")
    for prompt_id in [running["prompt_id"], *pending]:
        await watcher.done(prompt_id)
    history = await (await restarted.get("/history")).json()
    assert list(history) == [running["prompt_id"], *pending]
    assert all(entry["status"]["status_str"] == "success" for entry in history.values())


async def test_a_reconnecting_client_learns_which_node_is_running(client: TestClient) -> None:
    first = await connect(client, "again")
    running = await submit(client, slow(), client_id="again")
    await started(first, running["prompt_id"])
    await first.socket.close()
    second = await connect(client, "again")
    executing = await second.until(lambda kind, data: kind == "executing")
    assert executing == {"node": "2", "display_node": "2", "prompt_id": running["prompt_id"]}
    await second.until(lambda kind, data: kind == "progress")  # the run's events now reach the new socket
    await client.post("/interrupt")
    await second.done(running["prompt_id"])


async def test_the_websocket_is_also_served_under_api(client: TestClient) -> None:
    socket = await client.ws_connect("/api/ws?clientId=prefixed")
    assert (await socket.receive_json())["data"]["sid"] == "prefixed"
    await socket.close()


async def test_an_interrupt_while_idle_or_for_another_prompt_never_reaches_the_next_one(client: TestClient) -> None:
    messages = await connect(client, "idle")
    assert (await client.post("/interrupt")).status == 200
    assert (await client.post("/interrupt", json={"prompt_id": "not-running"})).status == 200
    queued = await submit(client, image_chain(("SlowPass", {"steps": 3, "seconds": 0.0})), client_id="idle")
    await messages.done(queued["prompt_id"])
    assert "execution_success" in messages.kinds(queued["prompt_id"])


async def test_a_resumed_prompt_whose_nodes_are_gone_fails_with_a_clear_message(
    make_client: ClientFactory, aiohttp_client: Any, app_config: AppConfig, server_config: ServerConfig
) -> None:
    client = await make_client()
    messages = await connect(client, "gone")
    running = await submit(client, slow(), client_id="gone")
    await started(messages, running["prompt_id"])
    await client.close()  # the prompt goes back to the queue

    without_test_nodes = await aiohttp_client(create_app(build_engine(app_config), server_config))
    async with asyncio.timeout(20):
        while not (history := await (await without_test_nodes.get(f"/history/{running['prompt_id']}")).json()):
            await asyncio.sleep(0.02)
    entry = history[running["prompt_id"]]
    assert entry["status"]["status_str"] == "error"
    kind, error = entry["status"]["messages"][-1]
    assert kind == "execution_error" and "SlowPass" in error["exception_message"]


async def test_free_with_unload_models_unloads_idle_models(client: TestClient, engine: Engine) -> None:
    loads: list[int] = []

    def loader() -> torch.nn.Module:
        loads.append(1)
        return torch.nn.Linear(8, 8)

    handle = engine.models.load("tiny-linear", loader)
    with handle.use():
        pass
    assert handle.location != "unloaded"
    assert (await client.post("/free", json={"unload_models": True})).status == 200
    async with asyncio.timeout(10):
        while handle.location != "unloaded":  # the worker applies /free between prompts
            await asyncio.sleep(0.02)
    with handle.use() as module:  # used again: loaded again from its loader
        assert isinstance(module, torch.nn.Linear)
    assert len(loads) == 2
