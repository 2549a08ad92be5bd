"""Building the subgraph a node expands into (ComfyUI's ``GraphBuilder`` interface).

A node returns ``{"result": (builder_node.out(0), ...), "expand": graph.finalize()}`` and the executor runs the
subgraph in its place. Ids are prefixed per expanding node and call, so they are unique and deterministic.
"""

from __future__ import annotations

from typing import Any

from graph.context import optional_context
from graph.prompt import Link


class BuiltNode:
    """One node of a subgraph under construction."""

    def __init__(self, node_id: str, class_type: str, inputs: dict[str, Any]) -> None:
        self.id = node_id
        self.class_type = class_type
        self.inputs: dict[str, Any] = {}
        self.override_display_id: str | None = None
        for name, value in inputs.items():
            self.set_input(name, value)

    def out(self, index: int) -> list[Any]:
        """A link to output ``index`` of this node."""
        return [self.id, index]

    def set_input(self, name: str, value: Any) -> None:
        """Set an input: a constant, a link from ``out()``, or a ``BuiltNode`` (its output 0); None removes it."""
        if value is None:
            self.inputs.pop(name, None)
        elif isinstance(value, BuiltNode):
            self.inputs[name] = value.out(0)
        elif isinstance(value, Link):
            self.inputs[name] = [value.source, value.slot]
        else:
            self.inputs[name] = value

    def get_input(self, name: str) -> Any:
        return self.inputs.get(name)

    def set_override_display_id(self, display_id: str) -> None:
        """Show this node's progress on another node of the editor's graph."""
        self.override_display_id = display_id

    def serialize(self) -> dict[str, Any]:
        body: dict[str, Any] = {"class_type": self.class_type, "inputs": dict(self.inputs)}
        if self.override_display_id is not None:
            body["override_display_id"] = self.override_display_id
        return body


class GraphBuilder:
    """Collects nodes for an expansion.

    Args:
        prefix: id prefix; by default a unique one from the expanding node's context (``"<node>.<n>."``).
    """

    def __init__(self, prefix: str | None = None) -> None:
        if prefix is None:
            context = optional_context()
            prefix = context.next_expansion_prefix() if context is not None else "expansion."
        self.prefix = prefix
        self.nodes: dict[str, BuiltNode] = {}
        self._counter = 0

    def node(self, class_type: str, id: str | None = None, **inputs: Any) -> BuiltNode:
        """Add (or return the existing) node; ``id`` defaults to a counter."""
        if id is None:
            self._counter += 1
            id = str(self._counter)
        node_id = self.prefix + id
        existing = self.nodes.get(node_id)
        if existing is not None:
            return existing
        built = BuiltNode(node_id, class_type, inputs)
        self.nodes[node_id] = built
        return built

    def lookup_node(self, id: str) -> BuiltNode | None:
        return self.nodes.get(self.prefix + id)

    def remove_node(self, id: str) -> None:
        self.nodes.pop(self.prefix + id, None)

    def finalize(self) -> dict[str, Any]:
        """The subgraph in API format, ready to return under ``"expand"``."""
        return {node_id: node.serialize() for node_id, node in self.nodes.items()}
