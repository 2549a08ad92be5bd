"""Embedded workflows: written into PNG/APNG, WebP and GIF files, and read back from those and from videos."""

from __future__ import annotations

import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image, PngImagePlugin

from nodes.media.encode import EncodeSettings, encode_video, tensor_batches
from nodes.media.errors import MediaError
from nodes.media.provenance import (
    EmbeddedWorkflow,
    embed_in_gif,
    embed_in_png,
    embed_in_webp,
    read_embedded_workflow,
    workflow_texts,
)
from tests.nodes.media.synthetic import indexed_frames, write_video

PROMPT = {"1": {"class_type": "LoadVideo", "inputs": {"file": "a.mp4"}}, "2": {"class_type": "SaveVideo", "inputs": {}}}
WORKFLOW = {
    "last_node_id": 2,
    "nodes": [{"id": 1, "type": "LoadVideo", "title": "x" * 600}],
    "links": [],
    "version": 0.4,
}
TEXTS = workflow_texts(PROMPT, {"workflow": WORKFLOW})
FOUND = (PROMPT, WORKFLOW)


def pil_frames(count: int = 5) -> list[Image.Image]:
    return [Image.fromarray(frame) for frame in indexed_frames(count)]


def frame_count(path: Path) -> int:
    with Image.open(path) as image:
        count = getattr(image, "n_frames", 1)
        for index in range(count):
            image.seek(index)
            image.load()
        return count


def found(path: Path) -> tuple[dict | None, dict | None]:
    embedded = read_embedded_workflow(path)
    return embedded.prompt, embedded.workflow


def encoded(path: Path, container: str, codec: str, metadata: dict[str, str] | None = None) -> Path:
    images = torch.from_numpy(indexed_frames(6)).float() / 255.0
    encode_video(path, tensor_batches(images), EncodeSettings(container, codec, Fraction(12), metadata=metadata or {}))
    return path


def test_workflow_texts_are_json() -> None:
    texts = workflow_texts(PROMPT, {"workflow": WORKFLOW, "extra": [1, 2]})
    assert {key: json.loads(value) for key, value in texts.items()} == {
        "prompt": PROMPT,
        "workflow": WORKFLOW,
        "extra": [1, 2],
    }
    assert workflow_texts(None, None) == {}


def test_png_round_trip_replaces_earlier_texts(tmp_path: Path) -> None:
    path = tmp_path / "still.png"
    pil_frames(1)[0].save(path)
    assert read_embedded_workflow(path) == EmbeddedWorkflow(None, None, "png")
    embed_in_png(path, workflow_texts({"old": {}}, {"workflow": {"old": True}}))
    embed_in_png(path, TEXTS)
    assert read_embedded_workflow(path) == EmbeddedWorkflow(PROMPT, WORKFLOW, "png")
    data = path.read_bytes()
    assert data.count(b"tEXtprompt") == 1
    assert data[12:16] == b"IHDR" and data[37:47] == b"tEXtprompt"  # right after IHDR
    with Image.open(path) as image:
        assert json.loads(image.text["workflow"]) == WORKFLOW
        np.testing.assert_array_equal(np.asarray(image.convert("RGB")), indexed_frames(1)[0])
    assert [p.name for p in tmp_path.iterdir()] == ["still.png"]


def test_apng_keeps_its_frames(tmp_path: Path) -> None:
    path = encoded(tmp_path / "anim.png", "apng", "apng")
    embed_in_png(path, TEXTS)
    assert found(path) == FOUND
    assert frame_count(path) == 6
    with av.open(str(path)) as container:
        assert len(list(container.decode(video=0))) == 6


def test_encoder_embeds_in_image_formats(tmp_path: Path) -> None:
    for name, container in (("a.png", "apng"), ("a.webp", "webp"), ("a.gif", "gif")):
        path = encoded(tmp_path / name, container, container, TEXTS)
        assert found(path) == FOUND, name
        assert frame_count(path) == 6, name


def test_non_latin1_text_uses_itxt(tmp_path: Path) -> None:
    path = tmp_path / "still.png"
    pil_frames(1)[0].save(path)
    workflow = {"title": "動画 ✓"}
    embed_in_png(path, {"workflow": json.dumps(workflow, ensure_ascii=False)})
    assert b"iTXtworkflow" in path.read_bytes()
    assert read_embedded_workflow(path).workflow == workflow
    with Image.open(path) as image:
        assert json.loads(image.text["workflow"]) == workflow


def test_comfyui_png_is_read(tmp_path: Path) -> None:
    path = tmp_path / "ComfyUI_00001_.png"
    info = PngImagePlugin.PngInfo()
    info.add_text("prompt", json.dumps(PROMPT))
    info.add_text("workflow", json.dumps(WORKFLOW))
    pil_frames(1)[0].save(path, pnginfo=info)
    assert found(path) == FOUND


def test_invalid_json_gives_none(tmp_path: Path) -> None:
    path = tmp_path / "bad.png"
    pil_frames(1)[0].save(path)
    embed_in_png(path, {"prompt": "{not json", "workflow": json.dumps(WORKFLOW)})
    assert found(path) == (None, WORKFLOW)
    embed_in_png(path, {"prompt": "[1, 2]"})
    assert found(path) == (None, WORKFLOW)


@pytest.mark.parametrize("options", [{"lossless": False}, {"lossless": True}], ids=["vp8", "vp8l"])
def test_still_webp_round_trip(tmp_path: Path, options: dict[str, bool]) -> None:
    path = tmp_path / "still.webp"
    pil_frames(1)[0].save(path, **options)
    assert read_embedded_workflow(path) == EmbeddedWorkflow(None, None, "webp")
    embed_in_webp(path, TEXTS)
    assert read_embedded_workflow(path) == EmbeddedWorkflow(PROMPT, WORKFLOW, "webp")
    data = path.read_bytes()
    assert data[12:16] == b"VP8X" and data[20] & 0x08  # the EXIF flag
    assert int.from_bytes(data[4:8], "little") + 8 == len(data)
    with Image.open(path) as image:
        assert image.size == (96, 64)
        assert image.getexif()[0x0110] == "prompt:" + TEXTS["prompt"]


def test_animated_webp_round_trip_replaces_exif(tmp_path: Path) -> None:
    path = tmp_path / "anim.webp"
    frames = pil_frames()
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0, lossless=True)
    embed_in_webp(path, workflow_texts({"old": {}}, None))
    embed_in_webp(path, {**TEXTS, "workflow": json.dumps({**WORKFLOW, "note": "é ✓"}, ensure_ascii=False)})
    assert found(path) == (PROMPT, {**WORKFLOW, "note": "é ✓"})
    assert path.read_bytes().count(b"EXIF") == 1
    assert frame_count(path) == 5
    with Image.open(path) as image:
        image.seek(4)
        np.testing.assert_array_equal(np.asarray(image.convert("RGB")), indexed_frames(5)[4])


def test_comfyui_webp_is_read(tmp_path: Path) -> None:
    path = tmp_path / "ComfyUI_00001_.webp"
    exif = Image.Exif()
    exif[0x0110] = "prompt:" + json.dumps(PROMPT)
    exif[0x010F] = "workflow:" + json.dumps(WORKFLOW)
    frames = pil_frames()
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, exif=exif, quality=80)
    assert found(path) == FOUND


def test_gif_round_trip_keeps_frames_and_loop(tmp_path: Path) -> None:
    path = tmp_path / "anim.gif"
    frames = pil_frames()
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=80, loop=2)
    assert read_embedded_workflow(path) == EmbeddedWorkflow(None, None, "gif")
    embed_in_gif(path, workflow_texts({"old": {}}, None))
    embed_in_gif(path, TEXTS)
    assert read_embedded_workflow(path) == EmbeddedWorkflow(PROMPT, WORKFLOW, "gif")
    data = path.read_bytes()
    assert data.count(b'{"prompt"') == 1 and b'"old"' not in data
    assert frame_count(path) == 5
    with Image.open(path) as image:
        assert image.info["loop"] == 2 and image.info["duration"] == 80


@pytest.mark.parametrize(("container", "codec"), [("mp4", "h264"), ("webm", "vp9")])
def test_video_container_tags_are_read(tmp_path: Path, container: str, codec: str) -> None:
    path = encoded(tmp_path / f"clip.{container}", container, codec, TEXTS)
    assert read_embedded_workflow(path) == EmbeddedWorkflow(PROMPT, WORKFLOW, "container")


def test_videohelpersuite_comment_is_read(tmp_path: Path) -> None:
    path = tmp_path / "AnimateDiff_00001.mp4"
    with av.open(str(path), "w") as container:
        container.metadata["comment"] = json.dumps({"prompt": json.dumps(PROMPT), "workflow": WORKFLOW})
        stream = container.add_stream("libx264", rate=8)
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
        for pixels in indexed_frames(2):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        container.mux(stream.encode())
    assert found(path) == FOUND


def test_video_without_metadata(tmp_path: Path) -> None:
    path = write_video(tmp_path / "plain.mkv", indexed_frames(2))
    assert read_embedded_workflow(path) == EmbeddedWorkflow(None, None, "container")


def test_unreadable_files_name_the_file(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"this is not a video at all " * 20)
    empty = tmp_path / "empty.png"
    empty.touch()
    with pytest.raises(MediaError, match=r"garbage\.mp4: not a PNG, WebP, GIF"):
        read_embedded_workflow(garbage)
    with pytest.raises(MediaError, match=r"empty\.png: the file is empty"):
        read_embedded_workflow(empty)
    with pytest.raises(MediaError, match=r"missing\.webp: the file cannot be read"):
        read_embedded_workflow(tmp_path / "missing.webp")
    with pytest.raises(MediaError, match=r"garbage\.mp4: not a PNG file"):
        embed_in_png(garbage, TEXTS)


@pytest.mark.parametrize(
    ("name", "container", "codec"),
    [
        ("cut.mp4", "mp4", "h264"),
        ("cut.webm", "webm", "vp9"),
        ("cut.png", "apng", "apng"),
        ("cut.gif", "gif", "gif"),
        ("cut.webp", "webp", "webp"),
    ],
)
def test_truncated_files_are_media_errors(tmp_path: Path, name: str, container: str, codec: str) -> None:
    path = encoded(tmp_path / name, container, codec, TEXTS)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(MediaError, match=rf"{name.replace('.', '[.]')}: the file is truncated"):
        read_embedded_workflow(path)


def test_truncated_mp4_without_faststart(tmp_path: Path) -> None:
    path = write_video(tmp_path / "moov_last.mp4", indexed_frames(4))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(MediaError, match=r"moov_last\.mp4: the file is truncated"):
        read_embedded_workflow(path)


def test_importing_provenance_does_not_import_torch() -> None:
    code = "import sys, nodes.media.provenance; sys.exit('torch' in sys.modules)"
    root = Path(__file__).resolve().parents[3]
    result = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr or "nodes.media.provenance imported torch"
