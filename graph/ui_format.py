"""Convert a UI-format workflow (what the editor saves) into an API-format prompt.

Frontend-only nodes (``Reroute``, ``PrimitiveNode``, notes) and muted or bypassed nodes never reach the server:
links are followed through reroutes and bypassed nodes to their real source, a primitive's value is written into
every input it feeds. Subgraph instances are flattened: the nodes of a definition become ``<instance>:<inner>``
(nested: ``<outer>:<instance>:<inner>``), the instance's inputs flow in through the definition's input node and its
outputs come from what feeds the output node. Widget values are mapped by input order against the node specs of a
``NodeRegistry``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from graph.coercion import types_match
from graph.errors import WorkflowFormatError
from graph.registry import NodeRegistry
from graph.ui_graph import (
    SUBGRAPH_INPUT_ID,
    SUBGRAPH_TYPE,
    SubgraphDefinition,
    UiGraph,
    UiLink,
    UiNode,
    parse_definitions,
    parse_graph,
)
from graph.ui_widgets import map_widget_values

MODE_MUTED = 2
MODE_BYPASSED = 4
REROUTE = "Reroute"
PRIMITIVE = "PrimitiveNode"
NOTE_TYPES = frozenset({"Note", "MarkdownNote"})
VIRTUAL_TYPES = NOTE_TYPES | {REROUTE, PRIMITIVE}
PROXY_WIDGETS = "proxyWidgets"  # a subgraph instance's promoted widgets: [[inner node id, widget name], ...]
PROMOTED_INPUT = "-1"  # a proxyWidgets entry for the instance's own input widget


@dataclass(frozen=True)
class UiSource:
    """Where an API node came from: its UI node, and the subgraph instances it sits in (outermost first)."""

    node: UiNode
    path: tuple[str, ...] = ()
    subgraphs: tuple[str, ...] = ()  # the names of those instances' definitions


@dataclass(frozen=True)
class LeftOverWidgets:
    """Saved widget values that no widget input of our node class took (an input of another version of it)."""

    api_id: str
    class_type: str
    values: tuple[tuple[int | str, Any], ...]


@dataclass(frozen=True)
class UiConversion:
    """The API prompt, where each of its nodes came from, the widget values nothing took, and the nodes of
    unknown types left out because nothing links to or from them (a pack's labels and bookmarks)."""

    api: dict[str, Any]
    sources: dict[str, UiSource] = field(default_factory=dict)
    left_over_widgets: list[LeftOverWidgets] = field(default_factory=list)
    unconnected_unknown: list[UiSource] = field(default_factory=list)


_DROP = object()  # an input whose source resolves to nothing (muted, unlinked reroute, no bypass match)


@dataclass(frozen=True)
class _Scope:
    """One graph being flattened: the root, or one subgraph instance (nested instances chain through ``parent``)."""

    graph: UiGraph
    prefix: str = ""
    instance: UiNode | None = None
    parent: _Scope | None = None
    definition: SubgraphDefinition | None = None
    overrides: Mapping[tuple[str, str], Any] = field(default_factory=dict)

    def api_id(self, node_id: str) -> str:
        return self.prefix + node_id

    def chain(self) -> list[_Scope]:
        scopes: list[_Scope] = []
        scope: _Scope | None = self
        while scope is not None and scope.instance is not None:
            scopes.append(scope)
            scope = scope.parent
        return scopes[::-1]


def ui_to_api(workflow: Mapping[str, Any], registry: NodeRegistry) -> dict[str, Any]:
    """Convert a UI-format workflow into an API-format prompt; raises ``WorkflowFormatError`` on bad shapes."""
    return convert_ui(workflow, registry).api


def convert_ui(workflow: Mapping[str, Any], registry: NodeRegistry) -> UiConversion:
    """Convert a UI-format workflow, keeping where each API node came from; ``WorkflowFormatError`` on bad shapes."""
    if not isinstance(workflow, Mapping):
        raise WorkflowFormatError(f"a UI workflow must be a JSON object, got {type(workflow).__name__}")
    converter = _Converter(registry, parse_definitions(workflow))
    converter.emit(_Scope(parse_graph(workflow)))
    return UiConversion(converter.api, converter.sources, converter.left_over, converter.unconnected_unknown)


class _Converter:
    """Walks the root graph and every subgraph instance, writing API nodes."""

    def __init__(self, registry: NodeRegistry, definitions: Mapping[str, SubgraphDefinition]) -> None:
        self.registry = registry
        self.definitions = definitions
        self.api: dict[str, Any] = {}
        self.sources: dict[str, UiSource] = {}
        self.left_over: list[LeftOverWidgets] = []
        self.unconnected_unknown: list[UiSource] = []

    def emit(self, scope: _Scope) -> None:
        for node in scope.graph.nodes.values():
            if node.mode in (MODE_MUTED, MODE_BYPASSED) or node.type in VIRTUAL_TYPES:
                continue
            definition = self.definitions.get(node.type)
            if definition is not None:
                self.emit(self._enter(scope, node, definition))
                continue
            api_id = scope.api_id(node.id)
            if api_id in self.api:
                raise WorkflowFormatError(f"{node.label()}: its API id {api_id} is used twice")
            chain = scope.chain()
            source = UiSource(
                node,
                tuple(step.instance.id for step in chain if step.instance is not None),
                tuple(step.definition.name for step in chain if step.definition is not None),
            )
            if _is_unconnected_unknown(self.registry, scope.graph, node):
                self.unconnected_unknown.append(source)
                continue
            self.api[api_id] = {
                "class_type": node.type,
                "inputs": self._node_inputs(scope, node, api_id),
                "_meta": {"title": node.title or node.type},
            }
            self.sources[api_id] = source

    # ----- subgraph instances ------------------------------------------------------------------------------------

    def _enter(self, scope: _Scope, instance: UiNode, definition: SubgraphDefinition) -> _Scope:
        """The scope of ``instance``'s copy of ``definition``; refuses a definition that contains itself."""
        outer = [step.definition.id for step in scope.chain() if step.definition is not None]
        if definition.id in outer:
            names = [self.definitions[step].name for step in outer] + [definition.name]
            raise WorkflowFormatError(f"subgraph {definition.name!r} contains itself ({' > '.join(names)})")
        overrides = _proxy_overrides(instance, scope.overrides)
        return _Scope(definition.graph, scope.api_id(instance.id) + ":", instance, scope, definition, overrides)

    def _subgraph_input(self, scope: _Scope, slot: int, seen: set[tuple[str, str]]) -> Any:
        """What feeds input ``slot`` of the instance ``scope`` belongs to: a link, a promoted widget value, or drop."""
        instance, parent, definition = scope.instance, scope.parent, scope.definition
        if instance is None or parent is None or definition is None or not 0 <= slot < len(definition.inputs):
            return _DROP
        name = definition.inputs[slot].name
        index = next((i for i, entry in enumerate(instance.inputs) if entry.get("name") == name), slot)
        if 0 <= index < len(instance.inputs):
            link = parent.graph.slot_link(instance.inputs[index])
            if link is not None:
                return self._resolve(parent, link, seen)
        return _promoted_input_value(instance, index, name, parent.overrides)

    # ----- inputs ------------------------------------------------------------------------------------------------

    def _node_inputs(self, scope: _Scope, node: UiNode, api_id: str) -> dict[str, Any]:
        """Widget values first (a promoted widget's value wins), then every linked input."""
        spec = self.registry.get(node.type)
        inputs: dict[str, Any] = {}
        if spec is not None:
            mapped = map_widget_values(node.widgets_values, spec.widget_inputs)
            inputs.update(mapped.values)
            if mapped.left_over:
                self.left_over.append(LeftOverWidgets(api_id, node.type, mapped.left_over))
        for (node_id, widget), value in scope.overrides.items():
            if node_id == node.id:
                inputs[widget] = value
        for index, slot in enumerate(node.inputs):
            link = scope.graph.slot_link(slot)
            if link is None:  # unlinked, or a stale link id missing from the table: the widget value stays
                continue
            value = self._resolve(scope, link, set())
            if value is not _DROP:
                inputs[_input_name(node, index, slot)] = value
        return inputs

    def _resolve(self, scope: _Scope, link: UiLink, seen: set[tuple[str, str]]) -> Any:
        """Follow a link through subgraphs, reroutes, primitives and bypassed nodes to an API link, a constant or
        ``_DROP``."""
        if link.origin == SUBGRAPH_INPUT_ID and scope.instance is not None:
            return self._subgraph_input(scope, link.origin_slot, seen)
        source = scope.graph.nodes.get(link.origin)
        if source is None:  # kept as a link so validation names the node and input
            return [scope.api_id(link.origin), link.origin_slot]
        if source.mode == MODE_MUTED or source.type in NOTE_TYPES:
            return _DROP
        if source.type == PRIMITIVE:
            return _primitive_value(source)
        key = (scope.prefix, source.id)
        definition = self.definitions.get(source.type)
        if definition is not None and source.mode != MODE_BYPASSED:
            if (key, str(link.origin_slot)) in seen:
                raise WorkflowFormatError(f"{source.label()}: its outputs feed its own inputs")
            seen.add((key, str(link.origin_slot)))
            inner = self._enter(scope, source, definition)
            feeding = inner.graph.output_link(link.origin_slot)
            return _DROP if feeding is None else self._resolve(inner, feeding, seen)
        if source.type != REROUTE and source.mode != MODE_BYPASSED:
            return [scope.api_id(source.id), link.origin_slot]
        if key in seen:
            raise WorkflowFormatError(f"{source.label()}: reroutes or bypassed nodes form a cycle")
        seen.add(key)
        upstream = _passthrough_link(scope.graph, source, link)
        return _DROP if upstream is None else self._resolve(scope, upstream, seen)


def _is_unconnected_unknown(registry: NodeRegistry, graph: UiGraph, node: UiNode) -> bool:
    """Whether ``node`` has a type we lack and no link of ``graph`` feeds or leaves it.

    An instance of a subgraph whose definition is missing never is: its inner nodes may be outputs.
    """
    if node.type in registry or SUBGRAPH_TYPE.fullmatch(node.type):
        return False
    if any(graph.slot_link(slot) is not None for slot in node.inputs):
        return False
    return not any(link.origin == node.id or link.target == node.id for link in graph.links.values())


def _passthrough_link(graph: UiGraph, node: UiNode, link: UiLink) -> UiLink | None:
    """The link feeding a reroute, or the bypassed node's input that stands in for output ``link.origin_slot``."""
    linked = [(i, graph.slot_link(slot)) for i, slot in enumerate(node.inputs)]
    if node.type == REROUTE:
        return linked[0][1] if linked else None
    wanted = link.type
    slot = link.origin_slot
    if 0 <= slot < len(node.outputs) and isinstance(node.outputs[slot].get("type"), str):
        wanted = node.outputs[slot]["type"]
    candidates = sorted(linked, key=lambda pair: pair[0] != slot)  # same slot first, then in order
    for index, upstream in candidates:
        slot_type = node.inputs[index].get("type")
        if upstream is not None and isinstance(slot_type, str) and types_match(wanted, slot_type):
            return upstream
    return None


def _proxy_overrides(instance: UiNode, outer: Mapping[tuple[str, str], Any]) -> dict[tuple[str, str], Any]:
    """Promoted widget values of a subgraph instance by (inner node id, widget name).

    ``properties.proxyWidgets`` lists the promoted widgets; the instance's ``widgets_values`` holds their values in
    that order. A value promoted again by an enclosing instance (keyed by this instance's id) wins.
    """
    overrides: dict[tuple[str, str], Any] = {}
    for position, target, widget in _proxy_entries(instance):
        if target == PROMOTED_INPUT:
            continue
        if (instance.id, widget) in outer:
            overrides[(target, widget)] = outer[(instance.id, widget)]
        elif isinstance(instance.widgets_values, list) and position < len(instance.widgets_values):
            overrides[(target, widget)] = instance.widgets_values[position]
    return overrides


def _promoted_input_value(instance: UiNode, index: int, name: str, outer: Mapping[tuple[str, str], Any]) -> Any:
    """The widget value an unlinked instance input shows, or ``_DROP`` (the inner widget keeps its own value).

    With ``proxyWidgets``, the entry ``["-1", name]`` holds it; without, instance inputs that carry a ``widget``
    take the instance's ``widgets_values`` in order.
    """
    if (instance.id, name) in outer:
        return outer[(instance.id, name)]
    values = instance.widgets_values
    if not isinstance(values, list):
        return values.get(name, _DROP) if isinstance(values, Mapping) else _DROP
    entries = _proxy_entries(instance)
    if entries:
        position = next((i for i, target, widget in entries if (target, widget) == (PROMOTED_INPUT, name)), None)
    elif 0 <= index < len(instance.inputs) and isinstance(instance.inputs[index].get("widget"), Mapping):
        position = sum(1 for entry in instance.inputs[:index] if isinstance(entry.get("widget"), Mapping))
    else:
        position = None
    return values[position] if position is not None and position < len(values) else _DROP


def _proxy_entries(instance: UiNode) -> list[tuple[int, str, str]]:
    """``(position in widgets_values, inner node id, widget name)`` for each well-formed proxyWidgets entry."""
    raw = instance.properties.get(PROXY_WIDGETS)
    if not isinstance(raw, list):
        return []
    return [
        (position, str(entry[0]), entry[1])
        for position, entry in enumerate(raw)
        if isinstance(entry, list) and len(entry) >= 2 and isinstance(entry[1], str)
    ]


def _input_name(node: UiNode, index: int, slot: Mapping[str, Any]) -> str:
    widget = slot.get("widget")
    name = widget.get("name") if isinstance(widget, Mapping) and widget.get("name") else slot.get("name")
    if not isinstance(name, str) or not name:
        raise WorkflowFormatError(f"{node.label()}: inputs[{index}] has no name")
    return name


def _primitive_value(node: UiNode) -> Any:
    """A PrimitiveNode's constant: its first widget value."""
    raw = node.widgets_values
    if isinstance(raw, Mapping):
        raw = [raw["value"]] if "value" in raw else list(raw.values())
    if not raw:
        return _DROP
    return raw[0]
