"""The items of a workflow check (missing node types, input problems, missing models) and how they read.

``app.workflow_check`` finds them; this module only holds them and writes them as JSON and as lines for people.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from models.folders import FOLDER_KEYS
from models.requirements import HubFile, hub_file_from_url

PACK_REGISTRY = "registry"  # properties.cnr_id: an id in ComfyUI's node registry
PACK_GITHUB = "github"  # properties.aux_id: a GitHub "owner/repo"
COMFY_CORE = "comfy-core"  # the cnr_id ComfyUI's editor gives its own nodes
REGISTRY_URL = "https://registry.comfy.org/nodes/"
GITHUB_URL = "https://github.com/"
UNKNOWN_INPUT = "unknown_input"
LEFT_OVER_WIDGET = "left_over_widget"


@dataclass(frozen=True)
class NodePack:
    """The custom node pack a UI node says its type comes from."""

    id: str
    source: str  # PACK_REGISTRY or PACK_GITHUB
    version: str | None = None

    @property
    def url(self) -> str:
        return (REGISTRY_URL if self.source == PACK_REGISTRY else GITHUB_URL) + self.id

    def describe(self) -> str:
        if self.id == COMFY_CORE:
            return "a ComfyUI core node that Reelgraph does not have yet"
        version = f" {self.version}" if self.version else ""
        where = "ComfyUI registry" if self.source == PACK_REGISTRY else "GitHub"
        return f"pack {self.id}{version} ({where}: {self.url})"

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "source": self.source, "version": self.version, "url": self.url}


@dataclass(frozen=True)
class MissingNodeType:
    """A node whose type no registered class has; ``subgraph_missing`` when the type is a subgraph UUID whose
    definition the workflow lacks."""

    node_id: str
    class_type: str
    title: str | None
    pack: NodePack | None
    subgraph_missing: bool = False

    @property
    def reason(self) -> str:
        if self.subgraph_missing:
            return "subgraph definition missing (the workflow does not define this subgraph)"
        if self.pack is not None:
            return f"from {self.pack.describe()}"
        return "not a Reelgraph node, and the workflow does not say which pack it comes from"

    def to_json(self) -> dict[str, Any]:
        return {
            "node_id": self.node_id,
            "class_type": self.class_type,
            "title": self.title,
            "pack": self.pack.to_json() if self.pack is not None else None,
            "subgraph_missing": self.subgraph_missing,
            "message": f"node type {self.class_type!r} is missing: {self.reason}",
        }


@dataclass(frozen=True)
class InputIssue:
    """An input of a known node that we cannot take as given: a choice we lack, a value out of range, a missing or
    mistyped link, an input our class does not declare, or a saved widget value nothing took.

    ``type`` is ComfyUI's per-input error type, ``unknown_input`` or ``left_over_widget``.
    """

    node_id: str
    class_type: str
    title: str | None
    input_name: str | None
    type: str
    message: str
    value: Any = None

    def to_json(self) -> dict[str, Any]:
        return {
            "node_id": self.node_id,
            "class_type": self.class_type,
            "title": self.title,
            "input_name": self.input_name,
            "type": self.type,
            "message": self.message,
            "value": self.value,
        }


@dataclass(frozen=True)
class MissingModel:
    """A model file the workflow needs that no model folder holds.

    ``listed``: the workflow's models list names it; ``inputs``: ``(node id, input name)`` of loader inputs set to it.
    """

    name: str
    folder: str
    url: str | None
    repo_id: str | None
    node_ids: tuple[str, ...] = ()
    inputs: tuple[tuple[str, str], ...] = ()
    listed: bool = False

    @property
    def hub_file(self) -> HubFile | None:
        """The Hub file to fetch, when the URL is a Hub file URL and the folder one of ours."""
        if self.url is None or self.folder not in FOLDER_KEYS:
            return None
        return hub_file_from_url(self.url)

    def describe(self) -> str:
        where = ", ".join(f"node {node_id} {name}" for node_id, name in self.inputs) or ", ".join(
            f"node {node_id}" for node_id in self.node_ids
        )
        used = f" (used by {where})" if where else ""
        if self.hub_file is not None:
            source = f"from {self.url} (`download WORKFLOW` fetches it)"
        elif self.url:
            source = f"download by hand from {self.url}"
        else:
            source = "the workflow gives no URL: find the file and put it there"
        return f"{self.folder}/{self.name}{used}: {source}"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "folder": self.folder,
            "url": self.url,
            "repo_id": self.repo_id,
            "nodes": list(self.node_ids),
            "inputs": [{"node_id": node_id, "input_name": name} for node_id, name in self.inputs],
            "listed": self.listed,
            "download": "hub" if self.hub_file is not None else "by_hand",
        }


@dataclass(frozen=True)
class WorkflowReport:
    """Whether a workflow runs here, and if not, everything that stops it."""

    source_format: str
    missing_node_types: tuple[MissingNodeType, ...] = ()
    input_issues: tuple[InputIssue, ...] = ()
    missing_models: tuple[MissingModel, ...] = ()
    problems: tuple[str, ...] = ()  # whole-workflow problems: no output node, a dependency cycle, a bad model list
    present_models: tuple[str, ...] = ()  # "folder/name" of the listed models that are there
    left_out: tuple[MissingNodeType, ...] = ()  # unknown types nothing links to or from: not run, not blocking

    @property
    def ready(self) -> bool:
        return not (self.missing_node_types or self.input_issues or self.missing_models or self.problems)

    def to_json(self) -> dict[str, Any]:
        return {
            "ready": self.ready,
            "source_format": self.source_format,
            "missing_node_types": [item.to_json() for item in self.missing_node_types],
            "input_issues": [item.to_json() for item in self.input_issues],
            "missing_models": [item.to_json() for item in self.missing_models],
            "problems": list(self.problems),
            "present_models": list(self.present_models),
            "left_out": [item.to_json() for item in self.left_out],
        }

    def lines(self) -> list[str]:
        """The report for people: a verdict, then one line per item under a heading per kind."""
        if not self.left_out:
            return self._verdict()
        left_out = [f"  node {item.node_id}{_title(item)}: {item.class_type} {item.reason}" for item in self.left_out]
        return [*self._verdict(), "left out (types we lack, but nothing links to or from them):", *left_out]

    def _verdict(self) -> list[str]:
        if self.ready:
            listed = f" ({len(self.present_models)} listed model(s) present)" if self.present_models else ""
            return [f"ready: every node type, input and model this workflow uses is available here{listed}"]
        count = len(self.missing_node_types) + len(self.input_issues) + len(self.missing_models) + len(self.problems)
        lines = [f"not ready: {count} problem(s)"]
        if self.missing_node_types:
            lines.append("missing node types:")
            lines += [
                f"  node {item.node_id}{_title(item)}: {item.class_type} {item.reason}"
                for item in self.missing_node_types
            ]
        if self.input_issues:
            lines.append("inputs Reelgraph does not support:")
            lines += [
                f"  node {item.node_id} {item.class_type}{_title(item)}: {item.message}" for item in self.input_issues
            ]
        if self.missing_models:
            lines.append("missing models:")
            lines += [f"  {item.describe()}" for item in self.missing_models]
        if self.problems:
            lines.append("workflow problems:")
            lines += [f"  {problem}" for problem in self.problems]
        return lines


def _title(item: MissingNodeType | InputIssue) -> str:
    return f' "{item.title}"' if item.title and item.title != item.class_type else ""
