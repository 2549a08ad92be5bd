"""Convert an API-format prompt into a UI-format workflow the editor can open (the inverse of ``ui_to_api``).

Headless runs embed both forms in their outputs, so dropping such a file on the editor restores an editable graph.
Widget values are laid out positionally from the node specs in a ``NodeRegistry`` (missing ones take the input's
default), links go into the link table, and nodes are placed in columns by their depth in the graph.

Things the UI format cannot hold are left out: constants given to inputs that have no widget (sockets, undeclared
inputs, inputs of node classes the registry does not know) and links whose source node or output slot does not exist.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from graph.prompt import BadLink, Link, Prompt, PromptNode
from graph.registry import NodeRegistry
from graph.spec import ANY_TYPE, COMBO_TYPE, UPLOAD_BUTTON_VALUE, InputSpec, NodeSpec

UI_VERSION = 0.4
SEED_CONTROL = "fixed"  # the control_after_generate value written after seed-like INT widgets
S_AND_R = "Node name for S&R"

LEFT = 60  # layout, in canvas units
TOP = 60
COLUMN_WIDTH = 380
NODE_WIDTH = 320
TITLE_HEIGHT = 30  # litegraph draws the title bar above ``pos``
SLOT_HEIGHT = 22
WIDGET_HEIGHT = 26
ROW_GAP = 40
MIN_HEIGHT = 60


@dataclass
class _UiNode:
    """A node being built: its UI id, input slots and the links leaving each output slot."""

    key: str  # the API id
    ui_id: int | str
    node: PromptNode
    spec: NodeSpec | None
    inputs: list[dict[str, Any]] = field(default_factory=list)
    outputs: list[dict[str, Any]] = field(default_factory=list)
    widgets_values: list[Any] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)  # API ids feeding this node, one per link
    outgoing: dict[int, list[int]] = field(default_factory=dict)  # output slot -> ids of the links leaving it
    column: int = 0
    order: int = 0
    height: float = MIN_HEIGHT
    y: float = TOP


def api_to_ui(api: Mapping[str, Any], registry: NodeRegistry) -> dict[str, Any]:
    """Convert an API-format prompt into a UI-format workflow; raises ``WorkflowFormatError`` on bad shapes.

    The result is deterministic for a given prompt and registry, and ``ui_to_api`` of it gives back the prompt's
    class types, titles and inputs (plus default values for widget inputs the prompt left out).
    """
    prompt = Prompt.parse(api)
    nodes = {key: _UiNode(key, _ui_id(key), node, registry.get(node.class_type)) for key, node in prompt.nodes.items()}
    for ui_node in nodes.values():
        _build_slots(ui_node)
    links = _build_links(nodes)
    for ui_node in nodes.values():
        _fill_outputs(ui_node)
    _assign_order_and_columns(nodes)
    _assign_rows(nodes)
    int_ids = [n.ui_id for n in nodes.values() if isinstance(n.ui_id, int)]
    return {
        "last_node_id": max(int_ids, default=0),
        "last_link_id": len(links),
        "nodes": [_node_json(ui_node) for ui_node in nodes.values()],
        "links": links,
        "groups": [],
        "config": {},
        "extra": {},
        "version": UI_VERSION,
    }


def _ui_id(key: str) -> int | str:
    """``"12"`` becomes ``12``; anything that would not print back the same (``"007"``, ``"5.1"``) stays a string."""
    if key.isascii() and key.isdigit() and str(int(key)) == key:
        return int(key)
    return key


# --- slots and widget values ---------------------------------------------------------------------------------------


def _build_slots(ui_node: _UiNode) -> None:
    """Input slots (link ids are filled in later) and widget values, in the order the editor expects."""
    node, spec = ui_node.node, ui_node.spec
    if spec is None:  # unknown class: only its links survive, typed "*"
        ui_node.inputs = [_slot(name, ANY_TYPE, value) for name, value in node.inputs.items() if _is_link(value)]
        return
    declared = spec.input_order.get("required", ()) + spec.input_order.get("optional", ())
    sockets = [spec.inputs[name] for name in declared if not spec.inputs[name].is_widget]
    widgets = spec.widget_inputs
    ui_node.inputs = [_slot(socket.name, socket.type, node.inputs.get(socket.name)) for socket in sockets]
    for widget in widgets:
        value = node.inputs.get(widget.name)
        if _is_link(value):
            ui_node.inputs.append(_slot(widget.name, widget.type, value, widget=True))
    listed = {slot["name"] for slot in ui_node.inputs}
    for name, value in node.inputs.items():  # undeclared or hidden inputs fed by a link (e.g. dynamic inputs)
        if name not in listed and name not in {w.name for w in widgets} and _is_link(value):
            ui_node.inputs.append(_slot(name, ANY_TYPE, value))
    for widget in widgets:
        value = node.inputs.get(widget.name, _MISSING)
        if value is _MISSING or _is_link(value):
            value = _default_value(widget)
        elif isinstance(value, BadLink):
            value = value.raw
        ui_node.widgets_values.append(value)
        if widget.has_control_after_generate:
            ui_node.widgets_values.append(SEED_CONTROL)
        if widget.has_upload_button:
            ui_node.widgets_values.append(UPLOAD_BUTTON_VALUE)


_MISSING = object()


def _slot(name: str, type_: str, value: Any, *, widget: bool = False) -> dict[str, Any]:
    """An input slot; ``_source`` holds the API link until the link table is built, then it is removed."""
    slot: dict[str, Any] = {"name": name, "type": type_, "link": None}
    if widget:
        slot["widget"] = {"name": name}
    if _is_link(value):
        slot["_source"] = value
    return slot


def _is_link(value: Any) -> bool:
    return isinstance(value, Link)


def _default_value(widget: InputSpec) -> Any:
    """The value the editor shows for a widget nobody set: its default, else the first choice or a zero value."""
    if "default" in widget.options:
        return widget.options["default"]
    if widget.type == COMBO_TYPE:
        return widget.choices[0] if widget.choices else None
    if widget.type in ("INT", "FLOAT"):
        value: int | float = 0 if widget.type == "INT" else 0.0
        low, high = widget.options.get("min"), widget.options.get("max")
        if low is not None and value < low:
            value = low
        if high is not None and value > high:
            value = high
        return value
    if widget.type == "BOOLEAN":
        return False
    return ""


# --- links -------------------------------------------------------------------------------------------------------


def _output_types(ui_node: _UiNode) -> list[str]:
    return list(ui_node.spec.output_types) if ui_node.spec is not None else []


def _build_links(nodes: dict[str, _UiNode]) -> list[list[Any]]:
    """Number the links in prompt order (consumer, then input slot) and record them on both ends."""
    links: list[list[Any]] = []
    for consumer in nodes.values():
        for to_slot, slot in enumerate(consumer.inputs):
            source_link: Link | None = slot.pop("_source", None)
            if source_link is None:
                continue
            source = nodes.get(source_link.source)
            if source is None or source_link.slot < 0:
                continue  # dangling: the editor cannot draw a link from nothing
            types = _output_types(source)
            if source.spec is not None and source_link.slot >= len(types):
                continue  # the source class has no such output
            link_type = types[source_link.slot] if source_link.slot < len(types) else slot["type"]
            link_id = len(links) + 1
            links.append([link_id, source.ui_id, source_link.slot, consumer.ui_id, to_slot, link_type])
            slot["link"] = link_id
            source.outgoing.setdefault(source_link.slot, []).append(link_id)
            consumer.sources.append(source.key)
    return links


def _fill_outputs(ui_node: _UiNode) -> None:
    """Every declared output (and, for unknown classes, every output a link uses) with the links leaving it."""
    by_slot = ui_node.outgoing
    spec = ui_node.spec
    if spec is not None:
        named = list(zip(spec.output_names, spec.output_types, strict=True))
    else:
        named = [(ANY_TYPE, ANY_TYPE)] * (max(by_slot) + 1 if by_slot else 0)
    ui_node.outputs = [
        {"name": name, "type": type_, "links": by_slot.get(index, []), "slot_index": index}
        for index, (name, type_) in enumerate(named)
    ]


# --- layout ------------------------------------------------------------------------------------------------------


def _assign_order_and_columns(nodes: dict[str, _UiNode]) -> None:
    """Kahn's algorithm (ties broken by prompt order): ``order`` is the topological index, ``column`` the longest
    path from a source. A cycle (an invalid prompt) is broken at its earliest node so every node still gets a place.
    """
    index = {key: position for position, key in enumerate(nodes)}
    keys = list(nodes)
    consumers: dict[str, list[str]] = {key: [] for key in nodes}
    waiting = {key: len(ui_node.sources) for key, ui_node in nodes.items()}
    for key, ui_node in nodes.items():
        for source in ui_node.sources:
            consumers[source].append(key)
    ready = [index[key] for key in keys if waiting[key] == 0]
    heapq.heapify(ready)
    done: set[str] = set()
    next_forced = 0
    while len(done) < len(keys):
        if not ready:  # a cycle: force the earliest node that is still waiting
            while keys[next_forced] in done:
                next_forced += 1
            heapq.heappush(ready, next_forced)
        key = keys[heapq.heappop(ready)]
        if key in done:
            continue
        current = nodes[key]
        current.order = len(done)
        done.add(key)
        for consumer in consumers[key]:
            if consumer in done:
                continue
            nodes[consumer].column = max(nodes[consumer].column, current.column + 1)
            waiting[consumer] -= 1
            if waiting[consumer] == 0:
                heapq.heappush(ready, index[consumer])


def _assign_rows(nodes: dict[str, _UiNode]) -> None:
    """Stack each column top to bottom, nodes sorted by (and nudged down towards) the middle of their sources."""
    columns: dict[int, list[_UiNode]] = {}
    for ui_node in nodes.values():
        ui_node.height = _estimate_height(ui_node)
        columns.setdefault(ui_node.column, []).append(ui_node)
    for column in sorted(columns):
        wanted: dict[str, float] = {}
        for ui_node in columns[column]:
            centres = [nodes[s].y + nodes[s].height / 2 for s in ui_node.sources if nodes[s].column < ui_node.column]
            wanted[ui_node.key] = sum(centres) / len(centres) - ui_node.height / 2 if centres else TOP
        next_free = float(TOP)
        for ui_node in sorted(columns[column], key=lambda n: (wanted[n.key], n.order)):
            ui_node.y = max(next_free, wanted[ui_node.key])
            next_free = ui_node.y + ui_node.height + TITLE_HEIGHT + ROW_GAP


def _estimate_height(ui_node: _UiNode) -> float:
    slots = max(len(ui_node.inputs), len(ui_node.outputs))
    return max(MIN_HEIGHT, 10 + SLOT_HEIGHT * slots + WIDGET_HEIGHT * len(ui_node.widgets_values))


def _node_json(ui_node: _UiNode) -> dict[str, Any]:
    node = ui_node.node
    body: dict[str, Any] = {"id": ui_node.ui_id, "type": node.class_type}
    if node.title is not None and node.title != node.class_type:
        body["title"] = node.title
    body.update(
        {
            "pos": [LEFT + COLUMN_WIDTH * ui_node.column, round(ui_node.y)],
            "size": [NODE_WIDTH, round(ui_node.height)],
            "flags": {},
            "order": ui_node.order,
            "mode": 0,
            "inputs": ui_node.inputs,
            "outputs": ui_node.outputs,
            "properties": {S_AND_R: node.class_type},
            "widgets_values": ui_node.widgets_values,
        }
    )
    return body
