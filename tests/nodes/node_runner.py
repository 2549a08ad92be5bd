"""Call one node the way the executor does: bound to the test's folders, inside a context that records progress."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from graph.context import InterruptFlag, NodeContext, node_context
from graph.spec import NodeSpec
from nodes.folders import FOLDERS_SERVICE, FolderBound, Folders

PROMPT = {"1": {"class_type": "LoadVideo", "inputs": {"file": "clip.mp4"}}}
WORKFLOW = {"last_node_id": 1, "nodes": [{"id": 1, "type": "LoadVideo"}], "links": [], "version": 0.4}


@dataclass
class NodeRunner:
    """Runs node functions with ``folders`` as the run's folders service (plus ``services``); ``progress`` collects
    (value, max), ``previews`` the preview each progress report carried (or None)."""

    folders: Folders
    interrupt: InterruptFlag = field(default_factory=InterruptFlag)
    progress: list[tuple[float, float]] = field(default_factory=list)
    previews: list[Any] = field(default_factory=list)
    services: dict[str, Any] = field(default_factory=dict)

    def bind(self, node_class: type) -> type:
        """The class as the registry holds it (loaders bound to the folders), checked like at registration."""
        bound = node_class.bound_to(self.folders) if issubclass(node_class, FolderBound) else node_class
        NodeSpec.from_class(node_class.__name__, bound)
        return bound

    def call(self, node_class: type, **inputs: Any) -> Any:
        """The node function's raw return value."""
        bound = self.bind(node_class)
        context = NodeContext(
            node_id="1",
            display_node_id="1",
            class_type=node_class.__name__,
            prompt_id="test",
            interrupt=self.interrupt,
            services={FOLDERS_SERVICE: self.folders, **self.services},
            on_progress=self._record_progress,
        )
        with node_context(context):
            return getattr(bound(), bound.FUNCTION)(**inputs)

    def _record_progress(self, _node: str, value: float, max_value: float, preview: Any) -> None:
        self.progress.append((value, max_value))
        self.previews.append(preview)

    def result(self, node_class: type, **inputs: Any) -> tuple[Any, ...]:
        """The node's outputs, whether it returned a tuple or ``{"ui": ..., "result": ...}``."""
        returned = self.call(node_class, **inputs)
        return tuple(returned["result"]) if isinstance(returned, dict) else returned

    def save(self, node_class: type, **inputs: Any) -> dict[str, Any]:
        """Run an output node with the test prompt and workflow as its hidden inputs; returns its ``ui`` dict."""
        result = self.call(node_class, prompt=PROMPT, extra_pnginfo={"workflow": WORKFLOW}, **inputs)
        return result["ui"]
