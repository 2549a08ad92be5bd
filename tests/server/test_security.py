"""Security defaults: token auth, same-origin writes, loopback Host, body limits, JSON errors without traces."""

from __future__ import annotations

import pytest
from aiohttp import WSServerHandshakeError, web
from aiohttp.test_utils import TestClient

import main
from app.engine import Engine
from server.app import create_app
from server.config import ServerConfig
from tests.server.conftest import ClientFactory

TOKEN = "a-long-enough-secret-token"


async def test_a_token_server_refuses_requests_without_it(make_client: ClientFactory) -> None:
    client = await make_client(auth_token=TOKEN)
    refused = await client.get("/queue")
    assert refused.status == 401 and "token" in (await refused.json())["error"]["message"]
    assert (await client.get("/queue", headers={"Authorization": "Bearer wrong-token-wrong-token"})).status == 401
    assert (await client.get("/queue", headers={"Authorization": f"Bearer {TOKEN}"})).status == 200
    with_query = await client.get(f"/api/queue?token={TOKEN}")
    assert with_query.status == 200 and with_query.cookies["reelgraph_token"].value == TOKEN
    assert with_query.cookies["reelgraph_token"]["httponly"]
    assert (await client.get("/")).status == 200  # the cookie the token query set
    client.session.cookie_jar.clear()
    assert (await client.get("/")).status == 401
    assert (await client.get("/queue", headers={"Cookie": f"reelgraph_token={TOKEN}"})).status == 200


async def test_websocket_needs_the_token_too(make_client: ClientFactory) -> None:
    client = await make_client(auth_token=TOKEN)
    with pytest.raises(WSServerHandshakeError) as refused:
        await client.ws_connect("/ws?clientId=x")
    assert refused.value.status == 401
    socket = await client.ws_connect(f"/ws?clientId=x&token={TOKEN}")
    assert (await socket.receive_json())["type"] == "status"
    await socket.close()


async def test_cross_origin_writes_and_sockets_are_refused(client: TestClient) -> None:
    evil = {"Origin": "http://evil.example"}
    refused = await client.post("/prompt", json={"prompt": {}}, headers=evil)
    assert refused.status == 403 and "evil.example" in (await refused.json())["error"]["message"]
    assert (await client.post("/queue", json={"clear": True}, headers={"Origin": "null"})).status == 403
    assert (await client.post("/interrupt", headers={"Sec-Fetch-Site": "cross-site"})).status == 403
    with pytest.raises(WSServerHandshakeError) as hijack:
        await client.ws_connect("/ws", headers=evil)
    assert hijack.value.status == 403
    own = {"Origin": f"http://{client.host}:{client.port}"}
    assert (await client.post("/queue", json={"clear": True}, headers=own)).status == 200
    assert (await client.get("/queue", headers=evil)).status == 200  # reads carry no side effects


async def test_a_loopback_server_refuses_foreign_host_names(client: TestClient) -> None:
    rebinding = await client.get("/queue", headers={"Host": f"attacker.example:{client.port}"})
    assert rebinding.status == 403 and (await rebinding.json())["error"]["type"] == "forbidden_host"
    assert (await client.get("/queue", headers={"Host": f"localhost:{client.port}"})).status == 200


async def test_bodies_over_the_limit_are_413_json(make_client: ClientFactory) -> None:
    client = await make_client(max_body_bytes=2048)
    response = await client.post("/prompt", data="x" * 5000, headers={"Content-Type": "application/json"})
    assert response.status == 413 and (await response.json())["error"]["message"]


async def test_unexpected_errors_are_json_without_a_trace(
    aiohttp_client: object, engine: Engine, server_config: ServerConfig
) -> None:
    app = create_app(engine, server_config)

    async def broken(request: web.Request) -> web.Response:
        raise RuntimeError("secret internals")

    app.router.add_get("/broken", broken)
    client = await aiohttp_client(app)  # type: ignore[operator]
    response = await client.get("/broken")
    text = await response.text()
    assert response.status == 500 and "secret internals" not in text and "Traceback" not in text
    assert (await response.json())["error"]["type"] == "internal_error"


def test_listening_beyond_loopback_needs_a_token_or_an_explicit_opt_out(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main.main(["serve", "--listen", "0.0.0.0"])
    assert exit_info.value.code == 2 and "--auth-token" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main.main(["serve", "--listen", "0.0.0.0", "--auth-token", "short"])
    ServerConfig(data_dir=main.REPO_ROOT, host="0.0.0.0", insecure_no_auth=True).check()
    ServerConfig(data_dir=main.REPO_ROOT, host="0.0.0.0", auth_token=TOKEN).check()
    ServerConfig(data_dir=main.REPO_ROOT, host="::1").check()
