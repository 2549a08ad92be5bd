"""Fixtures of the interpolation tests: the tiny RIFE and FILM files (written once per session) and a CPU model
manager."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from models.devices import DeviceProbe
from models.memory import MemoryConfig, ModelManager


@pytest.fixture(scope="session")
def tiny_interpolation_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models folder holding only the tiny frame-interpolation files (``models.tiny.interpolation``)."""
    from models.tiny.interpolation import write_tiny_interpolation_files

    models_dir = tmp_path_factory.mktemp("interpolation_weights")
    write_tiny_interpolation_files(models_dir)
    return models_dir


@pytest.fixture
def manager() -> Iterator[ModelManager]:
    manager = ModelManager(MemoryConfig(mode="cpu"), DeviceProbe())
    yield manager
    manager.free()
