"""Load a workflow from a file or a parsed JSON object, in API or UI format, into an API-format prompt.

Accepted: an API prompt ``{"<id>": {"class_type", "inputs"}}``; a UI workflow ``{"nodes": [...], "links": [...]}``;
the wrapper ``{"prompt": {...api...}, "workflow": {...ui...}}``; ComfyUI's ``POST /prompt`` body (UI workflow under
``extra_data.extra_pnginfo.workflow``); and a history entry (``"prompt": [number, id, prompt, extra_data, outputs]``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from graph.errors import WorkflowFormatError
from graph.registry import NodeRegistry
from graph.ui_format import UiConversion, convert_ui

WorkflowFormat = Literal["api", "ui"]


@dataclass(frozen=True)
class LoadedWorkflow:
    """The API prompt to run, the UI workflow when one came with it, and which format the source was.

    ``conversion`` (when the prompt was converted from the UI workflow) says which UI node each API node came from.
    """

    api: dict[str, Any]
    ui: dict[str, Any] | None
    source_format: WorkflowFormat
    conversion: UiConversion | None = None


def detect_format(data: Any) -> WorkflowFormat:
    """Say whether ``data`` (or the prompt inside a wrapper) is an API prompt or a UI workflow."""
    if _is_ui(data):
        return "ui"
    if _is_api(data):
        return "api"
    prompt, ui = _unwrap(data)
    if prompt is not None:
        return "api"
    if ui is not None:
        return "ui"
    raise WorkflowFormatError(_neither_message(data))


def load_workflow(source: Path | str | Mapping[str, Any], registry: NodeRegistry) -> LoadedWorkflow:
    """Read ``source`` (a path, or an already parsed JSON object) and convert it to an API prompt.

    Args:
        source: a file path (``str`` is always a path, never JSON text) or a parsed workflow object.
        registry: the node specs used to map a UI workflow's widget values onto input names.
    Raises:
        WorkflowFormatError: the file is missing or unreadable, not UTF-8 or JSON, or neither format; the
            message names the path.
    """
    if isinstance(source, Mapping):
        return _load_data(source, registry)
    path = Path(source)
    data = _read_json(path)
    try:
        return _load_data(data, registry)
    except WorkflowFormatError as exc:
        raise WorkflowFormatError(f"{path}: {exc}") from exc


def _load_data(data: Any, registry: NodeRegistry) -> LoadedWorkflow:
    if _is_ui(data):
        return _converted(data, registry)
    if _is_api(data):
        return LoadedWorkflow(api=dict(data), ui=None, source_format="api")
    prompt, ui = _unwrap(data)
    if prompt is not None:
        return LoadedWorkflow(api=dict(prompt), ui=dict(ui) if ui is not None else None, source_format="api")
    if ui is not None:
        return _converted(ui, registry)
    raise WorkflowFormatError(_neither_message(data))


def _converted(ui: Mapping[str, Any], registry: NodeRegistry) -> LoadedWorkflow:
    conversion = convert_ui(ui, registry)
    return LoadedWorkflow(api=conversion.api, ui=dict(ui), source_format="ui", conversion=conversion)


def _read_json(path: Path) -> Any:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise WorkflowFormatError(f"{path}: workflow file not found") from None
    except IsADirectoryError:
        raise WorkflowFormatError(f"{path}: is a directory, not a workflow file") from None
    except OSError as exc:
        raise WorkflowFormatError(f"{path}: cannot read workflow file: {exc.strerror or exc}") from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise WorkflowFormatError(f"{path}: not UTF-8 text (bad byte at offset {exc.start})") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise WorkflowFormatError(f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from exc


def _is_ui(data: Any) -> bool:
    return isinstance(data, Mapping) and isinstance(data.get("nodes"), list)


def _is_api(data: Any) -> bool:
    return isinstance(data, Mapping) and bool(data) and all(_has_class_type(body) for body in data.values())


def _has_class_type(body: Any) -> bool:
    return isinstance(body, Mapping) and isinstance(body.get("class_type"), str)


def _unwrap(data: Any) -> tuple[Mapping[str, Any] | None, Mapping[str, Any] | None]:
    """The API prompt and UI workflow inside a wrapper object, each None when absent."""
    if not isinstance(data, Mapping):
        return None, None
    prompt, extra = data.get("prompt"), data.get("extra_data")
    if isinstance(prompt, list) and len(prompt) >= 3:  # a history entry: [number, id, prompt, extra_data, outputs]
        prompt, extra = prompt[2], prompt[3] if len(prompt) > 3 else None
    ui = data.get("workflow")
    if ui is None and isinstance(extra, Mapping) and isinstance(extra.get("extra_pnginfo"), Mapping):
        ui = extra["extra_pnginfo"].get("workflow")
    return (prompt if _is_api(prompt) else None), (ui if _is_ui(ui) else None)


def _neither_message(data: Any) -> str:
    if isinstance(data, Mapping) and not data:
        return "the workflow is empty"
    if isinstance(data, Mapping) and "prompt" in data:
        return "'prompt' is not an API prompt: expected {id: {class_type, inputs}}"
    if isinstance(data, Mapping) and any(isinstance(body, Mapping) and "class_type" in body for body in data.values()):
        bad = next(key for key, body in data.items() if not _has_class_type(body))
        return f"API prompt node {bad}: class_type is missing or not a string"
    shape = "object" if isinstance(data, Mapping) else type(data).__name__
    return (
        f"not a workflow: expected an API prompt ({{id: {{class_type, inputs}}}}) or a UI workflow "
        f"({{nodes: [...], links: [...]}}), got a JSON {shape}"
    )
