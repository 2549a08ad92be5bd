"""``--set NODE_ID.INPUT=VALUE`` overrides applied to an API prompt before validation."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from graph.registry import NodeRegistry


class OverrideError(ValueError):
    """An override names a missing node or input, or is not of the form NODE_ID.INPUT=VALUE."""


@dataclass(frozen=True)
class Override:
    node_id: str
    input_name: str
    value: Any


def parse_override(text: str) -> Override:
    """Parse ``NODE_ID.INPUT=VALUE``; VALUE is read as JSON when it is valid JSON, else taken as text."""
    target, separator, raw_value = text.partition("=")
    node_id, dot, input_name = target.rpartition(".")
    if not separator or not dot or not node_id or not input_name:
        raise OverrideError(f"--set {text!r}: expected NODE_ID.INPUT=VALUE, e.g. --set 3.seed=42")
    try:
        value = json.loads(raw_value)
    except json.JSONDecodeError:
        value = raw_value
    return Override(node_id.strip(), input_name.strip(), value)


def apply_overrides(api: dict[str, Any], overrides: list[Override], registry: NodeRegistry) -> dict[str, Any]:
    """A copy of ``api`` with each override applied; raises ``OverrideError`` naming node and input."""
    patched = {node_id: {**body, "inputs": dict(body.get("inputs", {}))} for node_id, body in api.items()}
    for override in overrides:
        body = patched.get(override.node_id)
        if body is None:
            known = ", ".join(sorted(patched, key=_natural))
            raise OverrideError(
                f"--set {override.node_id}.{override.input_name}: there is no node {override.node_id} "
                f"in this workflow (nodes: {known})"
            )
        spec = registry.get(body.get("class_type", ""))
        if spec is not None and override.input_name not in spec.inputs:
            names = ", ".join(name for name, s in spec.inputs.items() if s.section != "hidden")
            raise OverrideError(
                f"--set {override.node_id}.{override.input_name}: node {override.node_id} "
                f"({spec.class_type}) has no input {override.input_name!r} (inputs: {names})"
            )
        body["inputs"][override.input_name] = override.value
    return patched


def _natural(node_id: str) -> tuple[int, str]:
    return (int(node_id), "") if node_id.isdigit() else (1 << 62, node_id)
