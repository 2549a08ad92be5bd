"""The node registry: an object built at start-up (built-ins, then packs) and passed to whoever needs it."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from graph.errors import DuplicateNodeError, NodeDefinitionError
from graph.spec import NodeSpec

logger = logging.getLogger(__name__)


@dataclass
class LoadReport:
    """What happened while registering a batch of node classes: failures are collected, not raised."""

    registered: list[str] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)


class NodeRegistry:
    """Maps class names to checked ``NodeSpec``s and produces ``object_info``."""

    def __init__(self) -> None:
        self._specs: dict[str, NodeSpec] = {}

    def register(
        self,
        class_type: str,
        node_class: type,
        *,
        display_name: str | None = None,
        python_module: str | None = None,
        override: bool = False,
    ) -> NodeSpec:
        """Check and add one node class; raises ``NodeDefinitionError`` or ``DuplicateNodeError``."""
        if class_type in self._specs and not override:
            existing = self._specs[class_type].python_module
            raise DuplicateNodeError(f"node class {class_type!r} is already registered by {existing!r}")
        spec = NodeSpec.from_class(class_type, node_class, display_name=display_name, python_module=python_module)
        self._specs[class_type] = spec
        return spec

    def register_mappings(
        self,
        class_mappings: Mapping[str, type],
        display_names: Mapping[str, str] | None = None,
        *,
        python_module: str | None = None,
        override: bool = False,
    ) -> LoadReport:
        """Register a pack's ``NODE_CLASS_MAPPINGS``; each bad class is reported and skipped."""
        report = LoadReport()
        names = display_names or {}
        for class_type, node_class in class_mappings.items():
            try:
                self.register(
                    class_type,
                    node_class,
                    display_name=names.get(class_type),
                    python_module=python_module,
                    override=override,
                )
            except (NodeDefinitionError, DuplicateNodeError) as exc:
                report.failures[class_type] = str(exc)
                logger.warning("skipped node %s: %s", class_type, exc)
            else:
                report.registered.append(class_type)
        return report

    def get(self, class_type: str) -> NodeSpec | None:
        return self._specs.get(class_type)

    def __contains__(self, class_type: object) -> bool:
        return class_type in self._specs

    def __iter__(self) -> Iterator[str]:
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)

    def object_info(self, class_type: str | None = None) -> dict[str, Any]:
        """``GET /object_info`` (every node) or ``/object_info/{class}``, with combo choices read fresh."""
        selected = [class_type] if class_type is not None else list(self._specs)
        info: dict[str, Any] = {}
        for name in selected:
            spec = self._specs.get(name)
            if spec is None:
                continue
            try:
                inputs, order = spec.refreshed_inputs()
            except NodeDefinitionError as exc:
                logger.warning("object_info: %s", exc)
                continue
            info[name] = dataclasses.replace(spec, inputs=inputs, input_order=order).object_info()
        return info
