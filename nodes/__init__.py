"""Built-in nodes, one module per category; each exports ``NODE_CLASS_MAPPINGS`` like a custom node pack."""

from __future__ import annotations

import importlib

from graph.registry import LoadReport, NodeRegistry

BUILTIN_MODULES = ("nodes.primitives", "nodes.image", "nodes.io", "nodes.frames", "nodes.frame_color")


def register_builtin_nodes(registry: NodeRegistry) -> LoadReport:
    """Register every built-in node class; failures are collected in the report, not raised."""
    report = LoadReport()
    for module_name in BUILTIN_MODULES:
        module = importlib.import_module(module_name)
        part = registry.register_mappings(
            module.NODE_CLASS_MAPPINGS, getattr(module, "NODE_DISPLAY_NAME_MAPPINGS", None), python_module=module_name
        )
        report.registered.extend(part.registered)
        report.failures.update(part.failures)
    return report
