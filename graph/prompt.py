"""The API-format prompt, parsed once into typed nodes and links.

API format: ``{"<id>": {"class_type": str, "inputs": {name: literal | [source_id, output_index]}, "_meta": {...}}}``.
A list value is a link; links are recognised here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from graph.errors import WorkflowFormatError


class Link(NamedTuple):
    """An input fed by output ``slot`` of node ``source``."""

    source: str
    slot: int


@dataclass(frozen=True)
class BadLink:
    """A list value that is not a well-formed ``[node_id, output_index]`` link; validation reports it."""

    raw: Any


def parse_input_value(value: Any) -> Any:
    """Turn a raw API input value into a ``Link``, a ``BadLink`` or the constant itself."""
    if isinstance(value, Link):
        return value
    if isinstance(value, (list, tuple)):
        if (
            len(value) == 2
            and isinstance(value[0], (str, int))
            and not isinstance(value[0], bool)
            and isinstance(value[1], int)
            and not isinstance(value[1], bool)
        ):
            return Link(str(value[0]), value[1])
        return BadLink(value)
    return value


@dataclass
class PromptNode:
    """One node of a prompt: its class, its inputs (constants, ``Link``s, ``BadLink``s) and its title."""

    id: str
    class_type: str
    inputs: dict[str, Any]
    title: str | None = None

    def links(self) -> Iterator[tuple[str, Link]]:
        for name, value in self.inputs.items():
            if isinstance(value, Link):
                yield name, value

    def label(self) -> str:
        """How messages name this node: ``#12 ImageScale "Resize"``."""
        title = f' "{self.title}"' if self.title and self.title != self.class_type else ""
        return f"#{self.id} {self.class_type}{title}"


@dataclass
class Prompt:
    """A parsed API-format prompt; ``raw`` keeps the JSON exactly as submitted (it is embedded in outputs)."""

    nodes: dict[str, PromptNode]
    raw: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, data: Any) -> Prompt:
        """Parse an API-format prompt; raises ``WorkflowFormatError`` naming the offending node."""
        if not isinstance(data, Mapping):
            raise WorkflowFormatError(f"an API-format prompt must be a JSON object of nodes, got {type(data).__name__}")
        nodes: dict[str, PromptNode] = {}
        for raw_id, body in data.items():
            node_id = str(raw_id)
            if not isinstance(body, Mapping):
                raise WorkflowFormatError(f"node {node_id}: must be an object with class_type and inputs")
            class_type = body.get("class_type")
            if not isinstance(class_type, str) or not class_type:
                raise WorkflowFormatError(f"node {node_id}: class_type is missing or not a string")
            inputs = body.get("inputs", {})
            if not isinstance(inputs, Mapping):
                raise WorkflowFormatError(f"node {node_id} ({class_type}): inputs must be an object")
            meta = body.get("_meta")
            title = meta.get("title") if isinstance(meta, Mapping) and isinstance(meta.get("title"), str) else None
            parsed = {str(name): parse_input_value(value) for name, value in inputs.items()}
            nodes[node_id] = PromptNode(node_id, class_type, parsed, title)
        return cls(nodes=nodes, raw=dict(data))

    def __contains__(self, node_id: object) -> bool:
        return node_id in self.nodes

    def needed_by(self, roots: Iterable[str]) -> list[str]:
        """Every node the roots depend on through links, roots included, each once (links to missing nodes skipped)."""
        seen: set[str] = set()
        stack = [root for root in roots if root in self.nodes]
        order: list[str] = []
        while stack:
            node_id = stack.pop()
            if node_id in seen:
                continue
            seen.add(node_id)
            order.append(node_id)
            stack.extend(link.source for _, link in self.nodes[node_id].links() if link.source in self.nodes)
        return order

    def __getitem__(self, node_id: str) -> PromptNode:
        return self.nodes[node_id]


def input_to_api(value: Any) -> Any:
    """The JSON form of a parsed input value."""
    if isinstance(value, Link):
        return [value.source, value.slot]
    if isinstance(value, BadLink):
        return value.raw
    return value


def node_to_api(node: PromptNode) -> dict[str, Any]:
    """The API-format JSON of one node."""
    body: dict[str, Any] = {
        "class_type": node.class_type,
        "inputs": {k: input_to_api(v) for k, v in node.inputs.items()},
    }
    if node.title:
        body["_meta"] = {"title": node.title}
    return body


class DynamicPrompt:
    """The prompt as it grows during a run: the submitted nodes plus ephemeral nodes added by expansion."""

    def __init__(self, prompt: Prompt) -> None:
        self.prompt = prompt
        self._ephemeral: dict[str, PromptNode] = {}
        self._parents: dict[str, str] = {}
        self._display: dict[str, str] = {}

    def get(self, node_id: str) -> PromptNode | None:
        node = self.prompt.nodes.get(node_id)
        return node if node is not None else self._ephemeral.get(node_id)

    def __contains__(self, node_id: object) -> bool:
        return node_id in self.prompt.nodes or node_id in self._ephemeral

    def add_ephemeral(self, node: PromptNode, parent_id: str, display_id: str) -> None:
        self._ephemeral[node.id] = node
        self._parents[node.id] = parent_id
        self._display[node.id] = display_id

    def display_id(self, node_id: str) -> str:
        """The node the editor should highlight: the real node an ephemeral node was expanded from."""
        return self._display.get(node_id, node_id)

    def parent_id(self, node_id: str) -> str | None:
        return self._parents.get(node_id)

    def ephemeral_ids(self) -> list[str]:
        return list(self._ephemeral)
