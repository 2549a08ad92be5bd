"""ComfyUI's user data API (saved workflows, settings) on a loopback server, with real files under the data dir."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yarl
from aiohttp.test_utils import TestClient

from server.config import ServerConfig

ALICE = {"comfy-user": "alice"}


def user_dir(server_config: ServerConfig, user: str = "default") -> Path:
    return server_config.data_dir / "users" / user


async def save(client: TestClient, name: str, body: bytes, query: str = "", **kwargs: Any) -> Any:
    response = await client.post(yarl.URL(f"/userdata/{name}{query}", encoded=True), data=body, **kwargs)
    assert response.status == 200, await response.text()
    return await response.json()


async def error_of(response: Any, status: int) -> dict[str, Any]:
    assert response.status == status, await response.text()
    error = (await response.json())["error"]
    assert error["message"]
    return error


async def test_save_then_read_back_a_nested_file(client: TestClient, server_config: ServerConfig) -> None:
    assert await (await client.get("/users")).json() == {"storage": "server", "migrated": False}
    body = b'{"nodes": [], "links": []}'
    assert await save(client, "workflows%2Fsub%2Fa.json", body) == "workflows/sub/a.json"
    assert (user_dir(server_config) / "workflows" / "sub" / "a.json").read_bytes() == body
    response = await client.get(yarl.URL("/api/userdata/workflows%2Fsub%2Fa.json", encoded=True))
    assert response.status == 200 and await response.read() == body
    assert response.headers["Content-Disposition"] == "attachment"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.content_type == "application/json"
    assert await (await client.get("/api/users")).json() == {"storage": "server", "migrated": True}


async def test_markup_is_never_served_inline_but_user_css_is(client: TestClient) -> None:
    await save(client, "page.html", b"<script>alert(1)</script>")
    page = await client.get("/userdata/page.html")
    assert page.content_type == "application/octet-stream" and page.headers["Content-Disposition"] == "attachment"
    await save(client, "user.css", b"body {}")
    css = await client.get("/userdata/user.css")
    assert css.content_type == "text/css" and css.headers["Content-Disposition"] == "inline"


async def test_overwrite_false_refuses_an_existing_file(client: TestClient, server_config: ServerConfig) -> None:
    await save(client, "settings.json", b"one")
    response = await client.post("/userdata/settings.json?overwrite=false", data=b"two")
    assert (await error_of(response, 409))["type"] == "file_exists"
    assert (user_dir(server_config) / "settings.json").read_bytes() == b"one"
    await save(client, "settings.json", b"three", "?overwrite=true")
    await save(client, "settings.json", b"four")
    assert (user_dir(server_config) / "settings.json").read_bytes() == b"four"
    assert sorted(os.listdir(user_dir(server_config))) == ["settings.json"]  # no temporary files left behind


async def test_full_info_describes_the_saved_file(client: TestClient) -> None:
    info = await save(client, "workflows%2Fb.json", b"12345", "?full_info=true")
    assert info["path"] == "workflows/b.json" and info["size"] == 5
    assert isinstance(info["modified"], int) and isinstance(info["created"], int) and info["modified"] > 10**12


async def test_saving_over_a_folder_is_a_400(client: TestClient) -> None:
    await save(client, "workflows%2Fa.json", b"{}")
    response = await client.post("/userdata/workflows", data=b"{}")
    assert (await error_of(response, 400))["type"] == "invalid_filename"
    response = await client.post(yarl.URL("/userdata/workflows%2Fa.json%2Fc.json", encoded=True), data=b"{}")
    assert (await error_of(response, 400))["type"] == "invalid_filename"


async def test_listing_with_subfolders_recurse_split_and_full_info(client: TestClient) -> None:
    for name in ("workflows%2Fa.json", "workflows%2Fsub%2Fb.json", "workflows%2F.hidden.json", "other.json"):
        await save(client, name, b"{}")

    async def listing(query: str) -> Any:
        response = await client.get(f"/userdata?dir=workflows{query}")
        assert response.status == 200
        return await response.json()

    assert await listing("") == ["a.json"]
    assert await listing("&recurse=true") == ["a.json", "sub/b.json"]
    assert await listing("&recurse=true&split=true") == [["a.json", "a.json"], ["sub/b.json", "sub", "b.json"]]
    infos = await listing("&recurse=true&full_info=true")
    assert [info["path"] for info in infos] == ["a.json", "sub/b.json"] and infos[1]["size"] == 2
    assert await (await client.get("/api/userdata?dir=workflows%2Fsub")).json() == ["b.json"]


async def test_listing_errors(client: TestClient) -> None:
    assert (await error_of(await client.get("/userdata"), 400))["type"] == "missing_dir"
    assert (await error_of(await client.get("/userdata?dir=workflows"), 404))["type"] == "not_found"
    response = await client.get("/userdata?dir=..%2F..")
    assert (await error_of(response, 403))["type"] == "forbidden_path"


async def test_delete(client: TestClient, server_config: ServerConfig) -> None:
    await save(client, "workflows%2Fa.json", b"{}")
    response = await client.delete(yarl.URL("/userdata/workflows%2Fa.json", encoded=True))
    assert response.status == 204
    assert not (user_dir(server_config) / "workflows" / "a.json").exists()
    response = await client.delete(yarl.URL("/api/userdata/workflows%2Fa.json", encoded=True))
    assert (await error_of(response, 404))["type"] == "not_found"
    assert (await error_of(await client.delete("/userdata/workflows"), 400))["type"] == "invalid_filename"


async def test_move(client: TestClient, server_config: ServerConfig) -> None:
    await save(client, "workflows%2Fa.json", b"A")
    await save(client, "workflows%2Fc.json", b"C")
    moved = await save(client, "workflows%2Fa.json/move/archive%2F2024%2Fb.json", b"")
    assert moved == "archive/2024/b.json"
    root = user_dir(server_config)
    assert not (root / "workflows" / "a.json").exists()
    assert (root / "archive" / "2024" / "b.json").read_bytes() == b"A"
    info = await save(client, "archive%2F2024%2Fb.json/move/b.json", b"", "?full_info=true")
    assert info["path"] == "b.json" and info["size"] == 1

    response = await client.post("/userdata/b.json/move/workflows%2Fc.json?overwrite=false")
    assert (await error_of(response, 409))["type"] == "file_exists"
    assert (root / "b.json").exists() and (root / "workflows" / "c.json").read_bytes() == b"C"
    assert await save(client, "b.json/move/workflows%2Fc.json", b"") == "workflows/c.json"
    assert (root / "workflows" / "c.json").read_bytes() == b"A"

    response = await client.post("/userdata/missing.json/move/x.json")
    assert (await error_of(response, 404))["type"] == "not_found"
    response = await client.post(yarl.URL("/userdata/workflows%2Fc.json/move/%2e%2e%2fstolen.json", encoded=True))
    assert (await error_of(response, 403))["type"] == "forbidden_path"
    assert (root / "workflows" / "c.json").exists() and not (root.parent / "stolen.json").exists()


async def test_users_are_isolated_by_the_comfy_user_header(client: TestClient, server_config: ServerConfig) -> None:
    await save(client, "workflows%2Fmine.json", b"alice's", headers=ALICE)
    assert (user_dir(server_config, "alice") / "workflows" / "mine.json").read_bytes() == b"alice's"
    assert await (await client.get("/userdata?dir=workflows", headers=ALICE)).json() == ["mine.json"]
    assert (await client.get(yarl.URL("/userdata/workflows%2Fmine.json", encoded=True))).status == 404
    assert (await client.get("/userdata?dir=workflows")).status == 404
    assert await (await client.get("/users", headers=ALICE)).json() == {"storage": "server", "migrated": True}
    assert await (await client.get("/users")).json() == {"storage": "server", "migrated": False}


@pytest.mark.parametrize("user", ["..", "a/b", "a b", "", "é", "x" * 129])
async def test_malformed_user_names_are_refused(client: TestClient, user: str) -> None:
    response = await client.get("/userdata?dir=workflows", headers={"comfy-user": user})
    assert (await error_of(response, 400))["type"] == "invalid_user"


@pytest.mark.parametrize(
    "name",
    [
        "%2e%2e%2fsecret.txt",
        "..%2F..%2Fsecret.txt",
        "%2e%2e",
        "workflows%2F..%2F..%2Fdefault2%2Fx.json",
        "absolute",
        "link%2Fsecret.txt",
        "a%5C..%5C..%5Csecret.txt",
    ],
)
async def test_paths_leading_outside_the_user_folder_are_refused(
    client: TestClient, server_config: ServerConfig, tmp_path: Path, name: str
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    root = user_dir(server_config)
    root.mkdir(parents=True)
    os.symlink(outside, root / "link")
    name = name.replace("absolute", str(outside / "secret.txt").replace("/", "%2F"))
    url = yarl.URL(f"/userdata/{name}", encoded=True)
    for response in (
        await client.get(url),
        await client.post(url, data=b"overwritten"),
        await client.delete(url),
        await client.post(url.with_path(f"{url.raw_path}/move/x.json", encoded=True)),
        await client.post(yarl.URL(f"/userdata/x.json/move/{name}", encoded=True)),
    ):
        assert (await error_of(response, 403))["type"] == "forbidden_path"
    assert (outside / "secret.txt").read_text() == "secret"


async def test_double_encoded_dots_stay_a_literal_name_inside(client: TestClient, server_config: ServerConfig) -> None:
    assert await save(client, "%252e%252e%252fx.json", b"{}") == "%2e%2e%2fx.json"
    assert (user_dir(server_config) / "%2e%2e%2fx.json").read_bytes() == b"{}"
