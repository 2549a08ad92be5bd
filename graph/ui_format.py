"""Convert a UI-format workflow (what the editor saves) into an API-format prompt.

The editor stores widget values as a positional list and links in a separate table; frontend-only nodes
(``Reroute``, ``PrimitiveNode``, notes) and muted or bypassed nodes never reach the server. This module resolves
all of that against the node specs in a ``NodeRegistry`` and returns ``{"<id>": {"class_type", "inputs", "_meta"}}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from graph.coercion import types_match
from graph.errors import WorkflowFormatError
from graph.registry import NodeRegistry
from graph.spec import ANY_TYPE, COMBO_TYPE, UPLOAD_BUTTON_VALUE, InputSpec

MODE_MUTED = 2
MODE_BYPASSED = 4
REROUTE = "Reroute"
PRIMITIVE = "PrimitiveNode"
NOTE_TYPES = frozenset({"Note", "MarkdownNote"})
VIRTUAL_TYPES = NOTE_TYPES | {REROUTE, PRIMITIVE}
CONTROL_VALUES = frozenset({"fixed", "increment", "decrement", "randomize"})


class _Link(NamedTuple):
    """One entry of the workflow's link table."""

    origin: str
    slot: int
    type: str


@dataclass(frozen=True)
class _Node:
    """The parts of a UI node the conversion needs."""

    id: str
    type: str
    mode: int
    inputs: list[Mapping[str, Any]]
    outputs: list[Mapping[str, Any]]
    widgets_values: list[Any] | Mapping[str, Any]
    title: str | None

    def label(self) -> str:
        return f"node {self.id} ({self.type})"


_DROP = object()  # an input whose source resolves to nothing (muted, unlinked reroute, no bypass match)


def ui_to_api(workflow: Mapping[str, Any], registry: NodeRegistry) -> dict[str, Any]:
    """Convert a UI-format workflow into an API-format prompt; raises ``WorkflowFormatError`` on bad shapes."""
    if not isinstance(workflow, Mapping):
        raise WorkflowFormatError(f"a UI workflow must be a JSON object, got {type(workflow).__name__}")
    nodes = _parse_nodes(workflow.get("nodes"))
    links = _parse_links(workflow.get("links", []))
    prompt: dict[str, Any] = {}
    for node in nodes.values():
        if node.mode in (MODE_MUTED, MODE_BYPASSED) or node.type in VIRTUAL_TYPES:
            continue
        prompt[node.id] = {
            "class_type": node.type,
            "inputs": _node_inputs(node, nodes, links, registry),
            "_meta": {"title": node.title or node.type},
        }
    return prompt


def _parse_nodes(raw: Any) -> dict[str, _Node]:
    if not isinstance(raw, list):
        raise WorkflowFormatError(f"a UI workflow's 'nodes' must be a list, got {type(raw).__name__}")
    nodes: dict[str, _Node] = {}
    for index, entry in enumerate(raw):
        if not isinstance(entry, Mapping):
            raise WorkflowFormatError(f"nodes[{index}] must be an object, got {type(entry).__name__}")
        raw_id, node_type = entry.get("id"), entry.get("type")
        if not _is_id(raw_id):
            raise WorkflowFormatError(f"nodes[{index}] ({node_type}): id {raw_id!r} is not a number or string")
        if not isinstance(node_type, str) or not node_type:
            raise WorkflowFormatError(f"node {raw_id}: type {node_type!r} is missing or not a string")
        node = _parse_node(str(raw_id), node_type, entry)
        if node.id in nodes:
            raise WorkflowFormatError(f"{node.label()}: id {node.id} is used by two nodes")
        nodes[node.id] = node
    return nodes


def _parse_node(node_id: str, node_type: str, entry: Mapping[str, Any]) -> _Node:
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
    return _Node(node_id, node_type, mode, inputs, outputs, widgets, title if isinstance(title, str) else None)


def _parse_links(raw: Any) -> dict[str, _Link]:
    """Read the link table, in list form ``[id, from, from_slot, to, to_slot, type]`` or object form."""
    if not isinstance(raw, list):
        raise WorkflowFormatError(f"a UI workflow's 'links' must be a list, got {type(raw).__name__}")
    links: dict[str, _Link] = {}
    for index, entry in enumerate(raw):
        if isinstance(entry, Mapping):
            fields = [entry.get(key) for key in ("id", "origin_id", "origin_slot", "type")]
        elif isinstance(entry, list) and len(entry) >= 5:
            fields = [entry[0], entry[1], entry[2], entry[5] if len(entry) > 5 else None]
        else:
            raise WorkflowFormatError(f"links[{index}] must be [id, from, from_slot, to, to_slot, type] or an object")
        link_id, origin, slot, link_type = fields
        if not (_is_id(link_id) and _is_id(origin) and isinstance(slot, int) and not isinstance(slot, bool)):
            raise WorkflowFormatError(f"link {link_id!r} (links[{index}]): origin node or slot is malformed")
        links[str(link_id)] = _Link(str(origin), slot, link_type if isinstance(link_type, str) else ANY_TYPE)
    return links


def _node_inputs(
    node: _Node, nodes: Mapping[str, _Node], links: Mapping[str, _Link], registry: NodeRegistry
) -> dict[str, Any]:
    """Widget values first, then every linked input (a link wins over the widget value it replaces)."""
    spec = registry.get(node.type)
    inputs: dict[str, Any] = _widget_values(node, spec.widget_inputs) if spec is not None else {}
    for index, slot in enumerate(node.inputs):
        link = _slot_link(slot, links)
        if link is None:  # unlinked, or a stale link id missing from the table: the widget value stays
            continue
        value = _resolve(link, nodes, links, set())
        if value is not _DROP:
            inputs[_input_name(node, index, slot)] = value
    return inputs


def _slot_link(slot: Mapping[str, Any], links: Mapping[str, _Link]) -> _Link | None:
    """The link feeding an input slot; None when unlinked or when the id is missing from the link table."""
    link_id = slot.get("link")
    return links.get(str(link_id)) if _is_id(link_id) else None


def _input_name(node: _Node, index: int, slot: Mapping[str, Any]) -> str:
    widget = slot.get("widget")
    name = widget.get("name") if isinstance(widget, Mapping) and widget.get("name") else slot.get("name")
    if not isinstance(name, str) or not name:
        raise WorkflowFormatError(f"{node.label()}: inputs[{index}] has no name")
    return name


def _widget_values(node: _Node, widgets: list[InputSpec]) -> dict[str, Any]:
    """Map ``widgets_values`` onto the spec's widget inputs, skipping seed-control and upload-button values."""
    raw = node.widgets_values
    if isinstance(raw, Mapping):
        return {spec.name: raw[spec.name] for spec in widgets if spec.name in raw}
    values: dict[str, Any] = {}
    position = 0
    for index, spec in enumerate(widgets):
        if position >= len(raw):
            break
        values[spec.name] = raw[position]
        position += 1
        if position < len(raw) and _is_control_value(spec, raw[position], widgets[index + 1 :]):
            position += 1
        if position < len(raw) and spec.has_upload_button and raw[position] in (UPLOAD_BUTTON_VALUE, None):
            position += 1  # the upload button's value (workflows saved before it existed have none)
    return values


def _is_control_value(spec: InputSpec, value: Any, following: list[InputSpec]) -> bool:
    """Whether ``value`` (right after ``spec``'s value) is a control_after_generate setting, not the next widget."""
    if spec.type not in ("INT", "FLOAT") or not isinstance(value, str) or value not in CONTROL_VALUES:
        return False
    if spec.has_control_after_generate:
        return True
    upcoming = following[0] if following else None
    return not (upcoming is not None and upcoming.type == COMBO_TYPE and value in (upcoming.choices or ()))


def _resolve(link: _Link, nodes: Mapping[str, _Node], links: Mapping[str, _Link], seen: set[str]) -> Any:
    """Follow a link through reroutes, primitives and bypassed nodes to an API link, a constant or ``_DROP``."""
    source = nodes.get(link.origin)
    if source is None:  # kept as a link so validation names the node and input
        return [link.origin, link.slot]
    if source.mode == MODE_MUTED or source.type in NOTE_TYPES:
        return _DROP
    if source.type == PRIMITIVE:
        return _primitive_value(source)
    if source.type != REROUTE and source.mode != MODE_BYPASSED:
        return [source.id, link.slot]
    if source.id in seen:
        raise WorkflowFormatError(f"{source.label()}: reroutes or bypassed nodes form a cycle")
    seen.add(source.id)
    upstream = _passthrough_link(source, link, links)
    return _DROP if upstream is None else _resolve(upstream, nodes, links, seen)


def _passthrough_link(node: _Node, link: _Link, links: Mapping[str, _Link]) -> _Link | None:
    """The link feeding a reroute, or the bypassed node's input that stands in for output ``link.slot``."""
    linked = [(i, _slot_link(slot, links)) for i, slot in enumerate(node.inputs)]
    if node.type == REROUTE:
        return linked[0][1] if linked else None
    wanted = link.type
    if 0 <= link.slot < len(node.outputs) and isinstance(node.outputs[link.slot].get("type"), str):
        wanted = node.outputs[link.slot]["type"]
    candidates = sorted(linked, key=lambda pair: pair[0] != link.slot)  # same slot first, then in order
    for index, upstream in candidates:
        slot_type = node.inputs[index].get("type")
        if upstream is not None and isinstance(slot_type, str) and types_match(wanted, slot_type):
            return upstream
    return None


def _primitive_value(node: _Node) -> Any:
    """A PrimitiveNode's constant: its first widget value."""
    raw = node.widgets_values
    if isinstance(raw, Mapping):
        raw = [raw["value"]] if "value" in raw else list(raw.values())
    if not raw:
        return _DROP
    return raw[0]


def _list_or_empty(value: Any) -> Any:
    return [] if value is None else value


def _is_id(value: Any) -> bool:
    return isinstance(value, (int, str)) and not isinstance(value, bool) and value != ""
