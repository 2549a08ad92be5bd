"""The editor page and the node catalogue, on a real aiohttp server over loopback."""

from __future__ import annotations

from aiohttp.test_utils import TestClient


async def test_object_info_lists_built_in_nodes_under_both_prefixes(client: TestClient) -> None:
    plain, prefixed = await client.get("/object_info"), await client.get("/api/object_info")
    assert plain.status == prefixed.status == 200
    info = await plain.json()
    assert info == await prefixed.json()
    crop = info["ImageCrop"]
    assert crop["input"]["required"]["width"][0] == "INT"
    assert crop["input"]["required"]["width"][1]["max"] == 16384
    assert crop["input_order"]["required"] == ["image", "width", "height", "x", "y"]
    assert crop["output"] == ["IMAGE"] and crop["output_node"] is False
    assert info["SaveImage"]["output_node"] is True


async def test_object_info_for_one_class_and_unknown_class(client: TestClient) -> None:
    one = await (await client.get("/object_info/ImageBlend")).json()
    assert list(one) == ["ImageBlend"]
    assert one["ImageBlend"]["input"]["required"]["blend_mode"][0][-1] == "difference"
    assert await (await client.get("/api/object_info/NoSuchNode")).json() == {}


async def test_index_page_is_served(client: TestClient) -> None:
    response = await client.get("/")
    assert response.status == 200 and "<title>Reelgraph</title>" in await response.text()


async def test_unknown_route_is_a_json_404(client: TestClient) -> None:
    response = await client.get("/api/no/such/route")
    assert response.status == 404
    body = await response.json()
    assert body["error"]["type"] == "not_found" and body["error"]["message"]
