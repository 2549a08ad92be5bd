"""A client written for ComfyUI works unchanged against ``python main.py serve``.

The flow is that of ComfyUI's ``websockets_api_example.py``: the ``websocket-client`` package and ``urllib``,
queue a prompt with a client id, wait for ``executing`` with ``node`` null, read ``/history/{id}``, fetch the
images through ``/view``.
"""

from __future__ import annotations

import io
import json
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import websocket
from PIL import Image

from tests.server.process import ServerProcess, free_port, server_command


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    port = free_port()
    process = ServerProcess(server_command(tmp_path, port), port, tmp_path / "log")
    yield process.start()
    process.stop()


class ComfyStyleClient:
    """The example's functions, as a ComfyUI user writes them."""

    def __init__(self, server_address: str) -> None:
        self.server_address = server_address
        self.client_id = str(uuid.uuid4())

    def queue_prompt(self, prompt: dict[str, Any], prompt_id: str) -> None:
        payload = {"prompt": prompt, "client_id": self.client_id, "prompt_id": prompt_id}
        data = json.dumps(payload).encode("utf-8")
        request = urllib.request.Request(f"http://{self.server_address}/prompt", data=data)
        urllib.request.urlopen(request).read()

    def get_image(self, filename: str, subfolder: str, folder_type: str) -> bytes:
        url_values = urllib.parse.urlencode({"filename": filename, "subfolder": subfolder, "type": folder_type})
        with urllib.request.urlopen(f"http://{self.server_address}/view?{url_values}") as response:
            return response.read()

    def get_history(self, prompt_id: str) -> dict[str, Any]:
        with urllib.request.urlopen(f"http://{self.server_address}/history/{prompt_id}") as response:
            return json.loads(response.read())

    def get_images(self, ws: websocket.WebSocket, prompt: dict[str, Any]) -> dict[str, list[bytes]]:
        prompt_id = str(uuid.uuid4())
        self.queue_prompt(prompt, prompt_id)
        while True:
            out = ws.recv()
            if isinstance(out, str):
                message = json.loads(out)
                if message["type"] == "executing":
                    data = message["data"]
                    if data["node"] is None and data["prompt_id"] == prompt_id:
                        break  # execution is done
            else:
                continue  # previews are binary data
        history = self.get_history(prompt_id)[prompt_id]
        output_images = {}
        for node_id in history["outputs"]:
            node_output = history["outputs"][node_id]
            images_output = []
            if "images" in node_output:
                for image in node_output["images"]:
                    images_output.append(self.get_image(image["filename"], image["subfolder"], image["type"]))
            output_images[node_id] = images_output
        return output_images


def test_comfyui_websocket_api_example_flow(server: ServerProcess, tmp_path: Path) -> None:
    prompt = {
        "3": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 32, "batch_size": 2, "color": 0x204060}},
        "4": {"class_type": "ImageInvert", "inputs": {"image": ["3", 0]}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "ComfyUI", "images": ["4", 0]}},
    }
    client = ComfyStyleClient(server.address)
    ws = websocket.WebSocket()
    ws.connect(f"ws://{server.address}/ws?clientId={client.client_id}", timeout=30)
    try:
        images = client.get_images(ws, prompt)
    finally:
        ws.close()

    assert list(images) == ["9"] and len(images["9"]) == 2
    saved = sorted((tmp_path / "output").glob("ComfyUI_*.png"))
    assert [path.read_bytes() for path in saved] == images["9"]
    pixels = np.asarray(Image.open(io.BytesIO(images["9"][0])).convert("RGB"))
    assert pixels.shape == (32, 64, 3)
    assert pixels[0, 0].tolist() == [255 - 0x20, 255 - 0x40, 255 - 0x60]
