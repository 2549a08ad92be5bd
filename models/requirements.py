"""The models a workflow says it needs, and which of them the model folders lack.

ComfyUI's editor stores them per node as ``properties.models = [{"name", "url", "directory"}]``, where ``directory``
is the model folder key and ``url`` usually a Hugging Face ``resolve`` URL. A workflow may also list them for the
whole graph, in the same shape, as a top-level ``models`` list (ComfyUI's templates) or ``extra.models``. Nodes inside
subgraph definitions (``definitions.subgraphs[].nodes``) list theirs the same way.

API-format prompts carry no such list, and which of their inputs name models is only knowable from each loader's
option list (built from a model folder at run time), so prompts are not read here.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from graph.errors import WorkflowFormatError
from graph.safe_paths import UnsafePathError, check_relative_part
from graph.ui_graph import definition_entries
from models.folders import FOLDER_KEYS, FOLDER_MODEL_MARKERS, ModelFolders, UnsafeModelPathError

HUB_HOSTS = frozenset({"huggingface.co", "www.huggingface.co", "hf.co"})
HUB_FILE_ROUTES = frozenset({"resolve", "blob"})
NON_MODEL_REPO_PREFIXES = frozenset({"datasets", "spaces", "api"})
LEGACY_FOLDERS = {"clip": "text_encoders", "unet": "diffusion_models"}  # ComfyUI's old names for these folders


@dataclass(frozen=True)
class HubFile:
    """A file of a Hugging Face model repo, as a ``resolve`` (or ``blob``) URL names it."""

    repo_id: str
    revision: str
    path: str


class ModelRequirementsError(ValueError):
    """A workflow whose model list is malformed; the message names where and why."""


@dataclass(frozen=True)
class ModelRequirement:
    """One model a workflow needs: its name in a model folder, where to get it, and the nodes that list it.

    ``repo_id`` is the Hugging Face repo when ``url`` is a Hub file URL; ``node_ids`` is empty for models listed for
    the whole workflow.
    """

    name: str
    folder: str
    url: str | None
    repo_id: str | None
    node_ids: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "folder": self.folder,
            "url": self.url,
            "repo_id": self.repo_id,
            "nodes": list(self.node_ids),
        }


def required_models(workflow: Mapping[str, Any]) -> list[ModelRequirement]:
    """Every model an editor (UI-format) workflow lists, once per (folder, name), in order of first mention.

    Raises ``ModelRequirementsError`` when the workflow has no ``nodes`` list or a model entry is malformed (not an
    object, no ``name`` or ``directory`` string, a name that leaves its folder).
    """
    if not isinstance(workflow, Mapping):
        raise ModelRequirementsError(f"the workflow must be a JSON object, got {type(workflow).__name__}")
    nodes = workflow.get("nodes")
    if not isinstance(nodes, list):
        raise ModelRequirementsError(
            "the workflow has no 'nodes' list; send the editor's (UI) format: API-format prompts carry no model list"
        )
    merged: dict[tuple[str, str], ModelRequirement] = {}
    for entry, node_id, where in _model_entries(workflow, nodes):
        found = _parse_entry(entry, node_id, where)
        key = (found.folder, found.name)
        known = merged.get(key)
        if known is None:
            merged[key] = found
            continue
        node_ids = known.node_ids + tuple(n for n in found.node_ids if n not in known.node_ids)
        url = known.url or found.url
        merged[key] = ModelRequirement(known.name, known.folder, url, _repo_of(url), node_ids)
    return list(merged.values())


def partition_models(
    requirements: Sequence[ModelRequirement], folders: ModelFolders
) -> tuple[list[ModelRequirement], list[ModelRequirement]]:
    """``(missing, present)``: whether each model is in one of its folder key's folders (extra folders included).

    A folder key Reelgraph does not have counts as missing, and so does a name that resolves outside its folder.
    """
    missing: list[ModelRequirement] = []
    present: list[ModelRequirement] = []
    for requirement in requirements:
        (present if _is_present(requirement, folders) else missing).append(requirement)
    return missing, present


def missing_models(requirements: Sequence[ModelRequirement], folders: ModelFolders) -> list[ModelRequirement]:
    """The requirements none of the model folders holds."""
    return partition_models(requirements, folders)[0]


def repo_id_from_url(url: str) -> str | None:
    """``namespace/name`` of a Hugging Face model file URL (``https://huggingface.co/{repo}/resolve/{rev}/{file}``,
    or ``/blob/``); None for any other URL."""
    found = hub_file_from_url(url)
    return found.repo_id if found is not None else None


def hub_file_from_url(url: str) -> HubFile | None:
    """The repo, revision and file path of a Hugging Face model file URL; None for any other URL.

    The query (``?download=true``) is ignored; a revision such as ``refs%2Fpr%2F1`` is unquoted.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or (parts.hostname or "").lower() not in HUB_HOSTS:
        return None
    segments = [unquote(segment) for segment in parts.path.split("/") if segment]
    if len(segments) < 5 or segments[0] in NON_MODEL_REPO_PREFIXES or segments[2] not in HUB_FILE_ROUTES:
        return None
    return HubFile(f"{segments[0]}/{segments[1]}", segments[3], "/".join(segments[4:]))


def _model_entries(workflow: Mapping[str, Any], nodes: list[Any]) -> Iterator[tuple[Any, str | None, str]]:
    """Each raw model entry with the id of the node listing it (None for workflow-wide ones) and where it is."""
    for index, node in enumerate(nodes):
        if not isinstance(node, Mapping):
            raise ModelRequirementsError(f"nodes[{index}] is not an object")
        node_id = str(node.get("id", f"#{index}"))
        properties = node.get("properties")
        if not isinstance(properties, Mapping) or properties.get("models") is None:
            continue
        yield from _listed(properties["models"], node_id, f"node {node_id}: properties.models")
    for name, node in _definition_nodes(workflow):
        properties = node.get("properties")
        if isinstance(properties, Mapping) and properties.get("models") is not None:
            where = f"subgraph {name!r} node {node.get('id')}: properties.models"
            yield from _listed(properties["models"], None, where)
    yield from _listed(workflow.get("models"), None, "the workflow's models")
    extra = workflow.get("extra")
    if isinstance(extra, Mapping):
        yield from _listed(extra.get("models"), None, "extra.models")


def _definition_nodes(workflow: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """The nodes of every subgraph definition (nested ones too) with the definition's name."""
    try:
        definitions = list(definition_entries(workflow))
    except WorkflowFormatError as exc:
        raise ModelRequirementsError(str(exc)) from None
    for definition in definitions:
        name = str(definition.get("name") or definition.get("id"))
        nodes = definition.get("nodes")
        for node in nodes if isinstance(nodes, list) else ():
            if isinstance(node, Mapping):
                yield name, node


def _listed(value: Any, node_id: str | None, where: str) -> Iterator[tuple[Any, str | None, str]]:
    if value is None:
        return
    if not isinstance(value, list):
        raise ModelRequirementsError(f"{where} must be a list, got {type(value).__name__}")
    for index, entry in enumerate(value):
        yield entry, node_id, f"{where}[{index}]"


def _parse_entry(entry: Any, node_id: str | None, where: str) -> ModelRequirement:
    if not isinstance(entry, Mapping):
        raise ModelRequirementsError(f"{where} must be an object with name, url and directory")
    name, directory, url = entry.get("name"), entry.get("directory"), entry.get("url")
    if not isinstance(name, str) or not name:
        raise ModelRequirementsError(f"{where} has no 'name' (the model's file name in its folder)")
    if not isinstance(directory, str) or not directory:
        raise ModelRequirementsError(f"{where} ({name!r}) has no 'directory' (its model folder, e.g. 'vae')")
    if url is not None and not isinstance(url, str):
        raise ModelRequirementsError(f"{where} ({name!r}): 'url' must be a string")
    try:
        check_relative_part(name, what="model name")
    except UnsafePathError as exc:
        raise ModelRequirementsError(f"{where}: {exc}") from None
    url = url or None
    folder = LEGACY_FOLDERS.get(directory, directory)
    node_ids = (node_id,) if node_id is not None else ()
    return ModelRequirement(name, folder, url, _repo_of(url), node_ids)


def _repo_of(url: str | None) -> str | None:
    return repo_id_from_url(url) if url else None


def _is_present(requirement: ModelRequirement, folders: ModelFolders) -> bool:
    if requirement.folder not in FOLDER_KEYS:
        return False
    try:
        path = folders.resolve(requirement.folder, requirement.name)
    except UnsafeModelPathError:
        return False
    marker = FOLDER_MODEL_MARKERS.get(requirement.folder)
    if marker:
        return (path / marker).is_file()
    return path.is_file()
