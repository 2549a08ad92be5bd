"""Model downloads the server runs for a workflow: one job at a time, on its own thread, never on the event loop.

Each job fetches the missing models of one workflow check (``app.workflow_download``); its state is read with
``status`` and every change is published (thread-safe) as a ``reelgraph.model_download`` WebSocket message.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from app.workflow_download import ModelDownloads, ModelDownloadState, split_downloads
from app.workflow_report import MissingModel, WorkflowReport
from models.download import HubSettings
from models.folders import ModelFolders

logger = logging.getLogger(__name__)

DOWNLOAD_EVENT = "reelgraph.model_download"
LATEST = "latest"
KEPT_JOBS = 20  # finished jobs whose status can still be read

Publish = Callable[[dict[str, Any]], None]


class DownloadBusyError(RuntimeError):
    """A download job is already running; the message names it."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"download job {job_id} is still running; wait for it (GET /models/download/{job_id})")
        self.job_id = job_id


@dataclass
class _Job:
    job_id: str
    downloads: ModelDownloads
    by_hand: tuple[MissingModel, ...]
    thread: threading.Thread
    finished: threading.Event = field(default_factory=threading.Event)

    def status(self) -> dict[str, Any]:
        states = self.downloads.snapshot()
        if not self.finished.is_set():
            state = "running"
        elif any(item.status != "done" for item in states):
            state = "failed"
        else:
            state = "done"
        return {
            "job_id": self.job_id,
            "state": state,
            "models": [item.to_json() for item in states],
            "by_hand": [model.to_json() for model in self.by_hand],
        }


class ModelDownloadService:
    """Starts download jobs and answers their status; ``stop`` (at shutdown) stops the running one between files."""

    def __init__(self, folders: ModelFolders, publish: Publish | None = None) -> None:
        self._folders = folders
        self._publish = publish
        self._jobs: OrderedDict[str, _Job] = OrderedDict()
        self._lock = threading.Lock()

    def start(self, report: WorkflowReport) -> dict[str, Any]:
        """Start fetching the report's missing Hub models; the new job's status. ``DownloadBusyError`` if one runs."""
        fetchable, by_hand = split_downloads(report)
        with self._lock:
            running = next((job for job in self._jobs.values() if not job.finished.is_set()), None)
            if running is not None:
                raise DownloadBusyError(running.job_id)
            job_id = str(uuid.uuid4())
            downloads = ModelDownloads(
                fetchable, self._folders, HubSettings.from_env(), on_change=lambda state: self._changed(job_id, state)
            )
            thread = threading.Thread(target=self._run, args=(job_id,), name=f"download-{job_id[:8]}", daemon=True)
            job = _Job(job_id, downloads, tuple(by_hand), thread)
            self._jobs[job_id] = job
            while len(self._jobs) > KEPT_JOBS:
                self._jobs.popitem(last=False)
            thread.start()
        return job.status()

    def status(self, job_id: str) -> dict[str, Any] | None:
        """A job's status (``latest``: the newest job's); None for an unknown id."""
        if job_id == LATEST:
            job = next(reversed(self._jobs.values()), None)
        else:
            job = self._jobs.get(job_id)
        return job.status() if job is not None else None

    def stop(self) -> None:
        for job in list(self._jobs.values()):
            job.downloads.stop()

    def _run(self, job_id: str) -> None:
        job = self._jobs.get(job_id)
        if job is None:
            return
        try:
            job.downloads.run()
        except Exception:  # a bug, not a failed download (those are recorded per model): keep the server up
            logger.exception("download job %s stopped", job_id)
        finally:
            job.finished.set()
        if self._publish is not None:
            self._publish({"job_id": job_id, "finished": True, "state": job.status()["state"]})

    def _changed(self, job_id: str, state: ModelDownloadState) -> None:
        if self._publish is not None:
            self._publish({"job_id": job_id, "finished": False, "model": state.to_json()})
