"""Built-in nodes, one module per category; each exports ``NODE_CLASS_MAPPINGS`` like a custom node pack."""

from __future__ import annotations

import importlib
from typing import Any

from graph.registry import LoadReport, NodeRegistry
from models.folders import ModelFolders
from nodes.folders import FolderBound, Folders
from nodes.model_files import ModelFolderBound

BUILTIN_MODULES = (
    "nodes.primitives",
    "nodes.image",
    "nodes.io",
    "nodes.frames",
    "nodes.frame_color",
    "nodes.interpolation",
    "nodes.video",
    "nodes.video_save",
    "nodes.audio",
    "nodes.memory",
    "nodes.loaders",
    "nodes.lora",
    "nodes.pipeline_loaders",
    "nodes.conditioning",
    "nodes.latent",
    "nodes.wan",
    "nodes.ltxv",
    "nodes.ltxv_sampling",
    "nodes.hunyuan",
    "nodes.cogvideox",
    "nodes.skyreels",
    "nodes.animatediff",
    "nodes.svd",
    "nodes.sampling",
    "nodes.sampling_parts",
    "nodes.free_init",
    "nodes.vae",
    "nodes.upscale",
    "nodes.control_preprocess",
    "nodes.camera",
    "nodes.tracks",
    "nodes.wan_tracks",
    "nodes.wan_camera",
    "nodes.depth",
    "nodes.controlnet",
    "nodes.accelerate",
    "nodes.quantize",
)


def register_builtin_nodes(
    registry: NodeRegistry, folders: Folders | None = None, model_folders: ModelFolders | None = None
) -> LoadReport:
    """Register every built-in node class; failures are collected in the report, not raised.

    Nodes that list input files are bound to ``folders``, loaders to ``model_folders`` (left unbound, their file
    choices are empty).
    """
    report = LoadReport()
    for module_name in BUILTIN_MODULES:
        module = importlib.import_module(module_name)
        mappings = {
            name: _bound(node_class, folders, model_folders) for name, node_class in module.NODE_CLASS_MAPPINGS.items()
        }
        part = registry.register_mappings(
            mappings, getattr(module, "NODE_DISPLAY_NAME_MAPPINGS", None), python_module=module_name
        )
        report.registered.extend(part.registered)
        report.failures.update(part.failures)
    return report


def _bound(node_class: Any, folders: Folders | None, model_folders: ModelFolders | None) -> Any:
    """``node_class`` bound to the folders its choices list, if it lists any."""
    if not isinstance(node_class, type):
        return node_class
    if folders is not None and issubclass(node_class, FolderBound):
        node_class = node_class.bound_to(folders)
    if model_folders is not None and issubclass(node_class, ModelFolderBound):
        node_class = node_class.bound_to_models(model_folders)
    return node_class
