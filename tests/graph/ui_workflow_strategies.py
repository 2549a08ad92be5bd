"""Hypothesis strategies for random graphs of registered nodes, and a writer saving them as ComfyUI's editor does.

A ``GraphModel`` is the logical graph: real nodes with widget values, edges from an earlier node's output to a later
node's input, PrimitiveNode values fed into widget inputs, and which nodes sit inside one subgraph definition (used
by one or two instances). ``ui_cases`` draws a model and writes it as a UI workflow (version 0.4 or schema 1),
decorated with Reroute chains, bypassed pass-through nodes, native reroutes, notes and groups. The writer is
written from ComfyUI's saved format, independently of ``graph.api_to_ui``.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from graph.registry import NodeRegistry
from graph.spec import COMBO_TYPE, UPLOAD_BUTTON_VALUE, InputSpec, NodeSpec

ANY = "*"
CONTROL_VALUES = ("fixed", "increment", "decrement", "randomize")
FRONTEND_ONLY = frozenset({"Reroute", "PrimitiveNode", "Note", "MarkdownNote"})
LINK_KEYS = ("id", "origin_id", "origin_slot", "target_id", "target_slot", "type")
SUBGRAPH_INPUT_NODE = -10
SUBGRAPH_OUTPUT_NODE = -20
ODD_TEXT = ("", " ", "a\nb\r\nc", "漢字 é 🎬", '"quoted" \\ back', "\t\u200b\u00a0", "null", "[1, 2]", "0")

Draw = Callable[[st.SearchStrategy[Any]], Any]

_texts = st.text(st.characters(exclude_categories=("Cs",)), max_size=24) | st.sampled_from(ODD_TEXT)


@dataclass(frozen=True)
class ModelNode:
    """A real node: its class, whether it is muted (mode 2), its widget values and seed control settings."""

    uid: int
    class_type: str
    muted: bool
    widgets: dict[str, Any]
    controls: dict[str, str]


@dataclass(frozen=True)
class Edge:
    """Output ``slot`` of node ``source`` feeds input ``input`` of the later node ``target``."""

    source: int
    slot: int
    target: int
    input: str
    type: str
    to_widget: bool


@dataclass(frozen=True)
class Primitive:
    """A PrimitiveNode whose value feeds widget inputs ``targets`` (node uid, input name), all in one scope."""

    type: str
    value: Any
    targets: tuple[tuple[int, str], ...]
    inner: bool


@dataclass(frozen=True)
class Placement:
    """The nodes inside the subgraph definition, their ids there, and the ids of its instances (the first one
    feeds the consumers outside)."""

    inner_ids: dict[int, int] = field(default_factory=dict)
    instances: tuple[int, ...] = ()

    def copies(self, uid: int) -> tuple[int | None, ...]:
        """The instances a node is emitted for: ``(None,)`` for a root node."""
        return self.instances if uid in self.inner_ids else (None,)

    def api_id(self, uid: int, instance: int | None) -> str:
        return f"{instance}:{self.inner_ids[uid]}" if uid in self.inner_ids else str(uid)


@dataclass(frozen=True)
class GraphModel:
    """The logical graph the UI workflow is written from, and the expected API prompt is computed from."""

    nodes: dict[int, ModelNode]
    edges: tuple[Edge, ...]
    primitives: tuple[Primitive, ...]
    placement: Placement


@dataclass(frozen=True)
class UiCase:
    model: GraphModel
    workflow: dict[str, Any]


def node_classes(registry: NodeRegistry) -> list[str]:
    """Every registered class the editor shows as a real node."""
    return sorted(name for name in registry if name not in FRONTEND_ONLY)


def socket_inputs(spec: NodeSpec) -> list[InputSpec]:
    """The inputs the editor draws as sockets (required, then optional; hidden ones are never shown)."""
    names = spec.input_order.get("required", ()) + spec.input_order.get("optional", ())
    return [spec.inputs[name] for name in names if not spec.inputs[name].is_widget]


def widget_value(spec: InputSpec) -> st.SearchStrategy[Any]:
    """A valid value for a widget input: within INT/FLOAT ranges, one of a combo's choices, any text."""
    if spec.type == "INT":
        return st.integers(spec.options.get("min", -(2**63)), spec.options.get("max", 2**64 - 1))
    if spec.type == "FLOAT":
        low, high = spec.options.get("min", -1e9), spec.options.get("max", 1e9)
        return st.floats(low, high, allow_nan=False, allow_infinity=False)
    if spec.type == "BOOLEAN":
        return st.booleans()
    if spec.type == COMBO_TYPE and spec.choices:
        return st.sampled_from(spec.choices)
    return _texts


def _accepts(input_type: str, output_type: str, to_widget: bool) -> bool:
    if to_widget:
        return output_type in (input_type, ANY)
    return output_type == input_type or ANY in (input_type, output_type)


def _chance(draw: Draw, percent: int) -> bool:
    return draw(st.integers(0, 99)) < percent


@st.composite
def graph_models(draw: Draw, registry: NodeRegistry, max_nodes: int = 7) -> GraphModel:
    """A random graph: 1..max_nodes registered nodes, edges between matching types, a subgraph, primitives."""
    classes = node_classes(registry)
    nodes: dict[int, ModelNode] = {}
    edges: list[Edge] = []
    for uid in range(1, draw(st.integers(1, max_nodes)) + 1):
        spec = _spec(registry, _draw_class(draw, registry, classes, nodes))
        widgets = {w.name: draw(widget_value(w)) for w in spec.widget_inputs}
        controls = {
            w.name: draw(st.sampled_from(CONTROL_VALUES)) for w in spec.widget_inputs if w.has_control_after_generate
        }
        nodes[uid] = ModelNode(uid, spec.class_type, _chance(draw, 15), widgets, controls)
        edges += _draw_edges(draw, registry, nodes, uid)
    placement = _draw_placement(draw, len(nodes))
    primitives = _draw_primitives(draw, registry, nodes, edges, placement)
    return GraphModel(nodes, tuple(edges), primitives, placement)


def _draw_class(draw: Draw, registry: NodeRegistry, classes: list[str], nodes: dict[int, ModelNode]) -> str:
    """Mostly a class that can take one of the earlier nodes' output types, so that graphs are well connected."""
    offered = sorted({out for node in nodes.values() for out in _spec(registry, node.class_type).output_types})
    if not offered or not _chance(draw, 75):
        return draw(st.sampled_from(classes))
    wanted = draw(st.sampled_from(offered))
    consumers = [
        name
        for name in classes
        if any(_accepts(spec.type, wanted, spec.is_widget) for spec in _inputs(_spec(registry, name)))
    ]
    return draw(st.sampled_from(consumers or classes))


def _inputs(spec: NodeSpec) -> list[InputSpec]:
    return socket_inputs(spec) + spec.widget_inputs


def _draw_edges(draw: Draw, registry: NodeRegistry, nodes: dict[int, ModelNode], uid: int) -> list[Edge]:
    """Links into node ``uid`` from earlier nodes; muted sources feed sockets only."""
    edges = []
    for target in _inputs(_spec(registry, nodes[uid].class_type)):
        to_widget = target.is_widget
        sources = [
            (source.uid, slot, out_type)
            for source in nodes.values()
            if source.uid < uid and not (to_widget and source.muted)
            for slot, out_type in enumerate(_spec(registry, source.class_type).output_types)
            if _accepts(target.type, out_type, to_widget)
        ]
        if sources and _chance(draw, 50 if to_widget else 85):
            source, slot, out_type = draw(st.sampled_from(sources))
            link_type = target.type if out_type == ANY else out_type
            edges.append(Edge(source, slot, uid, target.name, link_type, to_widget))
    return edges


def _draw_placement(draw: Draw, count: int) -> Placement:
    """Maybe wrap a run of consecutive nodes (convex: edges only go forward) into a subgraph, used once or twice."""
    if not _chance(draw, 40):
        return Placement()
    inside = (2, count - 1) if count >= 3 and _chance(draw, 60) else (1, count)  # mostly with edges in and out
    first = draw(st.integers(*inside))
    last = draw(st.integers(first, inside[1]))
    renumber = draw(st.booleans())  # inner ids restart at 1 (may equal outer ids) or keep their own
    inner_ids = {uid: (uid - first + 1 if renumber else uid) for uid in range(first, last + 1)}
    instances = tuple(range(count + 1, count + 1 + draw(st.integers(1, 2))))
    return Placement(inner_ids, instances)


def _draw_primitives(
    draw: Draw, registry: NodeRegistry, nodes: dict[int, ModelNode], edges: list[Edge], placement: Placement
) -> tuple[Primitive, ...]:
    """PrimitiveNodes feeding unlinked widget inputs of unmuted nodes; one primitive feeds inputs of one config."""
    linked = {(edge.target, edge.input) for edge in edges}
    free = [
        (node.uid, widget)
        for node in nodes.values()
        if not node.muted
        for widget in _spec(registry, node.class_type).widget_inputs
        if (node.uid, widget.name) not in linked
    ]
    primitives = []
    for _ in range(draw(st.integers(0, 2))):
        if not free:
            break
        uid, widget = draw(st.sampled_from(free))
        inner = uid in placement.inner_ids
        key = _widget_config(widget)
        alike = [
            pair
            for pair in free
            if (pair[0], pair[1].name) != (uid, widget.name)
            and _widget_config(pair[1]) == key
            and (pair[0] in placement.inner_ids) == inner
        ]
        more = (
            draw(st.lists(st.sampled_from(alike), unique_by=lambda pair: (pair[0], pair[1].name), max_size=3))
            if alike
            else []
        )
        chosen = [(uid, widget), *more]
        free = [pair for pair in free if pair not in chosen]
        value = draw(widget_value(widget))
        primitives.append(Primitive(widget.type, value, tuple((u, w.name) for u, w in chosen), inner))
    return tuple(primitives)


def _widget_config(spec: InputSpec) -> tuple[Any, ...]:
    return (spec.type, spec.options.get("min"), spec.options.get("max"), spec.choices)


def _spec(registry: NodeRegistry, class_type: str) -> NodeSpec:
    spec = registry.get(class_type)
    assert spec is not None
    return spec


@st.composite
def ui_cases(draw: Draw, registry: NodeRegistry) -> UiCase:
    """A random graph model and the UI workflow ComfyUI's editor would save for it."""
    model = draw(graph_models(registry))
    writer = _Writer(draw, registry, model, schema=draw(st.sampled_from((0.4, 1))))
    return UiCase(model, json.loads(json.dumps(writer.write())))


@dataclass
class _UiGraph:
    """One graph being written: the root, or the subgraph definition (with its interface slots)."""

    node_ids: Iterator[int]
    nodes: list[dict[str, Any]] = field(default_factory=list)
    links: list[dict[str, Any]] = field(default_factory=list)
    inputs: list[dict[str, Any]] = field(default_factory=list)
    outputs: list[dict[str, Any]] = field(default_factory=list)


Port = tuple[dict[str, Any] | None, int]  # a node and a slot; None is the definition's input or output node


class _Writer:
    """Writes a ``GraphModel`` the way ComfyUI's editor saves it, drawing the decorations as it goes."""

    def __init__(self, draw: Draw, registry: NodeRegistry, model: GraphModel, schema: float) -> None:
        self.draw, self.registry, self.model, self.schema = draw, registry, model, schema
        self.link_ids = itertools.count(1)
        placement = model.placement
        after_instances = len(model.nodes) + len(placement.instances) + 1
        self.root = _UiGraph(itertools.count(after_instances))
        renumbered = any(uid != inner for uid, inner in placement.inner_ids.items())
        # renumbered inner ids restart at 1; kept ones are unique in the file, as are the virtual nodes' ids then
        self.inner = _UiGraph(itertools.count(len(placement.inner_ids) + 1) if renumbered else self.root.node_ids)
        self.bypass_hosts = _bypass_hosts(registry)
        self.all_widget_slots = draw(st.booleans())  # newer editors save a slot for every widget input
        self.subgraph_id = str(draw(st.uuids()))
        self.dicts: dict[int, dict[str, Any]] = {}
        self.primitive_values = {target: p.value for p in model.primitives for target in p.targets}
        self.entries: dict[tuple[int, int], int] = {}  # (outer source, slot) -> definition input
        self.exits: dict[tuple[int, int], int] = {}  # (inner source, slot) -> definition output

    def write(self) -> dict[str, Any]:
        placement = self.model.placement
        for node in self.model.nodes.values():
            graph = self.inner if node.uid in placement.inner_ids else self.root
            node_id = placement.inner_ids.get(node.uid, node.uid)
            mode = 2 if node.muted else 0
            self.dicts[node.uid] = self._add(graph, self._node(node_id, node.class_type, mode, node))
        instances = [self._add(self.root, self._instance(instance)) for instance in placement.instances]
        for edge in self.model.edges:
            self._write_edge(edge, instances)
        for primitive in self.model.primitives:
            self._write_primitive(primitive)
        for graph in (self.root, self.inner):
            for _ in range(self.draw(st.integers(0, 2))):
                kind = self.draw(st.sampled_from(("Note", "MarkdownNote")))
                self._add(graph, _frame(next(graph.node_ids), kind, properties={}, widgets_values=[self.draw(_texts)]))
        return self._workflow(self.root, self._definition() if placement.instances else None)

    # ----- nodes ------------------------------------------------------------------------------------------------

    def _add(self, graph: _UiGraph, node: dict[str, Any]) -> dict[str, Any]:
        graph.nodes.insert(self.draw(st.integers(0, len(graph.nodes))), node)  # saved order is not run order
        return node

    def _node(self, node_id: int, class_type: str, mode: int, node: ModelNode | None = None) -> dict[str, Any]:
        """A registered node's entry: socket slots, widget slots (maybe), outputs and widgets_values."""
        spec = _spec(self.registry, class_type)
        widgets = node.widgets if node else {w.name: self.draw(widget_value(w)) for w in spec.widget_inputs}
        values: list[Any] = []
        for widget in spec.widget_inputs:
            shown = widgets[widget.name]
            if node and (node.uid, widget.name) in self.primitive_values and self.draw(st.booleans()):
                shown = self.primitive_values[(node.uid, widget.name)]  # the editor syncs it (or not yet)
            values.append(shown)
            if widget.has_control_after_generate:
                values.append(node.controls[widget.name] if node else "fixed")
            if widget.has_upload_button:
                values.append(UPLOAD_BUTTON_VALUE)
        inputs = [_slot(socket.name, socket.type) for socket in socket_inputs(spec)]
        if self.all_widget_slots:
            inputs += [_slot(w.name, w.type, widget=True) for w in spec.widget_inputs]
        outputs = [
            {"name": name, "type": out_type, "links": None if self.draw(st.booleans()) else [], "slot_index": slot}
            for slot, (name, out_type) in enumerate(zip(spec.output_names, spec.output_types, strict=True))
        ]
        entry = _frame(node_id, class_type, mode=mode, inputs=inputs, outputs=outputs)
        entry["properties"] = {"Node name for S&R": class_type}
        if values or self.draw(st.booleans()):
            entry["widgets_values"] = values
        if self.draw(st.integers(0, 9)) == 0:
            entry["title"] = self.draw(_texts)
        return entry

    def _instance(self, node_id: int) -> dict[str, Any]:
        return _frame(node_id, self.subgraph_id, properties={"proxyWidgets": []}, widgets_values=[])

    # ----- links ------------------------------------------------------------------------------------------------

    def _write_edge(self, edge: Edge, instances: list[dict[str, Any]]) -> None:
        inner_ids = self.model.placement.inner_ids
        source, target = self.dicts[edge.source], self.dicts[edge.target]
        into = (target, self._input_slot(target, edge.input, edge.type, edge.to_widget))
        source_inner, target_inner = edge.source in inner_ids, edge.target in inner_ids
        if source_inner == target_inner:
            self._route(self.inner if source_inner else self.root, (source, edge.slot), into, edge.type)
        elif target_inner:
            key = (edge.source, edge.slot)
            if key not in self.entries:
                self.entries[key] = self._interface(self.inner.inputs, instances, "inputs", edge.input, edge.type)
                self._route(self.root, (source, edge.slot), (instances[0], self.entries[key]), edge.type)
                for instance in instances[1:]:  # a second instance is fed from the same outputs, directly
                    self._connect(self.root, (source, edge.slot), (instance, self.entries[key]), edge.type)
            self._route(self.inner, (None, self.entries[key]), into, edge.type)
        else:
            key = (edge.source, edge.slot)
            if key not in self.exits:
                name = _spec(self.registry, self.model.nodes[edge.source].class_type).output_names[edge.slot]
                self.exits[key] = self._interface(self.inner.outputs, instances, "outputs", name, edge.type)
                self._route(self.inner, (source, edge.slot), (None, self.exits[key]), edge.type)
            self._route(self.root, (instances[0], self.exits[key]), into, edge.type)

    def _interface(
        self, slots: list[dict[str, Any]], instances: list[dict[str, Any]], key: str, name: str, slot_type: str
    ) -> int:
        """Add a definition input or output (a unique name, as the editor dedupes) and its slot on each instance."""
        taken = {slot["name"] for slot in slots}
        unique = next(candidate for n in itertools.count() if (candidate := f"{name}_{n}" if n else name) not in taken)
        slots.append({"id": str(self.draw(st.uuids())), "name": unique, "type": slot_type, "linkIds": []})
        for instance in instances:
            entry = _slot(unique, slot_type) if key == "inputs" else {"name": unique, "type": slot_type, "links": []}
            instance[key].append(entry)
        return len(slots) - 1

    def _input_slot(self, node: dict[str, Any], name: str, slot_type: str, to_widget: bool) -> int:
        """The index of input ``name``; a widget input converted to a socket gets its slot when first linked."""
        for index, slot in enumerate(node["inputs"]):
            if slot["name"] == name:
                return index
        node["inputs"].append(_slot(name, slot_type, widget=to_widget))
        return len(node["inputs"]) - 1

    def _route(self, graph: _UiGraph, source: Port, target: Port, link_type: str) -> None:
        """Link ``source`` to ``target`` through 0-2 Reroute nodes or bypassed pass-through nodes."""
        for _ in range(self.draw(st.sampled_from((0, 0, 1, 2)))):
            hosts = self.bypass_hosts.get(link_type, [])
            if hosts and self.draw(st.booleans()):
                class_type, input_name, out_slot = self.draw(st.sampled_from(hosts))
                hop = self._add(graph, self._node(next(graph.node_ids), class_type, mode=4))
                self._connect(graph, source, (hop, self._input_slot(hop, input_name, link_type, False)), link_type)
                source = (hop, out_slot)
            else:
                hop = self._add(graph, _reroute(next(graph.node_ids), link_type))
                self._connect(graph, source, (hop, 0), link_type)
                source = (hop, 0)
        self._connect(graph, source, target, link_type)

    def _write_primitive(self, primitive: Primitive) -> None:
        graph = self.inner if primitive.inner else self.root
        first = primitive.targets[0][1]
        values: list[Any] = [primitive.value]
        if primitive.type in ("INT", "FLOAT", COMBO_TYPE) and self.draw(st.booleans()):
            values.append(self.draw(st.sampled_from(CONTROL_VALUES)))
            if primitive.type == COMBO_TYPE:
                values.append("")  # the combo filter
        output = {"name": primitive.type, "type": primitive.type, "links": [], "widget": {"name": first}}
        node = _frame(next(graph.node_ids), "PrimitiveNode", outputs=[output], widgets_values=values)
        node.update(title=first, properties={"Run widget replace on values": False})
        self._add(graph, node)
        for uid, name in primitive.targets:
            target = self.dicts[uid]
            self._connect(
                graph, (node, 0), (target, self._input_slot(target, name, primitive.type, True)), primitive.type
            )

    def _connect(self, graph: _UiGraph, source: Port, target: Port, link_type: str) -> None:
        link_id = next(self.link_ids)
        (origin, origin_slot), (end, end_slot) = source, target
        if origin is None:
            graph.inputs[origin_slot]["linkIds"].append(link_id)
        else:
            origin["outputs"][origin_slot]["links"] = [*(origin["outputs"][origin_slot]["links"] or []), link_id]
        if end is None:
            graph.outputs[end_slot]["linkIds"].append(link_id)
        else:
            end["inputs"][end_slot]["link"] = link_id
        graph.links.append(
            {
                "id": link_id,
                "origin_id": SUBGRAPH_INPUT_NODE if origin is None else origin["id"],
                "origin_slot": origin_slot,
                "target_id": SUBGRAPH_OUTPUT_NODE if end is None else end["id"],
                "target_slot": end_slot,
                "type": link_type,
            }
        )

    # ----- the file ---------------------------------------------------------------------------------------------

    def _definition(self) -> dict[str, Any]:
        graph = self.inner
        return {
            "id": self.subgraph_id,
            "version": 1,
            "state": _state(graph),
            "revision": 0,
            "config": {},
            "name": self.draw(_texts.filter(bool)),
            "inputNode": {"id": SUBGRAPH_INPUT_NODE, "bounding": [0, 0, 120, 60]},
            "outputNode": {"id": SUBGRAPH_OUTPUT_NODE, "bounding": [900, 0, 120, 60]},
            "inputs": graph.inputs,
            "outputs": graph.outputs,
            "widgets": [],
            "nodes": graph.nodes,
            "groups": self._groups(),
            "links": graph.links,
            "reroutes": self._native_reroutes(graph),
            "extra": {},
        }

    def _workflow(self, graph: _UiGraph, definition: dict[str, Any] | None) -> dict[str, Any]:
        """Version 0.4 saves root links as arrays; schema 1 as objects, with ``state`` and native reroutes."""
        workflow: dict[str, Any] = {"id": str(self.draw(st.uuids())), "revision": 0}
        if self.schema == 1:
            workflow.update(version=1, state=_state(graph), links=graph.links, reroutes=self._native_reroutes(graph))
        else:
            arrays = [[link[key] for key in LINK_KEYS] for link in graph.links]
            state = _state(graph)
            workflow.update(
                version=0.4, last_node_id=state["lastNodeId"], last_link_id=state["lastLinkId"], links=arrays
            )
        workflow.update(
            nodes=graph.nodes, groups=self._groups(), config={}, extra={"ds": {"scale": 1, "offset": [0, 0]}}
        )
        if definition is not None:
            workflow["definitions"] = {"subgraphs": [definition]}
        return workflow

    def _groups(self) -> list[dict[str, Any]]:
        count = self.draw(st.integers(0, 2))
        return [
            {"id": n + 1, "title": self.draw(_texts), "bounding": [0, 0, 400, 300], "color": "#3f789e", "flags": {}}
            for n in range(count)
        ]

    def _native_reroutes(self, graph: _UiGraph) -> list[dict[str, Any]]:
        """Schema 1's link reroutes: points a link passes through; only drawing, the link keeps its ends."""
        if not graph.links or not self.draw(st.booleans()):
            return []
        links = self.draw(
            st.lists(st.sampled_from(graph.links), min_size=1, max_size=3, unique_by=lambda link: link["id"])
        )
        for link in links:
            link["parentId"] = 1
        return [{"id": 1, "pos": [10.5, 20.5], "linkIds": [link["id"] for link in links]}]


def _bypass_hosts(registry: NodeRegistry) -> dict[str, list[tuple[str, str, int]]]:
    """For each socket type: (class, input, output slot) of nodes passing that type through when bypassed."""
    hosts: dict[str, list[tuple[str, str, int]]] = {}
    for class_type in node_classes(registry):
        spec = _spec(registry, class_type)
        for socket in socket_inputs(spec):
            for slot, out_type in enumerate(spec.output_types):
                if out_type == socket.type:
                    hosts.setdefault(socket.type, []).append((class_type, socket.name, slot))
    return hosts


def _frame(node_id: int, node_type: str, **fields: Any) -> dict[str, Any]:
    """The fields every saved node has."""
    entry: dict[str, Any] = {"id": node_id, "type": node_type, "pos": [node_id * 10.0, 0.0], "size": [200, 80]}
    entry.update(flags={}, order=node_id, mode=0, inputs=[], outputs=[], properties={})
    entry.update(fields)
    return entry


def _slot(name: str, slot_type: str, widget: bool = False) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": name, "localized_name": name, "type": slot_type, "link": None}
    if widget:
        entry["widget"] = {"name": name}
    return entry


def _reroute(node_id: int, link_type: str) -> dict[str, Any]:
    output = {"name": "", "type": link_type, "links": [], "slot_index": 0}
    node = _frame(node_id, "Reroute", inputs=[{"name": "", "type": ANY, "link": None}], outputs=[output])
    node["properties"] = {"showOutputText": False, "horizontal": False}
    return node


def _state(graph: _UiGraph) -> dict[str, int]:
    last_node = max((node["id"] for node in graph.nodes), default=0)
    last_link = max((link["id"] for link in graph.links), default=0)
    return {"lastGroupId": 2, "lastNodeId": last_node, "lastLinkId": last_link, "lastRerouteId": 1}
