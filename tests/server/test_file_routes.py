"""``/view`` and ``/upload/image`` on a real server: exact bytes, ComfyUI's naming, size limits and path refusals."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import pytest
from aiohttp import ClientResponse, FormData
from aiohttp.test_utils import TestClient
from PIL import Image
from yarl import URL

from app.config import AppConfig
from tests.nodes.media.synthetic import indexed_frames, sine_audio, write_audio, write_video
from tests.server.conftest import ClientFactory

SECRET = b"top secret bytes that must never leave the server"


def png_bytes(seed: int = 0, size: int = 32, mode: str = "RGB") -> bytes:
    """A noisy PNG (noise keeps it from compressing below the size-limit tests' thresholds)."""
    channels = len(mode)
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, channels), dtype=np.uint8)
    return encode(Image.fromarray(pixels, mode), "PNG")


def encode(image: Image.Image, image_format: str) -> bytes:
    buffer = BytesIO()
    image.save(buffer, format=image_format)
    return buffer.getvalue()


def decode(data: bytes) -> Image.Image:
    image = Image.open(BytesIO(data))
    image.load()
    return image


def files_under(folder: Path) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if not path.is_dir())


async def upload(client: TestClient, data: bytes, filename: str = "pic.png", **fields: str) -> ClientResponse:
    """POST a form the way a browser writes it: the file first, its name raw (aiohttp's FormData would %-encode it).

    Names with control characters go as RFC 5987 ``filename*`` (they are not allowed raw in a part's header).
    """
    if filename.isprintable():
        disposition = 'filename="{}"'.format(filename.replace("\\", "\\\\").replace('"', '\\"'))
    else:
        disposition = f"filename*=UTF-8''{quote(filename)}"
    boundary = "reelgraph-test-boundary"
    body = BytesIO()
    body.write(f'--{boundary}\r\nContent-Disposition: form-data; name="image"; {disposition}\r\n'.encode())
    body.write(b"Content-Type: image/png\r\n\r\n" + data + b"\r\n")
    for name, value in fields.items():
        body.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    body.write(f"--{boundary}--\r\n".encode())
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    return await client.post("/upload/image", data=body.getvalue(), headers=headers)


async def error_of(response: ClientResponse, status: int) -> dict[str, Any]:
    assert response.status == status, await response.text()
    body = await response.json()
    assert body["error"]["message"]
    return body["error"]


@pytest.fixture
def folders(app_config: AppConfig) -> Any:
    return app_config.folders


# ---- /view -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("folder_type", ["output", "input", "temp"])
async def test_view_returns_the_exact_bytes_of_each_folder(client: TestClient, folders: Any, folder_type: str) -> None:
    data = png_bytes(seed=1)
    (getattr(folders, f"{folder_type}_dir") / "clips").mkdir()
    (getattr(folders, f"{folder_type}_dir") / "clips" / "frame.png").write_bytes(data)
    query = {"filename": "frame.png", "subfolder": "clips", "type": folder_type}
    for prefix in ("", "/api"):
        response = await client.get(f"{prefix}/view", params=query)
        assert response.status == 200
        assert await response.read() == data
        assert response.content_type == "image/png"
        assert response.headers["Content-Disposition"] == 'filename="frame.png"'


async def test_view_defaults_to_output_and_reads_comfyui_annotated_names(client: TestClient, folders: Any) -> None:
    (folders.output_dir / "a.png").write_bytes(b"output")
    (folders.input_dir / "a.png").write_bytes(b"input")
    assert await (await client.get("/view", params={"filename": "a.png"})).read() == b"output"
    annotated = await client.get("/view", params={"filename": "a.png [input]", "type": "output"})
    assert await annotated.read() == b"input"


async def test_view_serves_script_types_as_downloads(client: TestClient, folders: Any) -> None:
    (folders.output_dir / "page.html").write_bytes(b"<script>alert(1)</script>")
    response = await client.get("/view", params={"filename": "page.html"})
    assert response.status == 200 and response.content_type == "application/octet-stream"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


async def test_view_errors_are_json(client: TestClient, folders: Any) -> None:
    (folders.output_dir / "a.png").write_bytes(png_bytes())
    unknown_type = await error_of(await client.get("/view", params={"filename": "a.png", "type": "models"}), 400)
    assert unknown_type["type"] == "invalid_type"
    await error_of(await client.get("/view", params={"filename": "missing.png"}), 404)
    await error_of(await client.get("/view", params={"filename": "a.png", "subfolder": "nope"}), 404)
    await error_of(await client.get("/view", params={"filename": ""}), 400)
    await error_of(await client.get("/view", params={"filename": "a.png", "channel": "cmyk"}), 400)
    (folders.output_dir / "notes.txt").write_bytes(b"plain text")
    await error_of(await client.get("/view", params={"filename": "notes.txt", "preview": "webp;50"}), 400)


async def test_view_preview_reencodes_with_the_asked_format_and_quality(client: TestClient, folders: Any) -> None:
    (folders.output_dir / "noise.png").write_bytes(png_bytes(seed=2, size=64, mode="RGBA"))
    sizes = {}
    for preview in ("webp;50", "webp;100"):
        response = await client.get("/view", params={"filename": "noise.png", "preview": preview})
        assert response.status == 200 and response.content_type == "image/webp"
        image = decode(await response.read())
        assert image.format == "WEBP" and image.size == (64, 64)
        sizes[preview] = len(await response.read())
    assert sizes["webp;50"] < sizes["webp;100"]

    jpeg = await client.get("/view", params={"filename": "noise.png", "preview": "jpeg;85"})
    assert jpeg.content_type == "image/jpeg" and decode(await jpeg.read()).mode == "RGB"
    # ComfyUI: a preview that keeps alpha (channel rgba or a) is always WEBP, since JPEG has no alpha.
    with_alpha = await client.get("/view", params={"filename": "noise.png", "preview": "jpeg", "channel": "rgba"})
    assert with_alpha.content_type == "image/webp" and decode(await with_alpha.read()).mode == "RGBA"
    without_alpha = await client.get("/view", params={"filename": "noise.png", "preview": "webp", "channel": "rgb"})
    assert decode(await without_alpha.read()).mode == "RGB"


async def test_view_channels_split_colour_and_alpha(client: TestClient, folders: Any) -> None:
    data = png_bytes(seed=3, size=16, mode="RGBA")
    original = np.asarray(decode(data))
    (folders.output_dir / "rgba.png").write_bytes(data)

    rgba = await client.get("/view", params={"filename": "rgba.png", "channel": "rgba"})
    assert await rgba.read() == data

    rgb = decode(await (await client.get("/view", params={"filename": "rgba.png", "channel": "rgb"})).read())
    assert rgb.mode == "RGB" and np.array_equal(np.asarray(rgb), original[..., :3])

    alpha_response = await client.get("/view", params={"filename": "rgba.png", "channel": "a"})
    assert alpha_response.content_type == "image/png"
    alpha = np.asarray(decode(await alpha_response.read()))
    assert alpha.shape == (16, 16, 4)
    assert np.array_equal(alpha[..., 3], original[..., 3]) and not alpha[..., :3].any()

    (folders.output_dir / "rgb.png").write_bytes(png_bytes(seed=4, size=16))
    opaque = decode(await (await client.get("/view", params={"filename": "rgb.png", "channel": "a"})).read())
    assert (np.asarray(opaque)[..., 3] == 255).all()


# ---- /upload/image -----------------------------------------------------------------------------------------------


async def test_upload_round_trip(client: TestClient, folders: Any) -> None:
    data = png_bytes(seed=5)
    response = await upload(client, data)
    assert response.status == 200
    assert await response.json() == {"name": "pic.png", "subfolder": "", "type": "input"}
    assert (folders.input_dir / "pic.png").read_bytes() == data
    view = await client.get("/api/view", params={"filename": "pic.png", "type": "input"})
    assert await view.read() == data
    assert files_under(folders.temp_dir) == []


async def test_upload_names_like_comfyui(client: TestClient, folders: Any) -> None:
    first, second, third = png_bytes(seed=6), png_bytes(seed=7), png_bytes(seed=8)
    names = [(await (await upload(client, data)).json())["name"] for data in (first, first, second, second, third)]
    assert names == ["pic.png", "pic.png", "pic (1).png", "pic (1).png", "pic (2).png"]
    assert (folders.input_dir / "pic (1).png").read_bytes() == second
    assert files_under(folders.input_dir) == ["pic (1).png", "pic (2).png", "pic.png"]


@pytest.mark.parametrize("flag", ["true", "1"])
async def test_upload_overwrite_replaces_the_file(client: TestClient, folders: Any, flag: str) -> None:
    await upload(client, png_bytes(seed=9))
    replacement = png_bytes(seed=10)
    response = await upload(client, replacement, overwrite=flag)
    assert (await response.json())["name"] == "pic.png"
    assert files_under(folders.input_dir) == ["pic.png"]
    assert (folders.input_dir / "pic.png").read_bytes() == replacement


async def test_upload_creates_subfolders_of_each_type(client: TestClient, folders: Any) -> None:
    data = png_bytes(seed=11)
    response = await upload(client, data, "shot.png", type="output", subfolder="clips/take1")
    assert await response.json() == {"name": "shot.png", "subfolder": "clips/take1", "type": "output"}
    assert (folders.output_dir / "clips" / "take1" / "shot.png").read_bytes() == data
    temp = await upload(client, data, "shot.png", type="temp")
    assert (await temp.json())["type"] == "temp" and (folders.temp_dir / "shot.png").read_bytes() == data
    query = {"filename": "shot.png", "subfolder": "clips/take1", "type": "output"}
    assert await (await client.get("/view", params=query)).read() == data


async def test_upload_takes_only_the_last_part_of_the_client_name(client: TestClient, tmp_path: Path) -> None:
    response = await upload(client, png_bytes(seed=12), "../../evil.png")
    assert (await response.json())["name"] == "evil.png"
    assert (tmp_path / "input" / "evil.png").is_file() and not (tmp_path / "evil.png").exists()


async def test_upload_refuses_a_non_image_and_leaves_nothing(client: TestClient, folders: Any) -> None:
    error = await error_of(await upload(client, b"MZ\x90\x00 not a picture", "fake.png"), 400)
    assert error["type"] == "invalid_media" and "fake.png" in error["message"]
    truncated = png_bytes(seed=13)[:200]
    await error_of(await upload(client, truncated, "cut.png"), 400)
    assert files_under(folders.input_dir) == [] and files_under(folders.temp_dir) == []


async def test_upload_takes_videos_and_audio_but_not_broken_ones(
    client: TestClient, folders: Any, tmp_path: Path
) -> None:
    video = write_video(tmp_path / "clip.mp4", indexed_frames(6), audio=sine_audio(0.25)).read_bytes()
    stored = await (await upload(client, video, "clip.mp4")).json()
    assert stored == {"name": "clip.mp4", "subfolder": "", "type": "input"}
    assert (folders.input_dir / "clip.mp4").read_bytes() == video
    sound = write_audio(tmp_path / "tone.wav", sine_audio(0.25)).read_bytes()
    assert (await (await upload(client, sound, "tone.wav")).json())["name"] == "tone.wav"
    error = await error_of(await upload(client, video[:300], "cut.mp4"), 400)
    assert error["type"] == "invalid_media" and "cut.mp4" in error["message"]
    assert sorted(files_under(folders.input_dir)) == ["clip.mp4", "tone.wav"]


@pytest.mark.parametrize("filename", [".hidden.png", "bad\x01name.png", "folder/", "x" * 252 + ".png"])
async def test_upload_refuses_bad_names(client: TestClient, folders: Any, filename: str) -> None:
    await error_of(await upload(client, png_bytes(), filename), 400)
    assert files_under(folders.input_dir) == [] and files_under(folders.temp_dir) == []


async def test_upload_refuses_bad_forms(client: TestClient, folders: Any) -> None:
    no_image = FormData()
    no_image.add_field("type", "input")
    no_image.add_field("dummy", b"x", filename="x.bin")
    assert (await error_of(await client.post("/upload/image", data=no_image), 400))["type"] == "missing_image"
    await error_of(await client.post("/upload/image", json={"image": "x"}), 400)
    await error_of(await upload(client, png_bytes(), type="models"), 400)
    for content_type, body in [
        ("multipart/form-data", b"no boundary"),
        ("multipart/form-data; boundary=xyz", b"--abc\r\nnot the boundary\r\n"),
        ("multipart/form-data; boundary=xyz", b'--xyz\r\nContent-Disposition: form-data; name="image"; x="\x01"\r\n'),
    ]:
        await error_of(await client.post("/upload/image", data=body, headers={"Content-Type": content_type}), 400)
    assert files_under(folders.temp_dir) == []


async def test_upload_size_limit_is_enforced_while_streaming(make_client: ClientFactory, folders: Any) -> None:
    client = await make_client(max_upload_bytes=2000)
    small, large = png_bytes(size=4), png_bytes(seed=14, size=64)
    assert len(small) < 2000 < len(large)
    error = await error_of(await upload(client, large, "big.png"), 413)
    assert error["type"] == "upload_too_large" and "2000 bytes" in error["message"]
    assert files_under(folders.input_dir) == [] and files_under(folders.temp_dir) == []
    assert (await (await upload(client, small, "small.png")).json())["name"] == "small.png"


# ---- path traversal ----------------------------------------------------------------------------------------------


@pytest.fixture
def outside(tmp_path: Path, folders: Any) -> Path:
    """A secret next to the served folders, and symlinks inside input/ that lead to it."""
    (tmp_path / "secret.png").write_bytes(SECRET)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.png").write_bytes(SECRET)
    (folders.input_dir / "link.png").symlink_to(tmp_path / "secret.png")
    (folders.input_dir / "linkdir").symlink_to(tmp_path / "outside", target_is_directory=True)
    return tmp_path


TRAVERSAL_QUERIES = [
    "filename=../secret.png",
    "filename=%2e%2e%2fsecret.png",
    "filename=..%2Fsecret.png",
    "filename=%2E%2E/secret.png&type=input",
    "filename=secret.png&subfolder=..",
    "filename=secret.png&subfolder=%2e%2e",
    "filename=secret.png&subfolder=clips%2F..%2F..",
    "filename=..%5Csecret.png",
    "filename=secret.png&subfolder=..%5C",
    "filename=link.png&type=input",
    "filename=secret.png&subfolder=linkdir&type=input",
    "filename=link.png%20%5Binput%5D",
]


@pytest.mark.parametrize("query", TRAVERSAL_QUERIES)
async def test_view_refuses_traversal(client: TestClient, outside: Path, query: str) -> None:
    url = URL(f"{client.make_url('/view')}?{query}", encoded=True)
    async with client.session.get(url) as response:
        body = await response.read()
        assert response.status == 403, body
        assert (await response.json())["error"]["type"] == "forbidden_path"
    assert SECRET not in body


async def test_view_refuses_absolute_paths(client: TestClient, outside: Path) -> None:
    for query in ({"filename": str(outside / "secret.png")}, {"filename": "secret.png", "subfolder": str(outside)}):
        response = await client.get("/view", params=query)
        assert response.status == 403 and SECRET not in await response.read()


async def test_view_follows_symlinks_that_stay_inside(client: TestClient, folders: Any) -> None:
    (folders.input_dir / "real.png").write_bytes(b"inside")
    (folders.input_dir / "alias.png").symlink_to(folders.input_dir / "real.png")
    assert await (await client.get("/view", params={"filename": "alias.png", "type": "input"})).read() == b"inside"


@pytest.mark.parametrize(
    ("filename", "subfolder"),
    [
        ("pic.png", "../outside"),
        ("pic.png", "clips/../../outside"),
        ("pic.png", "/tmp"),
        ("pic.png", "..\\outside"),
        ("pic.png", "linkdir"),
        ("pic.png", "linkdir/deeper"),
        ("link.png", ""),
        ("a\\..\\..\\secret.png", ""),
    ],
)
@pytest.mark.parametrize("overwrite", ["false", "true"])
async def test_upload_refuses_traversal(
    client: TestClient, outside: Path, folders: Any, filename: str, subfolder: str, overwrite: str
) -> None:
    before = files_under(outside / "outside")
    response = await upload(client, png_bytes(seed=15), filename, subfolder=subfolder, overwrite=overwrite)
    assert (await error_of(response, 403))["type"] == "forbidden_path"
    assert (outside / "secret.png").read_bytes() == SECRET
    assert files_under(outside / "outside") == before == ["secret.png"]
    assert sorted(path.name for path in folders.input_dir.iterdir()) == ["link.png", "linkdir"]
    assert files_under(folders.temp_dir) == []


async def test_view_serves_saved_videos_with_their_type_and_ranges(
    client: TestClient, folders: Any, tmp_path: Path
) -> None:
    (folders.output_dir / "video").mkdir(parents=True)
    clip = write_video(folders.output_dir / "video" / "take.mp4", indexed_frames(6)).read_bytes()
    query = {"filename": "take.mp4", "subfolder": "video", "type": "output"}
    whole = await client.get("/view", params=query)
    assert whole.headers["Content-Type"] == "video/mp4" and await whole.read() == clip
    part = await client.get("/view", params=query, headers={"Range": "bytes=10-19"})
    assert part.status == 206 and await part.read() == clip[10:20]  # seeking in the editor's <video>
