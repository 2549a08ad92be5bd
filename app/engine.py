"""Assemble the engine (registry, cache, executor) from the configuration."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from app.config import AppConfig
from graph.cache import LRUOutputCache, NullOutputCache, OutputCache
from graph.context import InterruptFlag
from graph.events import EventSink
from graph.executor import Executor
from graph.registry import LoadReport, NodeRegistry
from nodes import register_builtin_nodes
from nodes.folders import FOLDERS_SERVICE
from nodes.model_files import MODEL_FOLDERS_SERVICE

if TYPE_CHECKING:
    from models.memory import ModelManager


@dataclass
class Engine:
    """The registry and the executor that runs prompts against it."""

    registry: NodeRegistry
    executor: Executor
    load_report: LoadReport
    config: AppConfig
    models: ModelManager

    def free(self, unload_models: bool, free_memory: bool) -> None:
        """ComfyUI's ``/free``: ``free_memory`` drops cached node outputs and moves idle models off the device;
        ``unload_models`` also unloads idle models entirely. Models in use are kept.

        Call it only from the thread that runs prompts: the output cache is not shared across threads.
        """
        if free_memory or unload_models:
            self.executor.cache.clear()
            self.models.free(unload_all=unload_models)


def build_cache(config: AppConfig) -> OutputCache:
    if config.cache.disabled:
        return NullOutputCache()
    return LRUOutputCache(config.cache.max_bytes, config.cache.min_free_bytes)


def build_engine(config: AppConfig, sink: EventSink | None = None, interrupt: InterruptFlag | None = None) -> Engine:
    """Register the built-in nodes and create an executor whose nodes see the configured folders and models.

    The model manager (and with it torch) is imported here, not at module level, so the server's modules
    import without torch.
    """
    from models.devices import DeviceProbe
    from models.latent_preview import LATENT_PREVIEWS_SERVICE, LatentPreviews
    from models.memory import MODELS_SERVICE, ModelManager

    registry = NodeRegistry()
    report = register_builtin_nodes(registry, config.folders, config.model_folders)
    for folder in (config.folders.output_dir, config.folders.input_dir, config.folders.temp_dir):
        folder.mkdir(parents=True, exist_ok=True)
    models = ModelManager(config.memory, DeviceProbe())
    executor = Executor(
        registry,
        build_cache(config),
        sink,
        services={
            FOLDERS_SERVICE: config.folders,
            MODELS_SERVICE: models,
            MODEL_FOLDERS_SERVICE: config.model_folders,
            LATENT_PREVIEWS_SERVICE: LatentPreviews(),
        },
        interrupt=interrupt,
        cache_all_outputs=config.cache.cache_all_outputs,
    )
    return Engine(registry=registry, executor=executor, load_report=report, config=config, models=models)
