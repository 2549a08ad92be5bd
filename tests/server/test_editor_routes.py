"""The editor's static files: the canvas library from node_modules and the shipped workflow templates."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from app.config import REPO_ROOT
from app.engine import Engine
from server.app import create_app
from server.config import ServerConfig


def _put(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


async def test_library_files_are_served_from_the_library_root(
    aiohttp_client: Any, engine: Engine, server_config: ServerConfig, tmp_path: Path
) -> None:
    library = tmp_path / "dist"
    _put(library / "litegraph.es.js", b"export const LiteGraph = {};")
    _put(library / "css" / "litegraph.css", b".litegraph {}")
    _put(tmp_path / "secret.txt", b"no")
    client = await aiohttp_client(create_app(engine, server_config, library_root=library))
    response = await client.get("/lib/litegraph/litegraph.es.js")
    assert response.status == 200 and "javascript" in response.content_type
    assert (await client.get("/lib/litegraph/css/litegraph.css")).status == 200
    for escape in ("/lib/litegraph/..%2Fsecret.txt", "/lib/litegraph/%2E%2E/secret.txt", "/lib/litegraph/nothing.js"):
        response = await client.get(escape)
        assert response.status == 404, escape
        assert (await response.json())["error"]["type"] == "not_found"


async def test_a_missing_library_names_the_setup_command(
    aiohttp_client: Any, engine: Engine, server_config: ServerConfig, tmp_path: Path
) -> None:
    client = await aiohttp_client(create_app(engine, server_config, library_root=tmp_path / "absent"))
    response = await client.get("/lib/litegraph/litegraph.es.js")
    assert response.status == 500
    error = (await response.json())["error"]
    assert error["type"] == "editor_not_installed" and "start.sh" in error["message"]


async def test_the_index_page_loads_the_library_at_its_url(client: TestClient) -> None:
    page = await (await client.get("/")).text()
    assert "/lib/litegraph/litegraph.es.js" in page or "js/app.js" in page


async def test_templates_list_the_shipped_workflows(client: TestClient) -> None:
    names = (await (await client.get("/reelgraph/templates")).json())["templates"]
    assert "blend_scale_ui.json" in names and "invert_crop_api.json" in names and names == sorted(names)
    assert (await (await client.get("/api/reelgraph/templates")).json())["templates"] == names


async def test_a_template_comes_in_the_editor_format(client: TestClient) -> None:
    ui = await (await client.get("/reelgraph/templates/blend_scale_ui.json")).json()
    assert ui == json.loads((REPO_ROOT / "workflows" / "blend_scale_ui.json").read_text())
    laid_out = await (await client.get("/reelgraph/templates/invert_crop_api.json")).json()
    assert laid_out["nodes"] and all("widgets_values" in node or not node["inputs"] for node in laid_out["nodes"])


async def test_template_names_cannot_escape(
    aiohttp_client: Any, engine: Engine, server_config: ServerConfig, tmp_path: Path
) -> None:
    templates = tmp_path / "workflows"
    _put(templates / "ok.json", b"{}")
    _put(tmp_path / "secret.json", b"{}")
    client = await aiohttp_client(create_app(engine, server_config, templates_root=templates))
    for name in ("..%2Fsecret.json", "missing.json", "ok.txt", "%2E%2E"):
        response = await client.get(f"/reelgraph/templates/{name}")
        assert response.status == 404, name
    broken = await client.get("/reelgraph/templates/ok.json")
    assert broken.status == 500 and "ok.json" in (await broken.json())["error"]["message"]
