"""The tiny HunyuanVideo files, written once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.tiny.hunyuan import write_tiny_hunyuan_files


@pytest.fixture(scope="session")
def hunyuan_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models folder holding the tiny HunyuanVideo release files."""
    models_dir = tmp_path_factory.mktemp("hunyuan")
    write_tiny_hunyuan_files(models_dir)
    return models_dir
