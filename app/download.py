"""``main.py download REPO_ID``: fetch a Hugging Face repo (or some of its files) into a model folder."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from app.config import DEFAULT_EXTRA_MODEL_PATHS, REPO_ROOT
from models.download import DownloadError, HubSettings, PlannedFile, download, plan_download
from models.folders import ModelFolders

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


def _size(count: int | None) -> str:
    value = float(count or 0)
    for unit in ("B", "KB", "MB"):
        if value < 1000:
            return f"{value:.0f} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"
