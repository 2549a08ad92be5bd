"""A node runner with the tiny SVD checkpoint alone (written once per session), so these tests run on their own; the
manager is tests/nodes/conftest.py's."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.folders import ModelFolders
from models.memory import MODELS_SERVICE, ModelManager
from models.tiny.svd import write_tiny_svd_files
from nodes.folders import Folders
from nodes.model_files import MODEL_FOLDERS_SERVICE
from tests.nodes.node_runner import NodeRunner


@pytest.fixture(scope="session")
def svd_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    models_dir = tmp_path_factory.mktemp("svd_weights")
    write_tiny_svd_files(models_dir)
    return models_dir


@pytest.fixture
def runner(tmp_path: Path, svd_models_dir: Path, manager: ModelManager) -> NodeRunner:
    services = {MODELS_SERVICE: manager, MODEL_FOLDERS_SERVICE: ModelFolders(svd_models_dir)}
    return NodeRunner(Folders.under(tmp_path), services=services)
