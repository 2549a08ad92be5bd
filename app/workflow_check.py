"""Is a shared ComfyUI workflow runnable here? Find every node type, input and model file that stops it.

Unlike validation, which stops at the first failing ancestry of each output, the check looks at every node: a workflow
whose output node comes from a pack we lack still gets its sampler's unsupported choice reported. Pack names come from
the UI nodes' ``properties`` (``cnr_id``: ComfyUI's registry id, ``aux_id``: a GitHub repo, ``ver``); model URLs from
the workflow's model lists (``models.requirements``). Model-file combos carry their folder key
(``InputSpec.model_folder``), so a value missing from one is a missing model, not an unsupported choice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from app.workflow_report import (
    LEFT_OVER_WIDGET,
    PACK_GITHUB,
    PACK_REGISTRY,
    UNKNOWN_INPUT,
    InputIssue,
    MissingModel,
    MissingNodeType,
    NodePack,
    WorkflowReport,
)
from graph.errors import WorkflowFormatError
from graph.prompt import Prompt
from graph.registry import NodeRegistry
from graph.ui_format import UiConversion, UiSource, convert_ui
from graph.ui_graph import SUBGRAPH_TYPE
from graph.validation import check_node_inputs, dependency_cycles, describe_cycle
from graph.workflow_file import LoadedWorkflow
from models.folders import ModelFolders
from models.requirements import ModelRequirement, ModelRequirementsError, partition_models, required_models

VALUE_NOT_IN_LIST = "value_not_in_list"


def check_workflow(loaded: LoadedWorkflow, registry: NodeRegistry, model_folders: ModelFolders) -> WorkflowReport:
    """Everything that stops ``loaded`` from running with ``registry``'s nodes and ``model_folders``' files.

    The UI workflow, when ``loaded`` has one, gives pack names, titles and model URLs; without it (an API prompt)
    the check still finds missing node types, bad inputs and loader files missing from their folders.
    Raises ``WorkflowFormatError`` when the API prompt itself is malformed.
    """
    prompt = Prompt.parse(loaded.api)
    conversion = _conversion(loaded, registry)
    sources = conversion.sources if conversion is not None else {}
    finder = _Findings(prompt, registry, sources)
    finder.missing_node_types()
    input_models = finder.input_issues()
    finder.unknown_inputs()
    if conversion is not None and loaded.source_format == "ui":
        finder.left_over_widgets(conversion)
    listed = finder.listed_models(loaded.ui)
    absent, present = partition_models(listed, model_folders)
    missing = _merge_models(listed, absent, input_models, sources)
    finder.graph_problems()
    return WorkflowReport(
        loaded.source_format,
        tuple(finder.missing),
        tuple(finder.issues),
        tuple(missing),
        tuple(finder.problems),
        tuple(f"{item.folder}/{item.name}" for item in present),
        tuple(_left_out(conversion)),
    )


def _left_out(conversion: UiConversion | None) -> list[MissingNodeType]:
    """The unknown-type nodes the conversion left out because nothing links to or from them."""
    return [
        _missing_type(":".join((*source.path, source.node.id)), source.node.type, source.node.title, source)
        for source in (conversion.unconnected_unknown if conversion is not None else ())
    ]


def _missing_type(node_id: str, class_type: str, title: str | None, source: UiSource | None) -> MissingNodeType:
    """A node of a type we lack, with the pack its UI node's properties name."""
    pack = _pack_of(source.node.properties) if source is not None else None
    return MissingNodeType(node_id, class_type, title, pack, SUBGRAPH_TYPE.fullmatch(class_type) is not None)


def _conversion(loaded: LoadedWorkflow, registry: NodeRegistry) -> UiConversion | None:
    """The conversion of the UI workflow (for an API prompt sent with one, only its sources are used)."""
    if loaded.conversion is not None or loaded.ui is None:
        return loaded.conversion
    try:
        return convert_ui(loaded.ui, registry)
    except WorkflowFormatError:
        return None  # the API prompt is what runs; a UI workflow we cannot read only costs the pack names


@dataclass(frozen=True)
class _InputModel:
    """A loader input set to a file its model folder lacks."""

    node_id: str
    input_name: str
    folder: str
    name: str


@dataclass
class _Findings:
    prompt: Prompt
    registry: NodeRegistry
    sources: Mapping[str, UiSource]
    missing: list[MissingNodeType] = field(default_factory=list)
    issues: list[InputIssue] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def missing_node_types(self) -> None:
        for node_id, node in self.prompt.nodes.items():
            if node.class_type in self.registry:
                continue
            source = self.sources.get(node_id)
            self.missing.append(_missing_type(node_id, node.class_type, self._title(node_id), source))

    def input_issues(self) -> list[_InputModel]:
        """Record every per-input error of every known node; return the model-file values missing from folders."""
        models: list[_InputModel] = []
        for node_id, errors in check_node_inputs(self.prompt, self.registry).items():
            node = self.prompt.nodes[node_id]
            spec = self.registry.get(node.class_type)
            for error in errors:
                extra = error.get("extra_info") or {}
                input_name = extra.get("input_name")
                input_spec = spec.inputs.get(input_name) if spec is not None and input_name else None
                value = extra.get("received_value")
                folder = input_spec.model_folder if input_spec is not None else None
                if error["type"] == VALUE_NOT_IN_LIST and folder is not None and isinstance(value, str):
                    models.append(_InputModel(node_id, input_name, folder, value))
                    continue
                message = _error_message(error)
                self.issues.append(
                    InputIssue(
                        node_id, node.class_type, self._title(node_id), input_name, error["type"], message, value
                    )
                )
        return models

    def unknown_inputs(self) -> None:
        """Inputs given (linked or set) that our class does not declare: another version's inputs."""
        for node_id, node in self.prompt.nodes.items():
            spec = self.registry.get(node.class_type)
            if spec is None:
                continue
            for name in node.inputs:
                if name in spec.inputs:
                    continue
                declared = ", ".join(spec.inputs) or "none"
                message = f"input {name!r} is not an input of Reelgraph's {node.class_type} (its inputs: {declared})"
                value = node.inputs[name]
                shown = value if _is_plain(value) else None
                self.issues.append(
                    InputIssue(node_id, node.class_type, self._title(node_id), name, UNKNOWN_INPUT, message, shown)
                )

    def left_over_widgets(self, conversion: UiConversion) -> None:
        for left in conversion.left_over_widgets:
            for key, value in left.values:
                which = f"#{key}" if isinstance(key, int) else repr(key)
                message = f"widget value {which} ({value!r}) has no matching input in Reelgraph's {left.class_type}"
                shown = value if _is_plain(value) else None
                title = self._title(left.api_id)
                self.issues.append(
                    InputIssue(left.api_id, left.class_type, title, None, LEFT_OVER_WIDGET, message, shown)
                )

    def listed_models(self, ui: Mapping[str, Any] | None) -> list[ModelRequirement]:
        """The models the UI workflow lists; a malformed list is a problem."""
        if ui is None:
            return []
        try:
            return required_models(ui)
        except ModelRequirementsError as exc:
            self.problems.append(f"the workflow's model list cannot be read: {exc}")
            return []

    def graph_problems(self) -> None:
        """Dependency cycles, and no output node when no missing node type could be one."""
        self.problems += [f"dependency cycle: {describe_cycle(cycle)}" for cycle in dependency_cycles(self.prompt)]
        if self.missing:
            return
        specs = (self.registry.get(node.class_type) for node in self.prompt.nodes.values())
        if not any(spec is not None and spec.output_node for spec in specs):
            self.problems.append(
                "no output node: nothing would run (add a node that saves or previews, such as SaveVideo or "
                "PreviewImage)"
            )

    def _title(self, node_id: str) -> str | None:
        source = self.sources.get(node_id)
        if source is not None and source.node.title:
            return source.node.title
        node = self.prompt.nodes.get(node_id)
        return node.title if node is not None else None


def _pack_of(properties: Mapping[str, Any]) -> NodePack | None:
    """The pack a UI node's properties name: ``cnr_id`` (registry) first, else ``aux_id`` (GitHub)."""
    version = properties.get("ver")
    version = str(version) if isinstance(version, (str, int, float)) and version != "" else None
    for key, source in (("cnr_id", PACK_REGISTRY), ("aux_id", PACK_GITHUB)):
        value = properties.get(key)
        if isinstance(value, str) and value.strip():
            return NodePack(value.strip(), source, version)
    return None


def _error_message(error: Mapping[str, Any]) -> str:
    """One readable line from a ComfyUI-shaped per-input error."""
    input_name = (error.get("extra_info") or {}).get("input_name")
    details = error.get("details") or ""
    where = f"input {input_name!r}: " if input_name else ""
    if error["type"] == VALUE_NOT_IN_LIST:
        return f"{where}choice not supported here ({details})"
    return f"{where}{error['message']}" + (f" ({details})" if details and details != input_name else "")


def _merge_models(
    listed: Iterable[ModelRequirement],
    absent: Iterable[ModelRequirement],
    from_inputs: Iterable[_InputModel],
    sources: Mapping[str, UiSource],
) -> list[MissingModel]:
    """Listed models the folders lack and loader values missing from their folder, once per (folder, name); a loader
    value takes the URL the list gives for that file name (whatever folder the list files it under)."""
    merged: dict[tuple[str, str], MissingModel] = {}
    by_name = {requirement.name: requirement for requirement in reversed(list(listed)) if requirement.url}
    for requirement in absent:
        node_ids = requirement.node_ids + tuple(
            n for n in _listing_nodes(requirement, sources) if n not in requirement.node_ids
        )
        merged[(requirement.folder, requirement.name)] = MissingModel(
            requirement.name, requirement.folder, requirement.url, requirement.repo_id, node_ids, (), True
        )
    for found in from_inputs:
        key = (found.folder, found.name)
        known = merged.get(key) or MissingModel(found.name, found.folder, None, None)
        hint = by_name.get(found.name)
        if known.url is None and hint is not None:
            known = replace(known, url=hint.url, repo_id=hint.repo_id, listed=True)
        node_ids = known.node_ids if found.node_id in known.node_ids else (*known.node_ids, found.node_id)
        merged[key] = replace(known, node_ids=node_ids, inputs=(*known.inputs, (found.node_id, found.input_name)))
    return list(merged.values())


def _listing_nodes(requirement: ModelRequirement, sources: Mapping[str, UiSource]) -> list[str]:
    """The API ids of nodes (subgraph nodes included) whose ``properties.models`` list this model."""
    found = []
    for api_id, source in sources.items():
        models = source.node.properties.get("models")
        if isinstance(models, list) and any(
            isinstance(entry, Mapping) and entry.get("name") == requirement.name for entry in models
        ):
            found.append(api_id)
    return found


def _is_plain(value: Any) -> bool:
    """Whether a value can go into the report's JSON as it is (links and nested objects are left out)."""
    return value is None or isinstance(value, (str, int, float, bool))
