"""SaveImage and PreviewImage: file naming, folders, embedded metadata and pixel round-trips."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from graph.context import InterruptFlag, NodeContext, node_context
from graph.errors import ExecutionInterrupted
from graph.spec import NodeSpec
from nodes.folders import FOLDERS_SERVICE, Folders
from nodes.io import NODE_CLASS_MAPPINGS, PreviewImage, SaveImage, resolve_save_path

PROMPT = {"1": {"class_type": "EmptyImage", "inputs": {"width": 4}}, "2": {"class_type": "SaveImage", "inputs": {}}}
WORKFLOW = {"last_node_id": 2, "nodes": [{"id": 1, "type": "EmptyImage"}], "links": [], "version": 0.4}


@pytest.fixture
def folders(tmp_path: Path) -> Folders:
    return Folders.under(tmp_path)


def make_context(
    folders: Folders, class_type: str = "SaveImage", interrupt: InterruptFlag | None = None
) -> NodeContext:
    return NodeContext(
        node_id="1",
        display_node_id="1",
        class_type=class_type,
        prompt_id="p",
        interrupt=interrupt or InterruptFlag(),
        services={FOLDERS_SERVICE: folders},
    )


def save(folders: Folders, images: torch.Tensor, **kwargs: Any) -> dict[str, Any]:
    with node_context(make_context(folders)):
        return SaveImage().save_images(images, **kwargs)


def preview(folders: Folders, images: torch.Tensor, **kwargs: Any) -> dict[str, Any]:
    with node_context(make_context(folders, "PreviewImage")):
        return PreviewImage().save_images(images, **kwargs)


def test_sockets() -> None:
    save_spec = NodeSpec.from_class("SaveImage", SaveImage)
    assert save_spec.output_node and save_spec.output_types == ()
    assert save_spec.input_order["required"] == ("images", "filename_prefix")
    assert save_spec.inputs["images"].type == "IMAGE"
    prefix = save_spec.inputs["filename_prefix"]
    assert prefix.type == "STRING" and prefix.options["default"] == "ComfyUI" and prefix.options["tooltip"]
    assert {name: spec.type for name, spec in save_spec.inputs.items() if spec.section == "hidden"} == {
        "prompt": "PROMPT",
        "extra_pnginfo": "EXTRA_PNGINFO",
    }
    preview_spec = NodeSpec.from_class("PreviewImage", PreviewImage)
    assert preview_spec.output_node and preview_spec.output_types == ()
    assert preview_spec.input_order["required"] == ("images",)
    assert set(NODE_CLASS_MAPPINGS) == {"LoadImage", "SaveImage", "PreviewImage"}


def test_file_names_increment_across_calls(folders: Folders) -> None:
    images = torch.rand(2, 4, 5, 3)
    first = save(folders, images, filename_prefix="shot")
    second = save(folders, images[:1], filename_prefix="shot")
    names = [entry["filename"] for entry in first["ui"]["images"] + second["ui"]["images"]]
    assert names == ["shot_00001_.png", "shot_00002_.png", "shot_00003_.png"]
    assert first["result"] == ()
    assert all(
        entry == {"filename": entry["filename"], "subfolder": "", "type": "output"} for entry in first["ui"]["images"]
    )
    assert sorted(p.name for p in folders.output_dir.iterdir()) == names


def test_counter_continues_after_highest_and_ignores_other_prefixes(folders: Folders) -> None:
    folders.output_dir.mkdir(parents=True)
    for name in ("shot_00007_.png", "shot_00002_.png", "shot_extra_00050_.png", "shotgun_00090_.png", "shot_x.png"):
        (folders.output_dir / name).write_bytes(b"")
    result = save(folders, torch.rand(1, 2, 2, 3), filename_prefix="shot")
    assert result["ui"]["images"][0]["filename"] == "shot_00008_.png"


def test_subfolder_prefix_is_created(folders: Folders) -> None:
    result = save(folders, torch.rand(1, 2, 2, 3), filename_prefix="renders/shot1")
    entry = result["ui"]["images"][0]
    assert entry == {"filename": "shot1_00001_.png", "subfolder": "renders", "type": "output"}
    assert (folders.output_dir / "renders" / "shot1_00001_.png").is_file()
    nested = save(folders, torch.rand(1, 2, 2, 3), filename_prefix="a/b/../c/x")
    assert nested["ui"]["images"][0]["subfolder"] == "a/c"


@pytest.mark.parametrize("prefix", ["../escape", "renders/../../escape", "/tmp/escape", "..", "", "renders/"])
def test_bad_prefixes_are_refused(folders: Folders, prefix: str) -> None:
    with pytest.raises(ValueError, match="filename_prefix"):
        save(folders, torch.rand(1, 2, 2, 3), filename_prefix=prefix)
    assert not (folders.output_dir.parent / "escape_00001_.png").exists()


def test_text_chunks_round_trip(folders: Folders) -> None:
    result = save(
        folders,
        torch.rand(1, 3, 3, 3),
        filename_prefix="meta",
        prompt=PROMPT,
        extra_pnginfo={"workflow": WORKFLOW, "note": "hi"},
    )
    with Image.open(folders.output_dir / result["ui"]["images"][0]["filename"]) as png:
        text = dict(png.text)
    assert json.loads(text["prompt"]) == PROMPT
    assert json.loads(text["workflow"]) == WORKFLOW
    assert json.loads(text["note"]) == "hi"


def test_no_metadata_without_prompt(folders: Folders) -> None:
    result = save(folders, torch.rand(1, 3, 3, 3), filename_prefix="bare", prompt=None, extra_pnginfo=None)
    with Image.open(folders.output_dir / result["ui"]["images"][0]["filename"]) as png:
        assert "prompt" not in png.text and "workflow" not in png.text


def test_pixels_round_trip_with_rounding_and_clamping(folders: Folders) -> None:
    values = torch.tensor([0.0, 1.0, 0.5, 0.31, -0.2, 1.7, 127.4 / 255, 127.6 / 255, 0.999])
    image = values.repeat(3).reshape(1, 3, 3, 3)
    result = save(folders, image, filename_prefix="px")
    with Image.open(folders.output_dir / result["ui"]["images"][0]["filename"]) as png:
        assert png.mode == "RGB" and png.size == (3, 3)
        pixels = np.asarray(png)
    expected = np.array([0, 255, 128, 79, 0, 255, 127, 128, 255], dtype=np.uint8)
    assert np.array_equal(pixels.reshape(-1), np.tile(expected, 3))


def test_each_batch_frame_is_its_own_file(folders: Folders) -> None:
    images = torch.stack([torch.full((2, 2, 3), 0.0), torch.full((2, 2, 3), 1.0)])
    result = save(folders, images, filename_prefix="frames")
    means = []
    for entry in result["ui"]["images"]:
        with Image.open(folders.output_dir / entry["filename"]) as png:
            means.append(float(np.asarray(png).mean()))
    assert means == [0.0, 255.0]


def test_preview_goes_to_temp(folders: Folders) -> None:
    result = preview(folders, torch.rand(2, 3, 3, 3), prompt=PROMPT)
    entries = result["ui"]["images"]
    assert [entry["type"] for entry in entries] == ["temp", "temp"]
    assert all(entry["subfolder"] == "" for entry in entries)
    for entry in entries:
        assert entry["filename"].startswith("ComfyUI_temp_")
        assert (folders.temp_dir / entry["filename"]).is_file()
    assert entries[0]["filename"][:18] == entries[1]["filename"][:18]
    assert entries[0]["filename"].endswith("_00001_.png") and entries[1]["filename"].endswith("_00002_.png")
    assert not folders.output_dir.exists()


def test_save_needs_a_running_node() -> None:
    with pytest.raises(RuntimeError, match="no node is running"):
        SaveImage().save_images(torch.rand(1, 2, 2, 3))


def test_interrupt_stops_saving(folders: Folders) -> None:
    flag = InterruptFlag()
    flag.set()
    with node_context(make_context(folders, interrupt=flag)), pytest.raises(ExecutionInterrupted):
        SaveImage().save_images(torch.rand(3, 2, 2, 3), filename_prefix="stop")
    assert not list(folders.output_dir.glob("stop_*"))


def test_resolve_save_path_is_reusable(tmp_path: Path) -> None:
    (tmp_path / "video").mkdir()
    (tmp_path / "video" / "clip_00004_.mp4").write_bytes(b"")
    target = resolve_save_path("video/clip", tmp_path)
    assert (target.folder, target.subfolder, target.filename, target.counter) == (
        tmp_path / "video",
        "video",
        "clip",
        5,
    )
    assert target.file_name(5, "mp4") == "clip_00005_.mp4"
