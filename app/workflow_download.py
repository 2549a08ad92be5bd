"""Fetch the missing models a workflow check found, one after another, keeping each one's state.

Models whose URL is a Hugging Face file URL are fetched through ``models.download`` into their folder under their
listed name; the others are left to be downloaded by hand. Used by ``main.py download WORKFLOW`` and by the server's
``POST /models/download`` (which runs ``ModelDownloads.run`` on a thread and reads ``snapshot()`` from the loop).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from app.workflow_report import MissingModel, WorkflowReport
from models.download import DownloadError, HubSettings, download, plan_model_file
from models.folders import ModelFolders

ModelStatus = Literal["pending", "downloading", "done", "failed", "stopped"]


@dataclass(frozen=True)
class ModelDownloadState:
    """Where one model's download stands: ``paths`` once done, ``error`` (one line) once failed."""

    model: MissingModel
    status: ModelStatus = "pending"
    total_bytes: int | None = None
    paths: tuple[str, ...] = ()
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            **self.model.to_json(),
            "status": self.status,
            "total_bytes": self.total_bytes,
            "paths": list(self.paths),
            "error": self.error,
        }


def split_downloads(report: WorkflowReport) -> tuple[list[MissingModel], list[MissingModel]]:
    """``(from the Hub, by hand)``: the missing models with a Hub file URL, and the others."""
    fetchable = [model for model in report.missing_models if model.hub_file is not None]
    by_hand = [model for model in report.missing_models if model.hub_file is None]
    return fetchable, by_hand


@dataclass
class ModelDownloads:
    """The downloads of a list of models; ``run`` fetches them in order and may be stopped between files.

    ``on_change`` is called (on the running thread) with each state as it changes; ``snapshot`` may be called from
    any thread.
    """

    models: Sequence[MissingModel]
    folders: ModelFolders
    settings: HubSettings = field(default_factory=HubSettings.from_env)
    on_change: Callable[[ModelDownloadState], None] | None = None
    _states: list[ModelDownloadState] = field(init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _stop: threading.Event = field(default_factory=threading.Event, init=False)

    def __post_init__(self) -> None:
        self._states = [ModelDownloadState(model) for model in self.models]

    def snapshot(self) -> list[ModelDownloadState]:
        with self._lock:
            return list(self._states)

    def stop(self) -> None:
        """Stop after the file being fetched; the models not started are marked ``stopped``."""
        self._stop.set()

    def run(self) -> list[ModelDownloadState]:
        """Fetch every model; a failure is recorded on its model and the next one is tried."""
        for index, model in enumerate(self.models):
            if self._stop.is_set():
                self._set(index, status="stopped")
                continue
            self._set(index, status="downloading")
            try:
                hub_file = model.hub_file
                if hub_file is None:
                    raise DownloadError(f"{model.url} is not a Hugging Face file URL")
                plan = plan_model_file(hub_file, self.folders, model.folder, model.name, self.settings)
                self._set(index, total_bytes=plan.total_bytes)
                result = download(plan, self.settings)
            except DownloadError as exc:
                self._set(index, status="failed", error=str(exc))
            else:
                self._set(index, status="done", paths=tuple(str(path) for path in result.paths))
        return self.snapshot()

    def _set(self, index: int, **changes: Any) -> None:
        with self._lock:
            state = replace(self._states[index], **changes)
            self._states[index] = state
        if self.on_change is not None:
            self.on_change(state)
