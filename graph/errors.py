"""Typed errors raised by the graph layer."""

from __future__ import annotations

from typing import Any


class GraphError(Exception):
    """Base class of every error the graph layer raises."""


class NodeDefinitionError(GraphError):
    """A node class declares its interface wrongly (bad INPUT_TYPES, missing FUNCTION, ...)."""

    def __init__(self, class_type: str, reason: str) -> None:
        super().__init__(f"node class {class_type!r}: {reason}")
        self.class_type = class_type
        self.reason = reason


class DuplicateNodeError(GraphError):
    """A class name is registered twice without an explicit override."""


class WorkflowFormatError(GraphError):
    """A workflow file or body is not a readable API- or UI-format workflow."""


class ExecutionInterrupted(GraphError):
    """Raised inside a run when the user interrupts it."""


class NodeExecutionError(GraphError):
    """A node failed while running; carries what the error event reports."""

    def __init__(
        self, node_id: str, class_type: str, cause: BaseException, inputs: dict[str, list[Any]] | None = None
    ) -> None:
        super().__init__(f"node {node_id} ({class_type}): {type(cause).__name__}: {cause}")
        self.node_id = node_id
        self.class_type = class_type
        self.cause = cause
        self.inputs = inputs or {}


class BlockedOutputError(GraphError):
    """An output node was fed an ``ExecutionBlocker`` that carries a message."""


class DependencyCycleError(GraphError):
    """Nodes wait on each other at run time (a cycle created by node expansion)."""
