"""A local stand-in for the Hugging Face Hub: just enough of its HTTP API for huggingface_hub 2.4's downloads.

It serves, from memory, for repos named ``namespace/name``:

- ``GET /api/models/{repo}[/revision/{rev}]``: the model info with its ``sha`` and ``siblings`` (sizes, blob ids, LFS);
- ``GET /api/models/{repo}/tree/{rev}``: the recursive file listing ``snapshot_download`` asks for;
- ``HEAD`` / ``GET /{repo}/resolve/{rev}/{path}``: ``ETag``, ``X-Repo-Commit``, ``Content-Length``, and ``Range``
  requests answered with ``206``.

Unknown repos, revisions and files get the Hub's ``404`` with its ``X-Error-Code``. Faults are queued per file and used
by the next GETs of it, one each: ``Drop(after_bytes)`` closes the connection part-way through the body,
``Status(code)`` answers an error. Every request is recorded. Each response closes its connection, so stopping the
server leaves nothing open.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

LFS_SUFFIXES = frozenset({".safetensors", ".sft", ".gguf", ".bin", ".pt", ".pth", ".ckpt"})


@dataclass(frozen=True)
class Drop:
    """Send the headers and ``after_bytes`` of the body, then close the connection."""

    after_bytes: int


@dataclass(frozen=True)
class Status:
    """Answer ``code`` instead of the file."""

    code: int


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    range: str | None
    status: int


@dataclass
class FakeRepo:
    """A repo of in-memory files at one commit, reachable as ``main`` or by its commit hash."""

    repo_id: str
    files: dict[str, bytes]
    commit: str = ""

    def __post_init__(self) -> None:
        self.commit = self.commit or hashlib.sha1(self.repo_id.encode()).hexdigest()

    def has_revision(self, revision: str) -> bool:
        return revision in ("main", self.commit)


@dataclass
class FakeHub:
    """The hub's repos, its request log and its queued faults; ``start()`` serves them on a loopback port."""

    repos: dict[str, FakeRepo] = field(default_factory=dict)
    requests: list[RecordedRequest] = field(default_factory=list)
    _faults: dict[tuple[str, str], list[Drop | Status]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    def add_repo(self, repo_id: str, files: Mapping[str, bytes]) -> FakeRepo:
        repo = FakeRepo(repo_id, dict(files))
        self.repos[repo_id] = repo
        return repo

    def queue_faults(self, repo_id: str, path: str, *faults: Drop | Status) -> None:
        with self._lock:
            self._faults.setdefault((repo_id, path), []).extend(faults)

    def next_fault(self, repo_id: str, path: str) -> Drop | Status | None:
        with self._lock:
            queued = self._faults.get((repo_id, path))
            return queued.pop(0) if queued else None

    def record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def file_gets(self, path: str) -> list[RecordedRequest]:
        """The GET requests made for a repo file (by its path in the repo)."""
        return [r for r in self.requests if r.method == "GET" and "/resolve/" in r.path and r.path.endswith("/" + path)]

    @property
    def url(self) -> str:
        assert self._server is not None, "the fake hub is not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> None:
        handler = type("BoundHandler", (_Handler,), {"hub": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        serve = partial(self._server.serve_forever, poll_interval=0.02)
        threading.Thread(target=serve, name="fake-hub", daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


@contextmanager
def running_hub() -> Iterator[FakeHub]:
    hub = FakeHub()
    hub.start()
    try:
        yield hub
    finally:
        hub.stop()


def use_hub(monkeypatch: pytest.MonkeyPatch, endpoint: str, home: Path) -> None:
    """Point huggingface_hub at ``endpoint``, online, with its home, cache and token under ``home``.

    huggingface_hub reads its settings into ``huggingface_hub.constants`` at import (and another test module sets
    ``HF_HUB_OFFLINE=1`` before importing it), so both the environment and those constants are set; the default
    endpoint is changed too, so nothing (not even huggingface_hub's own side requests) leaves the machine.
    """
    from huggingface_hub import constants

    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_CACHE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    monkeypatch.setenv("HF_HOME", str(home))
    values = {
        "ENDPOINT": endpoint,
        "HUGGINGFACE_CO_URL_TEMPLATE": endpoint + "/{repo_id}/resolve/{revision}/{filename}",
        "HF_HUB_OFFLINE": False,
        "HF_HOME": str(home),
        "HF_HUB_CACHE": str(home / "hub"),
        "HF_ASSETS_CACHE": str(home / "assets"),
        "HF_TOKEN_PATH": str(home / "token"),
        "HF_STORED_TOKENS_PATH": str(home / "stored_tokens"),
        "HF_XET_CACHE": str(home / "xet"),
        "AGENT_HARNESSES_PATH": str(home / ".agent_harnesses.json"),
    }
    for name, value in values.items():
        monkeypatch.setattr(constants, name, value)


class _Handler(BaseHTTPRequestHandler):
    hub: FakeHub
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._answer(head=False)

    def do_HEAD(self) -> None:
        self._answer(head=True)

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _answer(self, head: bool) -> None:
        self.close_connection = True
        path = unquote(urlsplit(self.path).path)
        parts = path.strip("/").split("/")
        if parts[:2] == ["api", "models"] and len(parts) >= 4:
            self._api(parts[2:])
        elif len(parts) >= 5 and parts[2] == "resolve":
            self._resolve(f"{parts[0]}/{parts[1]}", parts[3], "/".join(parts[4:]), head)
        else:
            self._error(404, "", "not a fake hub route")

    def _api(self, parts: list[str]) -> None:
        repo = self._repo("/".join(parts[:2]))
        if repo is None:
            return
        rest = parts[2:]
        if not rest or (len(rest) == 2 and rest[0] == "revision"):
            if rest and not self._revision(repo, rest[1]):
                return
            self._json(200, _model_info(repo))
        elif len(rest) >= 2 and rest[0] == "tree":
            if self._revision(repo, rest[1]):
                self._json(200, _tree(repo))
        else:
            self._error(404, "", "unknown api route")

    def _resolve(self, repo_id: str, revision: str, file: str, head: bool) -> None:
        repo = self._repo(repo_id)
        if repo is None or not self._revision(repo, revision):
            return
        data = repo.files.get(file)
        if data is None:
            self._error(404, "EntryNotFound", f"{file} not found", commit=repo.commit)
            return
        fault = None if head else self.hub.next_fault(repo_id, file)
        if isinstance(fault, Status):
            self._error(fault.code, "", "injected failure", commit=repo.commit)
            return
        start, status = 0, 200
        requested = self.headers.get("Range")
        if requested and not head:
            start = _range_start(requested, len(data))
            if start is None:
                self._error(416, "", "bad range", commit=repo.commit)
                return
            status = 206
        body = data[start:]
        self.send_response(status)
        self.send_header("ETag", f'"{_etag(file, data)}"')
        self.send_header("X-Repo-Commit", repo.commit)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(len(body)))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Connection", "close")
        self.end_headers()
        self._record(status)
        if head:
            return
        if isinstance(fault, Drop):
            self.wfile.write(body[: fault.after_bytes])
            self.wfile.flush()
            return  # the connection closes with the body incomplete
        self.wfile.write(body)

    def _repo(self, repo_id: str) -> FakeRepo | None:
        repo = self.hub.repos.get(repo_id)
        if repo is None:
            self._error(404, "RepoNotFound", "Repository not found")
        return repo

    def _revision(self, repo: FakeRepo, revision: str) -> bool:
        if repo.has_revision(revision):
            return True
        self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        return False

    def _json(self, status: int, value: Any) -> None:
        body = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self._record(status)
        self.wfile.write(body)

    def _error(self, status: int, code: str, message: str, commit: str | None = None) -> None:
        body = json.dumps({"error": message}).encode()
        self.send_response(status)
        if code:
            self.send_header("X-Error-Code", code)
        self.send_header("X-Error-Message", message)
        if commit:
            self.send_header("X-Repo-Commit", commit)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self._record(status)
        if self.command != "HEAD":
            self.wfile.write(body)

    def _record(self, status: int) -> None:
        self.hub.record(
            RecordedRequest(self.command, unquote(urlsplit(self.path).path), self.headers.get("Range"), status)
        )


def _model_info(repo: FakeRepo) -> dict[str, Any]:
    siblings = []
    for path, data in sorted(repo.files.items()):
        sibling: dict[str, Any] = {"rfilename": path, "size": len(data), "blobId": _git_sha1(data)}
        if _is_lfs(path):
            sibling["lfs"] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
        siblings.append(sibling)
    return {"id": repo.repo_id, "modelId": repo.repo_id, "sha": repo.commit, "private": False, "siblings": siblings}


def _tree(repo: FakeRepo) -> list[dict[str, Any]]:
    entries = []
    for path, data in sorted(repo.files.items()):
        entry: dict[str, Any] = {"type": "file", "path": path, "size": len(data), "oid": _git_sha1(data)}
        if _is_lfs(path):
            entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
        entries.append(entry)
    return entries


def _range_start(header: str, size: int) -> int | None:
    """The first byte of a ``bytes=N-`` range, or None when it is not one this hub serves."""
    unit, _, spec = header.partition("=")
    first, _, _ = spec.partition("-")
    if unit.strip() != "bytes" or not first.strip().isdigit():
        return None
    start = int(first)
    return start if start < size else None


def _etag(path: str, data: bytes) -> str:
    return hashlib.sha256(data).hexdigest() if _is_lfs(path) else _git_sha1(data)


def _is_lfs(path: str) -> bool:
    return PurePosixPath(path).suffix.lower() in LFS_SUFFIXES


def _git_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
