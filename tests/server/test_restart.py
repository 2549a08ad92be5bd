"""Kill the server with SIGKILL mid-run and restart it: pending prompts run, the killed one is recorded failed."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.config import REPO_ROOT
from tests.server.process import ServerProcess, free_port, server_command
from tests.server.ws_helpers import image_chain


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    port = free_port()
    process = ServerProcess(server_command(tmp_path, port, module="tests.server.slow_nodes"), port, tmp_path / "log")
    yield process.start()
    process.stop()


def test_kill_9_loses_nothing(server: ServerProcess) -> None:
    slow = image_chain(("SlowPass", {"steps": 100000, "seconds": 0.01}), prefix="killed")
    killed = server.post("/prompt", {"prompt": slow, "client_id": "k"})["prompt_id"]
    pending = [
        server.post("/prompt", {"prompt": image_chain(("ImageInvert", {}), prefix=f"after{i}")})["prompt_id"]
        for i in range(3)
    ]
    server.wait_for(lambda: [item[1] for item in server.get("/queue")["queue_running"]] == [killed])
    assert [item[1] for item in server.get("/queue")["queue_pending"]] == pending

    server.kill()
    server.start()

    server.wait_for(lambda: len(server.get("/history")) == 4)
    history = server.get("/history")
    assert list(history) == [killed, *pending]
    failed = history[killed]["status"]
    assert failed["status_str"] == "error" and failed["completed"] is False
    kind, message = failed["messages"][-1]
    assert kind == "execution_error" and "was running" in message["exception_message"]
    assert message["prompt_id"] == killed
    for prompt_id in pending:
        assert history[prompt_id]["status"]["status_str"] == "success"
        assert history[prompt_id]["outputs"]["99"]["images"]
    assert server.get("/queue") == {"queue_running": [], "queue_pending": []}

    again = server.post(f"/history/{killed}/requeue", {})
    assert again["node_errors"] == {}
    server.wait_for(lambda: [item[1] for item in server.get("/queue")["queue_running"]] == [again["prompt_id"]])


def test_a_second_server_on_the_same_data_dir_or_port_refuses_to_start(server: ServerProcess, tmp_path: Path) -> None:
    assert f"Reelgraph is running at http://127.0.0.1:{server.port}/" in server.log.read_text()
    same_data = server_command(tmp_path, free_port(), module="tests.server.slow_nodes")
    completed = subprocess.run(same_data, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert completed.returncode == 1
    assert "another Reelgraph server is using" in completed.stderr and "Traceback" not in completed.stderr
    same_port = server_command(tmp_path / "other", server.port)
    completed = subprocess.run(same_port, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert completed.returncode == 1 and f"cannot listen on 127.0.0.1:{server.port}" in completed.stderr
    assert server.get("/queue") == {"queue_running": [], "queue_pending": []}  # the first one is unharmed
