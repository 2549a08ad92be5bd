"""Start the server as a real separate process (for kill -9, restart and unchanged-client tests)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.config import REPO_ROOT

START_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class ServerProcess:
    """A server process on ``port``; ``command`` is what started it, so it can start again."""

    command: list[str]
    port: int
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> ServerProcess:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO_ROOT)}
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(self.command, cwd=REPO_ROOT, env=env, stdout=log, stderr=log)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the server exited with {self.process.returncode}:\n{self.log.read_text()}")
            try:
                self.get("/queue")
                return self
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.1)
        raise AssertionError(f"the server did not start within {START_TIMEOUT} s:\n{self.log.read_text()}")

    def kill(self) -> None:
        """SIGKILL: no cleanup of any kind runs."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(f"http://{self.address}{path}", timeout=10) as response:
            return json.loads(response.read())

    def post(self, path: str, body: dict[str, Any]) -> Any:
        request = urllib.request.Request(f"http://{self.address}{path}", data=json.dumps(body).encode())
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def wait_for(self, predicate: Any, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met within {timeout} s:\n{self.log.read_text()[-4000:]}")
            time.sleep(0.05)


def server_command(tmp_path: Path, port: int, *, module: str = "main", extra: list[str] | None = None) -> list[str]:
    """``python -m module serve ...`` with every folder under ``tmp_path``."""
    folders = []
    for flag, name in (
        ("--output-dir", "output"),
        ("--input-dir", "input"),
        ("--temp-dir", "temp"),
        ("--models-dir", "models"),
        ("--data-dir", "data"),
    ):
        folders += [flag, str(tmp_path / name)]
    verb = ["serve"] if module == "main" else []
    return [sys.executable, "-m", module, *verb, "--port", str(port), *folders, *(extra or [])]
