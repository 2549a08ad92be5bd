"""Fixtures of the shipped-workflow tests: the built-in node registry over the repo's input folder and the tiny
models (one per test module)."""

from __future__ import annotations

from pathlib import Path

import pytest

from graph.registry import NodeRegistry
from tests.workflows.shipped import builtin_registry


@pytest.fixture(scope="module")
def registry(tiny_models_dir: Path) -> NodeRegistry:
    return builtin_registry(tiny_models_dir)
