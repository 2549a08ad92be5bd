"""Fixtures of the model-node tests (tests/nodes/<family>/): a model manager, and a node runner whose run has it and
the tiny models (``tiny_models_dir``, tests/conftest.py); a folder may override them (svd writes only its own file)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from models.devices import DeviceProbe
from models.folders import ModelFolders
from models.memory import MODELS_SERVICE, MemoryConfig, ModelManager
from nodes.folders import Folders
from nodes.model_files import MODEL_FOLDERS_SERVICE
from tests.nodes.node_runner import NodeRunner


@pytest.fixture
def manager() -> Iterator[ModelManager]:
    manager = ModelManager(MemoryConfig(mode="cpu"), DeviceProbe())
    yield manager
    manager.free()


@pytest.fixture
def runner(tmp_path: Path, tiny_models_dir: Path, manager: ModelManager) -> NodeRunner:
    services = {MODELS_SERVICE: manager, MODEL_FOLDERS_SERVICE: ModelFolders(tiny_models_dir)}
    return NodeRunner(Folders.under(tmp_path), services=services)
