"""Parse the graphs of a UI-format workflow: the root graph and its subgraph definitions.

ComfyUI's editor saves a graph as ``nodes`` plus a ``links`` table, either as arrays
``[id, origin, origin_slot, target, target_slot, type]`` (version 0.4) or as objects (schema version 1). Schema 1 adds
``definitions.subgraphs``: reusable graphs whose instances are nodes with the definition's UUID as their ``type``.
Inside a definition, links from the virtual input node (id ``-10``) carry the instance's inputs and links into the
virtual output node (id ``-20``) feed its outputs. This module only reads those shapes; ``graph.ui_format`` converts.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from graph.errors import WorkflowFormatError
from graph.spec import ANY_TYPE

SUBGRAPH_INPUT_ID = "-10"
SUBGRAPH_OUTPUT_ID = "-20"
SUBGRAPH_TYPE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)
"""What a subgraph instance's ``type`` looks like: its definition's UUID."""


@dataclass(frozen=True)
class UiLink:
    """One entry of a link table; ``target`` is None for array links saved without one."""

    id: str
    origin: str
    origin_slot: int
    target: str | None
    target_slot: int | None
    type: str


@dataclass(frozen=True)
class UiNode:
    """The parts of a UI node the conversion needs."""

    id: str
    type: str
    mode: int
    inputs: list[Mapping[str, Any]]
    outputs: list[Mapping[str, Any]]
    widgets_values: list[Any] | Mapping[str, Any]
    title: str | None
    properties: Mapping[str, Any] = field(default_factory=dict)

    def label(self) -> str:
        return f"node {self.id} ({self.type})"


@dataclass(frozen=True)
class UiGraph:
    """A graph's nodes and links by id; ``where`` names it in error messages ("" for the root graph)."""

    nodes: dict[str, UiNode]
    links: dict[str, UiLink]
    where: str = ""

    def slot_link(self, slot: Mapping[str, Any]) -> UiLink | None:
        """The link feeding an input slot; None when unlinked or when the id is missing from the link table."""
        link_id = slot.get("link")
        return self.links.get(str(link_id)) if is_id(link_id) else None

    def output_link(self, slot: int) -> UiLink | None:
        """Inside a subgraph definition: the link feeding output ``slot`` of its instances."""
        for link in self.links.values():
            if link.target == SUBGRAPH_OUTPUT_ID and link.target_slot == slot:
                return link
        return None


@dataclass(frozen=True)
class SubgraphSlot:
    """One input or output of a subgraph definition."""

    name: str
    type: str


@dataclass(frozen=True)
class SubgraphDefinition:
    """A subgraph: its UUID, display name, interface and inner graph."""

    id: str
    name: str
    inputs: tuple[SubgraphSlot, ...]
    outputs: tuple[SubgraphSlot, ...]
    graph: UiGraph


def parse_graph(raw: Mapping[str, Any], where: str = "") -> UiGraph:
    """Read ``raw["nodes"]`` and ``raw["links"]``; raises ``WorkflowFormatError`` naming ``where`` and the entry."""
    try:
        return UiGraph(_parse_nodes(raw.get("nodes")), _parse_links(raw.get("links", [])), where)
    except WorkflowFormatError as exc:
        raise WorkflowFormatError(f"{where}: {exc}" if where else str(exc)) from None


def parse_definitions(workflow: Mapping[str, Any]) -> dict[str, SubgraphDefinition]:
    """Every subgraph definition of the workflow by UUID, nested ``definitions`` included."""
    found: dict[str, SubgraphDefinition] = {}
    for raw in definition_entries(workflow):
        definition = _parse_definition(raw)
        found.setdefault(definition.id, definition)
    return found


def definition_entries(holder: Mapping[str, Any], where: str = "the workflow") -> Iterator[Mapping[str, Any]]:
    """The raw subgraph definitions under ``holder["definitions"]["subgraphs"]``, each followed by those nested in
    it; ``WorkflowFormatError`` when a level is not the object or list it must be."""
    definitions = holder.get("definitions")
    if definitions is None:
        return
    if not isinstance(definitions, Mapping):
        raise WorkflowFormatError(f"{where}: 'definitions' must be an object")
    subgraphs = definitions.get("subgraphs", [])
    if not isinstance(subgraphs, list):
        raise WorkflowFormatError(f"{where}: definitions.subgraphs must be a list")
    for index, entry in enumerate(subgraphs):
        if not isinstance(entry, Mapping):
            raise WorkflowFormatError(f"{where}: definitions.subgraphs[{index}] must be an object")
        yield entry
        yield from definition_entries(entry, f"subgraph {entry.get('name') or entry.get('id')!r}")


def _parse_definition(raw: Mapping[str, Any]) -> SubgraphDefinition:
    subgraph_id, name = raw.get("id"), raw.get("name")
    if not isinstance(subgraph_id, str) or not subgraph_id:
        raise WorkflowFormatError(f"subgraph definition {name!r} has no 'id' string")
    label = f"subgraph {name or subgraph_id!r} ({subgraph_id})" if name else f"subgraph {subgraph_id}"
    if not isinstance(raw.get("nodes"), list):
        raise WorkflowFormatError(f"{label}: 'nodes' must be a list")
    return SubgraphDefinition(
        id=subgraph_id,
        name=name if isinstance(name, str) and name else subgraph_id,
        inputs=_parse_slots(raw.get("inputs", []), label, "inputs"),
        outputs=_parse_slots(raw.get("outputs", []), label, "outputs"),
        graph=parse_graph(raw, label),
    )


def _parse_slots(raw: Any, label: str, key: str) -> tuple[SubgraphSlot, ...]:
    if not isinstance(raw, list):
        raise WorkflowFormatError(f"{label}: '{key}' must be a list")
    slots = []
    for index, entry in enumerate(raw):
        name = entry.get("name") if isinstance(entry, Mapping) else None
        if not isinstance(name, str) or not name:
            raise WorkflowFormatError(f"{label}: {key}[{index}] has no name")
        slot_type = entry.get("type")
        slots.append(SubgraphSlot(name, slot_type if isinstance(slot_type, str) else ANY_TYPE))
    return tuple(slots)


def _parse_nodes(raw: Any) -> dict[str, UiNode]:
    if not isinstance(raw, list):
        raise WorkflowFormatError(f"'nodes' must be a list, got {type(raw).__name__}")
    nodes: dict[str, UiNode] = {}
    for index, entry in enumerate(raw):
        if not isinstance(entry, Mapping):
            raise WorkflowFormatError(f"nodes[{index}] must be an object, got {type(entry).__name__}")
        raw_id, node_type = entry.get("id"), entry.get("type")
        if not is_id(raw_id):
            raise WorkflowFormatError(f"nodes[{index}] ({node_type}): id {raw_id!r} is not a number or string")
        if not isinstance(node_type, str) or not node_type:
            raise WorkflowFormatError(f"node {raw_id}: type {node_type!r} is missing or not a string")
        node = _parse_node(str(raw_id), node_type, entry)
        if node.id in nodes:
            raise WorkflowFormatError(f"{node.label()}: id {node.id} is used by two nodes")
        nodes[node.id] = node
    return nodes


def _parse_node(node_id: str, node_type: str, entry: Mapping[str, Any]) -> UiNode:
    label = f"node {node_id} ({node_type})"
    mode = entry.get("mode") or 0
    if not isinstance(mode, int) or isinstance(mode, bool):
        raise WorkflowFormatError(f"{label}: mode {mode!r} is not an integer")
    inputs, outputs = _list_or_empty(entry.get("inputs")), _list_or_empty(entry.get("outputs"))
    for key, slots in (("inputs", inputs), ("outputs", outputs)):
        if not isinstance(slots, list) or not all(isinstance(slot, Mapping) for slot in slots):
            raise WorkflowFormatError(f"{label}: {key} must be a list of objects")
    widgets = _list_or_empty(entry.get("widgets_values"))
    if not isinstance(widgets, (list, Mapping)):
        raise WorkflowFormatError(f"{label}: widgets_values must be a list or an object")
    title = entry.get("title")
    properties = entry.get("properties")
    return UiNode(
        node_id,
        node_type,
        mode,
        inputs,
        outputs,
        widgets,
        title if isinstance(title, str) else None,
        properties if isinstance(properties, Mapping) else {},
    )


def _parse_links(raw: Any) -> dict[str, UiLink]:
    """Read the link table, in list form ``[id, from, from_slot, to, to_slot, type]`` or object form."""
    if not isinstance(raw, list):
        raise WorkflowFormatError(f"'links' must be a list, got {type(raw).__name__}")
    links: dict[str, UiLink] = {}
    for index, entry in enumerate(raw):
        if isinstance(entry, Mapping):
            keys = ("id", "origin_id", "origin_slot", "target_id", "target_slot", "type")
            link_id, origin, slot, target, target_slot, link_type = (entry.get(key) for key in keys)
        elif isinstance(entry, list) and len(entry) >= 5:
            link_id, origin, slot, target, target_slot = entry[:5]
            link_type = entry[5] if len(entry) > 5 else None
        else:
            raise WorkflowFormatError(f"links[{index}] must be [id, from, from_slot, to, to_slot, type] or an object")
        if not (is_id(link_id) and is_id(origin) and _is_index(slot)):
            raise WorkflowFormatError(f"link {link_id!r} (links[{index}]): origin node or slot is malformed")
        links[str(link_id)] = UiLink(
            str(link_id),
            str(origin),
            slot,
            str(target) if is_id(target) else None,
            target_slot if _is_index(target_slot) else None,
            link_type if isinstance(link_type, str) else ANY_TYPE,
        )
    return links


def _list_or_empty(value: Any) -> Any:
    return [] if value is None else value


def _is_index(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_id(value: Any) -> bool:
    """Whether ``value`` can be a node or link id (a number or a non-empty string)."""
    return isinstance(value, (int, str)) and not isinstance(value, bool) and value != ""
