"""Fixtures that start the real application on a free loopback port, with its folders and database under tmp_path."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from app.config import AppConfig
from app.engine import Engine, build_engine
from server.app import create_app
from server.config import ServerConfig
from tests.server import slow_nodes

ClientFactory = Callable[..., Awaitable[TestClient]]


@pytest.fixture
def app_config(tmp_path: Path) -> AppConfig:
    return AppConfig.from_dirs(
        tmp_path / "output", tmp_path / "input", tmp_path / "temp", models_dir=tmp_path / "models"
    )


@pytest.fixture
def server_config(tmp_path: Path) -> ServerConfig:
    return ServerConfig(data_dir=tmp_path / "data")


@pytest.fixture
def engine(app_config: AppConfig) -> Engine:
    """The built-in nodes plus the slow and failing test nodes."""
    engine = build_engine(app_config)
    slow_nodes.register(engine.registry)
    return engine


@pytest.fixture
def make_client(aiohttp_client: Any, engine: Engine, server_config: ServerConfig) -> ClientFactory:
    """``await make_client(**config_changes)``: a client of a fresh server; the changes edit ``ServerConfig``."""

    async def make(**changes: Any) -> TestClient:
        config = ServerConfig(**{**server_config.__dict__, **changes})
        return await aiohttp_client(create_app(engine, config))

    return make


@pytest.fixture
async def client(make_client: ClientFactory) -> TestClient:
    return await make_client()
