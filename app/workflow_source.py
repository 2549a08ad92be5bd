"""Read a workflow to check or download for: a JSON file (UI or API format) or an image or video that carries one."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from graph.errors import WorkflowFormatError
from graph.registry import NodeRegistry
from graph.workflow_file import LoadedWorkflow, load_workflow
from nodes.media.errors import MediaError
from nodes.media.provenance import read_embedded_workflow

JSON_FIRST_BYTES = (b"{", b"[")


def read_workflow_data(path: Path) -> Mapping[str, Any] | Path:
    """The workflow in ``path``: the path itself for a JSON file (``load_workflow`` reads it), or the workflow
    embedded in a PNG, WebP, GIF, mp4 or webm (the editor workflow when there is one, else the API prompt).

    Raises ``WorkflowFormatError`` naming the file and the reason.
    """
    try:
        with path.open("rb") as handle:
            head = handle.read(64).lstrip(b"\xef\xbb\xbf \t\r\n")
    except FileNotFoundError:
        raise WorkflowFormatError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise WorkflowFormatError(f"{path}: is a directory, not a workflow file") from None
    except OSError as exc:
        raise WorkflowFormatError(f"{path}: cannot read it: {exc.strerror or exc}") from None
    if not head or head[:1] in JSON_FIRST_BYTES:
        return path
    try:
        found = read_embedded_workflow(path)
    except MediaError as exc:
        raise WorkflowFormatError(f"{path}: {exc.reason}") from None
    if found.workflow is not None:
        return found.workflow
    if found.prompt is not None:
        return found.prompt
    raise WorkflowFormatError(f"{path}: no workflow is embedded in this {found.source} file")


def load_workflow_file(path: Path, registry: NodeRegistry) -> LoadedWorkflow:
    """``read_workflow_data`` then ``load_workflow``; ``WorkflowFormatError`` names the file."""
    data = read_workflow_data(path)
    if isinstance(data, Path):
        return load_workflow(data, registry)
    try:
        return load_workflow(data, registry)
    except WorkflowFormatError as exc:
        raise WorkflowFormatError(f"{path}: {exc}") from None
