"""The editor's video round trip on a real server: upload a clip, see it as a choice, queue, watch progress, play it."""

from __future__ import annotations

from pathlib import Path

import av
from aiohttp.test_utils import TestClient

from app.config import AppConfig
from tests.nodes.media.synthetic import frame_index_of, indexed_frames, sine_audio, write_video
from tests.server.test_file_routes import upload
from tests.server.ws_helpers import connect, submit

FRAMES = 12


async def test_upload_queue_and_play_a_video(client: TestClient, app_config: AppConfig, tmp_path: Path) -> None:
    clip = write_video(tmp_path / "clip.mp4", indexed_frames(FRAMES), fps=24, audio=sine_audio(0.5)).read_bytes()
    assert (await (await upload(client, clip, "clip.mp4")).json())["name"] == "clip.mp4"
    info = await (await client.get("/object_info/LoadVideo")).json()
    assert info["LoadVideo"]["input"]["required"]["file"][0] == ["clip.mp4"]  # refreshed, no restart

    messages = await connect(client, "editor")
    workflow = {"last_node_id": 2, "nodes": [{"id": 1, "type": "LoadVideo"}], "links": [], "version": 0.4}
    prompt = {
        "1": {"class_type": "LoadVideo", "inputs": {"file": "clip.mp4"}},
        "2": {"class_type": "FrameReverse", "inputs": {"images": ["3", 0]}},
        "3": {"class_type": "GetVideoComponents", "inputs": {"video": ["1", 0]}},
        "4": {"class_type": "CreateVideo", "inputs": {"images": ["2", 0], "fps": ["3", 2], "audio": ["3", 1]}},
        "5": {"class_type": "SaveVideo", "inputs": {"video": ["4", 0], "filename_prefix": "video/rev"}},
    }
    prompt["5"]["inputs"] |= {"format": "auto", "codec": "auto"}
    queued = await submit(client, prompt, client_id="editor", extra_data={"extra_pnginfo": {"workflow": workflow}})
    await messages.done(queued["prompt_id"])
    executed = await messages.until(lambda kind, data: kind == "executed" and data["node"] == "5")
    assert executed["output"]["animated"] == [True]
    (entry,) = executed["output"]["images"]
    assert entry == {"filename": "rev_00001_.mp4", "subfolder": "video", "type": "output"}
    progress = [data for kind, data in messages.text if kind == "progress" and data["node"] == "5"]
    assert progress and progress[-1]["value"] == progress[-1]["max"] == FRAMES

    played = await client.get("/view", params=entry)
    assert played.status == 200 and played.headers["Content-Type"] == "video/mp4"
    saved = tmp_path / "played.mp4"
    saved.write_bytes(await played.read())
    with av.open(str(saved)) as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
        assert container.streams.audio
    assert [frame_index_of(frame) for frame in frames] == list(range(FRAMES - 1, -1, -1))
    extracted = await (await client.get("/workflow/extract", params=entry)).json()
    assert extracted["workflow"] == workflow and extracted["prompt"]["5"]["class_type"] == "SaveVideo"
