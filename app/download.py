"""``main.py download REPO_ID``: fetch a Hugging Face repo (or some of its files) into a model folder; and
``main.py download WORKFLOW_FILE``: fetch the missing models a workflow lists."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from app.config import DEFAULT_EXTRA_MODEL_PATHS, REPO_ROOT
from app.workflow_check import check_workflow
from app.workflow_download import ModelDownloads, ModelDownloadState, split_downloads
from app.workflow_report import MissingModel
from app.workflow_source import load_workflow_file
from graph.errors import WorkflowFormatError
from graph.registry import NodeRegistry
from models.download import DownloadError, HubSettings, PlannedFile, download, plan_download, require_online
from models.folders import ModelFolders, UnknownModelFolderError

EXIT_INTERRUPTED = 130


def model_folders_for(models_dir: Path | None, extra_paths_file: Path | None) -> ModelFolders:
    """The model folders ``serve`` and ``run`` would use for these options (``ExtraPathsError`` for a bad file)."""
    root = (models_dir or REPO_ROOT / "weights").resolve()
    return ModelFolders.from_config(root, extra_paths_file, DEFAULT_EXTRA_MODEL_PATHS)


def download_command(
    folders: ModelFolders,
    repo_id: str,
    folder: str,
    include: Sequence[str] = (),
    revision: str | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Plan, report and fetch, printing each resulting file's path on ``out``.

    Returns 0 when done, 1 after one ``error:`` line on ``err``, 130 when interrupted.
    """
    out = out or sys.stdout
    err = err or sys.stderr
    settings = HubSettings.from_env()
    try:
        plan = plan_download(repo_id, folders, folder, include, revision, settings)
        if plan.skipped_pickles:
            shown = ", ".join(plan.skipped_pickles[:5]) + (", ..." if len(plan.skipped_pickles) > 5 else "")
            print(f"skipping pickled weights (the repo has safetensors): {shown}", file=err)
        print(
            f"{plan.repo_id}@{plan.commit[:12]}: {len(plan.files)} file(s), {_size(plan.total_bytes)} "
            f"-> {plan.destination}",
            file=err,
        )

        def announce(index: int, count: int, item: PlannedFile) -> None:
            size = f" ({_size(item.size)})" if item.size is not None else ""
            print(f"[{index + 1}/{count}] {item.repo_path}{size}", file=err, flush=True)

        result = download(plan, settings, announce)
    except DownloadError as exc:
        print(f"error: {exc}", file=err)
        return 1
    except KeyboardInterrupt:
        print("interrupted: the file being downloaded was discarded; run the command again to finish", file=err)
        return EXIT_INTERRUPTED
    if result.already_present:
        print(f"{len(result.already_present)} file(s) were already there", file=err)
    for path in result.paths:
        print(path, file=out)
    out.flush()
    return 0


def download_workflow_command(
    path: Path,
    registry: NodeRegistry,
    folders: ModelFolders,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Fetch each missing model of the workflow in ``path`` that has a Hugging Face URL, printing the paths on
    ``out``; the others are listed on ``err`` to be downloaded by hand.

    Returns 0 when every missing model is now there, 1 when some failed or need fetching by hand (or the workflow is
    unreadable: one ``error:`` line), 130 when interrupted.
    """
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        report = check_workflow(load_workflow_file(path, registry), registry, folders)
    except WorkflowFormatError as exc:
        print(f"error: {exc}", file=err)
        return 1
    fetchable, by_hand = split_downloads(report)
    if not report.missing_models:
        print("nothing to download: the models this workflow names are all there", file=err)
        return 0
    print(f"{len(fetchable)} model(s) to download, {len(by_hand)} to download by hand", file=err)
    settings = HubSettings.from_env()
    try:
        if fetchable:
            require_online(settings)
    except DownloadError as exc:
        print(f"error: {exc}", file=err)
        return 1

    def announce(state: ModelDownloadState) -> None:
        if state.status == "downloading":
            print(f"{state.model.folder}/{state.model.name} <- {state.model.url}", file=err, flush=True)
        elif state.status == "failed":
            print(f"error: {state.model.folder}/{state.model.name}: {state.error}", file=err, flush=True)

    downloads = ModelDownloads(fetchable, folders, settings, on_change=announce)
    try:
        states = downloads.run()
    except KeyboardInterrupt:
        print("interrupted: the file being downloaded was discarded; run the command again to finish", file=err)
        return EXIT_INTERRUPTED
    for state in states:
        for done in state.paths:
            print(done, file=out)
    out.flush()
    for model in by_hand:
        print(f"download by hand: {_by_hand_line(model, folders)}", file=err)
    failed = [state for state in states if state.status != "done"]
    return 1 if failed or by_hand else 0


def _by_hand_line(model: MissingModel, folders: ModelFolders) -> str:
    try:
        where = str(folders.folder(model.folder) / model.name)
    except UnknownModelFolderError:
        where = f"{model.folder}/{model.name} ({model.folder!r} is not a Reelgraph model folder)"
    source = f"from {model.url}" if model.url else "(the workflow gives no URL)"
    return f"{model.folder}/{model.name} {source} -> {where}"


def _size(count: int | None) -> str:
    value = float(count or 0)
    for unit in ("B", "KB", "MB"):
        if value < 1000:
            return f"{value:.0f} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"
