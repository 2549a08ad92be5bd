"""``/workflow/extract``: the prompt and workflow embedded in a dropped or stored PNG or video, on a real server."""

from __future__ import annotations

import json
from fractions import Fraction
from io import BytesIO
from pathlib import Path

import av
from aiohttp import ClientResponse, FormData
from aiohttp.test_utils import TestClient
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from app.config import AppConfig
from tests.nodes.media.synthetic import indexed_frames
from tests.server.test_file_routes import error_of, files_under

PROMPT = {"3": {"class_type": "EmptyImage", "inputs": {"width": 8}}}
WORKFLOW = {"last_node_id": 3, "nodes": [{"id": 3, "type": "EmptyImage"}], "links": [], "version": 0.4}


def comfy_png() -> bytes:
    """A PNG as ComfyUI writes it: tEXt chunks ``prompt`` and ``workflow``."""
    info = PngInfo()
    info.add_text("prompt", json.dumps(PROMPT))
    info.add_text("workflow", json.dumps(WORKFLOW))
    buffer = BytesIO()
    Image.new("RGB", (4, 4)).save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def tagged_mp4(path: Path) -> Path:
    """An mp4 whose container tags carry the workflow (``movflags=use_metadata_tags``, as ComfyUI's SaveVideo)."""
    with av.open(str(path), "w", options={"movflags": "use_metadata_tags"}) as container:
        container.metadata["prompt"] = json.dumps(PROMPT)
        container.metadata["workflow"] = json.dumps(WORKFLOW)
        stream = container.add_stream("libx264", rate=Fraction(24))
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
        for pixels in indexed_frames(3):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        container.mux(stream.encode())
    return path


async def post_file(client: TestClient, data: bytes, name: str) -> ClientResponse:
    form = FormData()
    form.add_field("file", data, filename=name, content_type="application/octet-stream")
    return await client.post("/workflow/extract", data=form)


async def test_extract_from_a_dropped_png_and_mp4_stores_nothing(
    client: TestClient, app_config: AppConfig, tmp_path: Path
) -> None:
    response = await post_file(client, comfy_png(), "shot.png")
    assert response.status == 200
    assert await response.json() == {"prompt": PROMPT, "workflow": WORKFLOW, "source": "png"}
    video = tagged_mp4(tmp_path / "clip.mp4").read_bytes()
    body = await (await post_file(client, video, "clip.mp4")).json()
    assert body["workflow"] == WORKFLOW and body["prompt"] == PROMPT
    for folder in (app_config.folders.input_dir, app_config.folders.temp_dir, app_config.folders.output_dir):
        assert files_under(folder) == []


async def test_extract_reports_missing_workflows_and_refuses_non_media(client: TestClient) -> None:
    buffer = BytesIO()
    Image.new("RGB", (4, 4)).save(buffer, format="PNG")
    body = await (await post_file(client, buffer.getvalue(), "plain.png")).json()
    assert body["prompt"] is None and body["workflow"] is None
    error = await error_of(await post_file(client, b"%PDF-1.7 not media", "doc.pdf"), 400)
    assert error["type"] == "invalid_media" and "doc.pdf" in error["message"]
    error = await error_of(
        await client.post("/workflow/extract", data=FormData({"other": "x"}, default_to_multipart=True)), 400
    )
    assert error["type"] == "missing_file"


async def test_extract_from_a_stored_output_file(client: TestClient, app_config: AppConfig) -> None:
    folder = app_config.folders.output_dir / "video"
    folder.mkdir(parents=True)
    tagged_mp4(folder / "take.mp4")
    response = await client.get("/api/workflow/extract", params={"filename": "take.mp4", "subfolder": "video"})
    assert (await response.json())["workflow"] == WORKFLOW
    await error_of(await client.get("/workflow/extract", params={"filename": "nope.mp4"}), 404)
    await error_of(await client.get("/workflow/extract", params={"filename": "../x.mp4"}), 403)
    await error_of(await client.get("/workflow/extract", params={"filename": "a.mp4", "type": "models"}), 400)
