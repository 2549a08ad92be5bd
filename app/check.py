"""``main.py check WORKFLOW``: say whether a shared workflow runs here, and what stops it."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TextIO

from app.config import REPO_ROOT
from app.workflow_check import check_workflow
from app.workflow_source import load_workflow_file
from graph.errors import WorkflowFormatError
from graph.registry import NodeRegistry
from models.folders import ModelFolders
from nodes.folders import Folders


def check_registry(model_folders: ModelFolders, input_dir: Path | None = None) -> NodeRegistry:
    """The built-in nodes, with their file choices listing ``input_dir`` and ``model_folders``; no model is loaded."""
    from nodes import register_builtin_nodes  # imports torch: only when a command needs the nodes

    defaults = Folders.under(REPO_ROOT)
    folders = Folders(defaults.output_dir, (input_dir or defaults.input_dir).resolve(), defaults.temp_dir)
    registry = NodeRegistry()
    register_builtin_nodes(registry, folders, model_folders)
    return registry


def check_command(
    path: Path,
    registry: NodeRegistry,
    model_folders: ModelFolders,
    as_json: bool = False,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Print the report (lines, or JSON with ``as_json``); 0 when the workflow is ready, 1 when not or unreadable."""
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        report = check_workflow(load_workflow_file(path, registry), registry, model_folders)
    except WorkflowFormatError as exc:
        print(f"error: {exc}", file=err)
        return 1
    if as_json:
        out.write(json.dumps(report.to_json(), indent=2, ensure_ascii=False) + "\n")
    else:
        out.write("\n".join(report.lines()) + "\n")
    out.flush()
    return 0 if report.ready else 1
