"""Typed events the executor emits; ``message()`` gives ComfyUI's WebSocket ``(type, data)`` form."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class ExecutionStart:
    prompt_id: str
    timestamp: int = field(default_factory=_now_ms)
    TYPE = "execution_start"

    def message(self) -> dict[str, Any]:
        return {"prompt_id": self.prompt_id, "timestamp": self.timestamp}


@dataclass(frozen=True)
class ExecutionCached:
    prompt_id: str
    nodes: list[str]
    timestamp: int = field(default_factory=_now_ms)
    TYPE = "execution_cached"

    def message(self) -> dict[str, Any]:
        return {"nodes": list(self.nodes), "prompt_id": self.prompt_id, "timestamp": self.timestamp}


@dataclass(frozen=True)
class Executing:
    """A node starts. ``node_id`` None means the prompt is done: the host sends that one after recording the run."""

    prompt_id: str
    node_id: str | None
    display_node_id: str | None
    TYPE = "executing"

    def message(self) -> dict[str, Any]:
        return {"node": self.node_id, "display_node": self.display_node_id, "prompt_id": self.prompt_id}


@dataclass(frozen=True)
class Progress:
    prompt_id: str
    node_id: str
    value: float
    max: float
    preview: Any = None
    TYPE = "progress"

    def message(self) -> dict[str, Any]:
        return {"value": self.value, "max": self.max, "prompt_id": self.prompt_id, "node": self.node_id}


@dataclass(frozen=True)
class Executed:
    """A node produced UI output (images written, text to show); also sent for cached output nodes."""

    prompt_id: str
    node_id: str
    display_node_id: str
    output: dict[str, Any]
    cached: bool = False
    TYPE = "executed"

    def message(self) -> dict[str, Any]:
        return {
            "node": self.node_id,
            "display_node": self.display_node_id,
            "output": self.output,
            "prompt_id": self.prompt_id,
        }


@dataclass(frozen=True)
class NodeFinished:
    """Internal bookkeeping event (not a ComfyUI message): a node finished, with its wall time."""

    prompt_id: str
    node_id: str
    class_type: str
    seconds: float
    cached: bool
    TYPE = "node_finished"

    def message(self) -> dict[str, Any]:
        return {"node": self.node_id, "class_type": self.class_type, "seconds": self.seconds, "cached": self.cached}


@dataclass(frozen=True)
class ExecutionSuccess:
    prompt_id: str
    timestamp: int = field(default_factory=_now_ms)
    TYPE = "execution_success"

    def message(self) -> dict[str, Any]:
        return {"prompt_id": self.prompt_id, "timestamp": self.timestamp}


@dataclass(frozen=True)
class ExecutionFailed:
    """A node raised; the run stops and the engine stays usable."""

    prompt_id: str
    node_id: str
    node_type: str
    executed: list[str]
    exception_message: str
    exception_type: str
    traceback: list[str]
    current_inputs: dict[str, Any]
    current_outputs: dict[str, Any]
    timestamp: int = field(default_factory=_now_ms)
    TYPE = "execution_error"

    def message(self) -> dict[str, Any]:
        return {
            "prompt_id": self.prompt_id,
            "node_id": self.node_id,
            "node_type": self.node_type,
            "executed": list(self.executed),
            "exception_message": self.exception_message,
            "exception_type": self.exception_type,
            "traceback": list(self.traceback),
            "current_inputs": self.current_inputs,
            "current_outputs": self.current_outputs,
            "timestamp": self.timestamp,
        }


@dataclass(frozen=True)
class ExecutionInterrupted:
    prompt_id: str
    node_id: str | None
    node_type: str | None
    executed: list[str]
    timestamp: int = field(default_factory=_now_ms)
    TYPE = "execution_interrupted"

    def message(self) -> dict[str, Any]:
        return {
            "prompt_id": self.prompt_id,
            "node_id": self.node_id,
            "node_type": self.node_type,
            "executed": list(self.executed),
            "timestamp": self.timestamp,
        }


Event = (
    ExecutionStart
    | ExecutionCached
    | Executing
    | Progress
    | Executed
    | NodeFinished
    | ExecutionSuccess
    | ExecutionFailed
    | ExecutionInterrupted
)


class EventSink(Protocol):
    """Receives the executor's events (the server forwards them to WebSockets, the CLI to a progress bar)."""

    def emit(self, event: Event) -> None: ...


class CollectingSink:
    """Keeps every event in a list (tests, history)."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def emit(self, event: Event) -> None:
        self.events.append(event)

    def of_type(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]
