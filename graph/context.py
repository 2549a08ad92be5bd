"""What a running node can reach: progress reporting, interrupt checks, and the run's services.

The executor sets a ``NodeContext`` around every node call (``contextvars``, so concurrent async nodes each see
their own). Nodes call ``current_context()``; ComfyUI-style helpers (``ProgressBar``) are thin facades over it.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from graph.errors import ExecutionInterrupted

ProgressListener = Callable[[str, float, float, Any], None]
"""Called as ``listener(node_id, value, max, preview)``; ``preview`` is an opaque image object or None."""


class InterruptFlag:
    """A thread-safe flag the server (or Ctrl-C) sets and the running prompt checks cooperatively."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    def clear(self) -> None:
        self._event.clear()

    def is_set(self) -> bool:
        return self._event.is_set()


@dataclass
class NodeContext:
    """The per-node view of a run: which node is running and the run's services."""

    node_id: str
    display_node_id: str
    class_type: str
    prompt_id: str
    interrupt: InterruptFlag
    services: Mapping[str, Any] = field(default_factory=dict)
    on_progress: ProgressListener | None = None
    expansion_prefix: str = ""
    _expansion_counter: int = 0

    def check_interrupt(self) -> None:
        """Raise ``ExecutionInterrupted`` if the user asked to stop; long loops call this often."""
        if self.interrupt.is_set():
            raise ExecutionInterrupted(f"interrupted while running node {self.node_id}")

    def report_progress(self, value: float, max_value: float, preview: Any = None) -> None:
        """Tell the listener how far this node is; also a cooperative interrupt point."""
        self.check_interrupt()
        if self.on_progress is not None:
            self.on_progress(self.node_id, value, max_value, preview)

    def service(self, name: str) -> Any:
        """A service the host registered for nodes (paths, model manager, ...); KeyError names what is missing."""
        try:
            return self.services[name]
        except KeyError:
            raise KeyError(
                f"node {self.node_id} ({self.class_type}) needs service {name!r}, which this host does not provide"
            ) from None

    def next_expansion_prefix(self) -> str:
        """A unique, deterministic node-id prefix for a subgraph this node expands into."""
        self._expansion_counter += 1
        return f"{self.expansion_prefix}{self._expansion_counter}."


_current: contextvars.ContextVar[NodeContext | None] = contextvars.ContextVar("reelgraph_node_context", default=None)


def current_context() -> NodeContext:
    """The context of the node that is running; raises outside a node call."""
    context = _current.get()
    if context is None:
        raise RuntimeError("no node is running: current_context() is only valid inside a node's function")
    return context


def optional_context() -> NodeContext | None:
    """The running node's context, or None outside a run (helpers that also work standalone use this)."""
    return _current.get()


@contextmanager
def node_context(context: NodeContext) -> Iterator[NodeContext]:
    """Make ``context`` current for the duration of a node call."""
    token = _current.set(context)
    try:
        yield context
    finally:
        _current.reset(token)


class ProgressBar:
    """ComfyUI-style progress helper: ``bar = ProgressBar(total); bar.update(1)``.

    ``node_id`` is accepted because packs pass it; progress always belongs to the node that is running.
    Outside a run the bar only counts.
    """

    def __init__(self, total: float, node_id: str | None = None) -> None:
        self.total = total
        self.current = 0.0
        self._context = optional_context()

    def update_absolute(self, value: float, total: float | None = None, preview: Any = None) -> None:
        if total is not None:
            self.total = total
        self.current = min(value, self.total) if self.total else value
        if self._context is not None:
            self._context.report_progress(self.current, self.total, preview)

    def update(self, value: float) -> None:
        self.update_absolute(self.current + value)
