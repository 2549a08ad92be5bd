"""Fixtures shared across the test tree."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny random-weight stand-ins of the released models, written once per session (as make-tiny-models)."""
    from models.tiny import write_tiny_models  # torch loads only for the tests that ask for models

    models_dir = tmp_path_factory.mktemp("weights")
    write_tiny_models(models_dir)
    return models_dir
