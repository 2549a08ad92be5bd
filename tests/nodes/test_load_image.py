"""LoadImage: choices from the input folder, alpha as mask, animated frames, EXIF rotation, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nodes.folders import Folders
from nodes.io import LoadImage
from tests.nodes.node_runner import NodeRunner


@pytest.fixture
def runner(tmp_path: Path) -> NodeRunner:
    folders = Folders.under(tmp_path)
    folders.input_dir.mkdir(parents=True)
    return NodeRunner(folders)


def test_choices_list_images_with_upload_and_follow_new_files(runner: NodeRunner) -> None:
    Image.new("RGB", (4, 4)).save(runner.folders.input_dir / "b.png")
    (runner.folders.input_dir / "notes.txt").write_text("no")
    (runner.folders.input_dir / ".hidden.png").write_bytes(b"")
    bound = runner.bind(LoadImage)
    choices, options = bound.INPUT_TYPES()["required"]["image"]
    assert choices == ["b.png"] and options["image_upload"] is True
    Image.new("RGB", (4, 4)).save(runner.folders.input_dir / "a.jpg")
    assert bound.INPUT_TYPES()["required"]["image"][0] == ["a.jpg", "b.png"]


def test_rgba_gives_image_and_inverted_alpha_mask(runner: NodeRunner) -> None:
    pixels = np.zeros((6, 8, 4), dtype=np.uint8)
    pixels[..., 0] = 255
    pixels[:, :4, 3] = 255  # left half opaque
    Image.fromarray(pixels, "RGBA").save(runner.folders.input_dir / "cut.png")
    image, mask = runner.call(LoadImage, image="cut.png")
    assert image.shape == (1, 6, 8, 3) and torch.allclose(image[0, 0, 0], torch.tensor([1.0, 0.0, 0.0]))
    assert mask.shape == (1, 6, 8)
    assert mask[0, :, :4].eq(0).all() and mask[0, :, 4:].eq(1).all()


def test_opaque_image_gets_an_empty_64_mask_and_exif_rotation(runner: NodeRunner) -> None:
    image = Image.new("RGB", (8, 4), (10, 20, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when shown
    image.save(runner.folders.input_dir / "photo.jpg", exif=exif.tobytes(), quality=95)
    loaded, mask = runner.call(LoadImage, image="photo.jpg")
    assert loaded.shape == (1, 8, 4, 3) and mask.shape == (1, 64, 64) and mask.eq(0).all()


def test_animated_gif_loads_every_frame(runner: NodeRunner) -> None:
    frames = [Image.new("RGB", (5, 5), (value, 0, 0)) for value in (0, 120, 240)]
    frames[0].save(runner.folders.input_dir / "anim.gif", save_all=True, append_images=frames[1:], duration=100)
    image, _mask = runner.call(LoadImage, image="anim.gif")
    assert image.shape == (3, 5, 5, 3)
    assert [round(float(frame[0, 0, 0]) * 255) for frame in image] == [0, 120, 240]


def test_sixteen_bit_png_keeps_its_range(runner: NodeRunner) -> None:
    pixels = np.full((3, 3), 65535 // 2, dtype=np.uint16)
    Image.fromarray(pixels).save(runner.folders.input_dir / "deep.png")
    image, _mask = runner.call(LoadImage, image="deep.png")
    assert abs(float(image[0, 0, 0, 0]) - 0.5) < 1e-3


def test_bad_files_are_named_in_the_error(runner: NodeRunner) -> None:
    (runner.folders.input_dir / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(ValueError, match=r"broken\.png"):
        runner.call(LoadImage, image="broken.png")
    with pytest.raises(ValueError, match="does not exist"):
        runner.call(LoadImage, image="gone.png")
    with pytest.raises(ValueError, match=r"outside|\.\."):
        runner.call(LoadImage, image="../secret.png")


def test_output_files_can_be_loaded_by_annotation_and_changes_are_noticed(runner: NodeRunner) -> None:
    runner.folders.output_dir.mkdir(parents=True)
    Image.new("RGB", (2, 2), (255, 255, 255)).save(runner.folders.output_dir / "done.png")
    image, _mask = runner.call(LoadImage, image="done.png [output]")
    assert image.shape == (1, 2, 2, 3)
    bound = runner.bind(LoadImage)
    before = bound.IS_CHANGED(image="done.png [output]")
    Image.new("RGB", (2, 2), (0, 0, 0)).save(runner.folders.output_dir / "done.png")
    assert bound.IS_CHANGED(image="done.png [output]") != before
