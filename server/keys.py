"""Typed keys for the state the application holds (no singletons)."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from app.engine import Engine
from models.folders import ModelFolders
from server.config import ServerConfig
from server.downloads import ModelDownloadService
from server.runtime import ServerRuntime
from server.system_info import SystemInfo

ENGINE = web.AppKey("engine", Engine)
WEB_ROOT = web.AppKey("web_root", Path)
LIBRARY_ROOT = web.AppKey("library_root", Path)
TEMPLATES_ROOT = web.AppKey("templates_root", Path)
SERVER_CONFIG = web.AppKey("server_config", ServerConfig)
RUNTIME = web.AppKey("runtime", ServerRuntime)
MODEL_FOLDERS = web.AppKey("model_folders", ModelFolders)
SYSTEM_INFO = web.AppKey("system_info", SystemInfo)
DOWNLOADS = web.AppKey("model_downloads", ModelDownloadService)
