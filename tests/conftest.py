"""Fixtures shared across the test tree: the tiny model stand-ins, a CPU model manager, and a node runner whose
runs have both (a folder or module may override them; svd writes only its own file)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from models.memory import ModelManager
    from tests.nodes.node_runner import NodeRunner


@pytest.fixture(scope="session")
def tiny_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny random-weight stand-ins of the released models, written once per session (as make-tiny-models)."""
    from models.tiny import write_tiny_models  # torch loads only for the tests that ask for models

    models_dir = tmp_path_factory.mktemp("weights")
    write_tiny_models(models_dir)
    return models_dir


@pytest.fixture
def manager() -> Iterator[ModelManager]:
    """A model manager on the CPU, freed after the test."""
    from models.devices import DeviceProbe
    from models.memory import MemoryConfig, ModelManager

    manager = ModelManager(MemoryConfig(mode="cpu"), DeviceProbe())
    yield manager
    manager.free()


@pytest.fixture
def runner(tmp_path: Path, tiny_models_dir: Path, manager: ModelManager) -> NodeRunner:
    """A node runner whose runs have ``manager`` and the tiny models."""
    from models.folders import ModelFolders
    from models.memory import MODELS_SERVICE
    from nodes.folders import Folders
    from nodes.model_files import MODEL_FOLDERS_SERVICE
    from tests.nodes.node_runner import NodeRunner

    services = {MODELS_SERVICE: manager, MODEL_FOLDERS_SERVICE: ModelFolders(tiny_models_dir)}
    return NodeRunner(Folders.under(tmp_path), services=services)
