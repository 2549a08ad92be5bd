"""Typed configuration, parsed once in ``main.py`` and passed down."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import psutil

from models.folders import ModelFolders
from models.memory_types import MemoryConfig
from nodes.folders import Folders

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_EXTRA_MODEL_PATHS = REPO_ROOT / "extra_model_paths.yaml"
GIB = 1024**3


@dataclass(frozen=True)
class CacheConfig:
    """Output cache limits: a byte budget, the free RAM to keep, or no cache at all."""

    max_bytes: int | None
    min_free_bytes: int
    disabled: bool = False
    cache_all_outputs: bool = False

    @classmethod
    def default(cls, ram_budget_gb: float | None = None) -> CacheConfig:
        """A quarter of the machine's RAM for cached outputs unless told otherwise; evict when under 10% is free."""
        total = int(psutil.virtual_memory().total)
        budget = int(ram_budget_gb * GIB) if ram_budget_gb is not None else total // 4
        return cls(max_bytes=budget, min_free_bytes=total // 10)


@dataclass(frozen=True)
class AppConfig:
    """Everything the engine needs from the command line."""

    folders: Folders
    cache: CacheConfig
    models_dir: Path
    model_folders: ModelFolders
    memory: MemoryConfig

    @classmethod
    def from_dirs(
        cls,
        output_dir: Path | None = None,
        input_dir: Path | None = None,
        temp_dir: Path | None = None,
        cache: CacheConfig | None = None,
        models_dir: Path | None = None,
        extra_model_paths_file: Path | None = None,
        default_extra_model_paths: Path | None = None,
        memory: MemoryConfig | None = None,
    ) -> AppConfig:
        """Resolve the folders; the model folders add ``extra_model_paths_file`` (or, when None,
        ``default_extra_model_paths`` if it exists). Raises ``ExtraPathsError`` for a bad file."""
        defaults = Folders.under(REPO_ROOT)
        folders = Folders(
            output_dir=(output_dir or defaults.output_dir).resolve(),
            input_dir=(input_dir or defaults.input_dir).resolve(),
            temp_dir=(temp_dir or defaults.temp_dir).resolve(),
        )
        models_dir = (models_dir or REPO_ROOT / "weights").resolve()
        return cls(
            folders=folders,
            cache=cache or CacheConfig.default(),
            models_dir=models_dir,
            model_folders=ModelFolders.from_config(models_dir, extra_model_paths_file, default_extra_model_paths),
            memory=memory or MemoryConfig(),
        )
