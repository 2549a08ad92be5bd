"""The server so far: the editor page and the node catalogue, on a real aiohttp server over loopback."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from app.config import AppConfig
from app.engine import build_engine
from server.app import create_app


def fetch(tmp_path: Path, *paths: str) -> list[tuple[int, Any]]:
    config = AppConfig.from_dirs(tmp_path / "out", tmp_path / "in", tmp_path / "temp")

    async def go() -> list[tuple[int, Any]]:
        async with TestClient(TestServer(create_app(build_engine(config)), host="127.0.0.1")) as client:
            results = []
            for path in paths:
                response = await client.get(path)
                is_json = response.content_type == "application/json"
                results.append((response.status, await (response.json() if is_json else response.text())))
            return results

    return asyncio.run(go())


def test_object_info_lists_built_in_nodes_under_both_prefixes(tmp_path: Path) -> None:
    (status, info), (api_status, api_info) = fetch(tmp_path, "/object_info", "/api/object_info")
    assert status == api_status == 200 and info == api_info
    crop = info["ImageCrop"]
    assert crop["input"]["required"]["width"][0] == "INT"
    assert crop["input"]["required"]["width"][1]["max"] == 16384
    assert crop["input_order"]["required"] == ["image", "width", "height", "x", "y"]
    assert crop["output"] == ["IMAGE"] and crop["output_node"] is False
    assert info["SaveImage"]["output_node"] is True


def test_object_info_for_one_class_and_unknown_class(tmp_path: Path) -> None:
    (status, one), (_, unknown) = fetch(tmp_path, "/object_info/ImageBlend", "/api/object_info/NoSuchNode")
    assert status == 200 and list(one) == ["ImageBlend"]
    assert one["ImageBlend"]["input"]["required"]["blend_mode"][0][-1] == "difference"
    assert unknown == {}


def test_index_page_is_served(tmp_path: Path) -> None:
    ((status, page),) = fetch(tmp_path, "/")
    assert status == 200 and "<title>Reelgraph</title>" in page
