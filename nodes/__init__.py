"""Built-in nodes, one module per category; each exports ``NODE_CLASS_MAPPINGS`` like a custom node pack."""

from __future__ import annotations

import importlib

from graph.registry import LoadReport, NodeRegistry
from nodes.folders import FolderBound, Folders

BUILTIN_MODULES = (
    "nodes.primitives",
    "nodes.image",
    "nodes.io",
    "nodes.frames",
    "nodes.frame_color",
    "nodes.video",
    "nodes.video_save",
    "nodes.audio",
    "nodes.memory",
)


def register_builtin_nodes(registry: NodeRegistry, folders: Folders | None = None) -> LoadReport:
    """Register every built-in node class; failures are collected in the report, not raised.

    Nodes that list input files are bound to ``folders`` (left unbound, their file choices are empty).
    """
    report = LoadReport()
    for module_name in BUILTIN_MODULES:
        module = importlib.import_module(module_name)
        mappings = {
            name: node_class.bound_to(folders)
            if folders is not None and isinstance(node_class, type) and issubclass(node_class, FolderBound)
            else node_class
            for name, node_class in module.NODE_CLASS_MAPPINGS.items()
        }
        part = registry.register_mappings(
            mappings, getattr(module, "NODE_DISPLAY_NAME_MAPPINGS", None), python_module=module_name
        )
        report.registered.extend(part.registered)
        report.failures.update(part.failures)
    return report
