"""Typed keys for the state the application holds (no singletons)."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from app.engine import Engine
from server.config import ServerConfig
from server.runtime import ServerRuntime

ENGINE = web.AppKey("engine", Engine)
WEB_ROOT = web.AppKey("web_root", Path)
SERVER_CONFIG = web.AppKey("server_config", ServerConfig)
RUNTIME = web.AppKey("runtime", ServerRuntime)
