"""Fixtures of the upscale model tests: the tiny upscale models (written once per session) and a CPU manager."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.tiny.upscale import UPSCALE_FOLDER, write_tiny_upscale_models


@pytest.fixture(scope="session")
def upscale_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models folder holding only the tiny upscale models (``upscale_models/``)."""
    models_dir = tmp_path_factory.mktemp("upscale_weights")
    write_tiny_upscale_models(models_dir)
    return models_dir


@pytest.fixture(scope="session")
def upscale_folder(upscale_models_dir: Path) -> Path:
    return upscale_models_dir / UPSCALE_FOLDER
