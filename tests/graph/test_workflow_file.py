"""Workflow files and objects load in API or UI format, with clear errors naming the path."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from graph.errors import WorkflowFormatError
from graph.registry import NodeRegistry
from graph.workflow_file import LoadedWorkflow, detect_format, load_workflow


class FakeInvert:
    FUNCTION = "run"
    CATEGORY = "test"
    OUTPUT_NODE = False
    RETURN_TYPES = ("IMAGE",)

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"image": ("IMAGE",), "strength": ("FLOAT", {"default": 1.0})}}

    def run(self, image: Any, strength: float) -> tuple[Any]:
        return (image,)


class FakeLoad:
    FUNCTION = "run"
    CATEGORY = "test"
    OUTPUT_NODE = False
    RETURN_TYPES = ("IMAGE",)

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"seed": ("INT", {"default": 0}), "name": ("STRING", {"default": ""})}}

    def run(self, seed: int, name: str) -> tuple[Any]:
        return (name,)


@pytest.fixture
def registry() -> NodeRegistry:
    registry = NodeRegistry()
    registry.register("FakeInvert", FakeInvert)
    registry.register("FakeLoad", FakeLoad)
    return registry


API = {
    "1": {"class_type": "FakeLoad", "inputs": {"seed": 3, "name": "x"}, "_meta": {"title": "FakeLoad"}},
    "2": {"class_type": "FakeInvert", "inputs": {"image": ["1", 0], "strength": 0.5}, "_meta": {"title": "FakeInvert"}},
}

UI = {
    "last_node_id": 2,
    "last_link_id": 1,
    "nodes": [
        {
            "id": 1,
            "type": "FakeLoad",
            "mode": 0,
            "inputs": [],
            "widgets_values": [3, "randomize", "x"],
            "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [1], "slot_index": 0}],
        },
        {
            "id": 2,
            "type": "FakeInvert",
            "mode": 0,
            "inputs": [{"name": "image", "type": "IMAGE", "link": 1}],
            "outputs": [],
            "widgets_values": [0.5],
        },
    ],
    "links": [[1, 1, 0, 2, 0, "IMAGE"]],
    "groups": [],
    "config": {},
    "extra": {},
    "version": 0.4,
}


def write(tmp_path: Path, data: Any, name: str = "wf.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_detect_format() -> None:
    assert detect_format(API) == "api"
    assert detect_format(UI) == "ui"
    assert detect_format({"prompt": API, "workflow": UI}) == "api"
    assert detect_format({"workflow": UI}) == "ui"
    for bad in ({}, [], {"1": {"inputs": {}}}, {"prompt": {"1": 2}}, "text"):
        with pytest.raises(WorkflowFormatError):
            detect_format(bad)


def test_api_object_loads_unchanged(registry: NodeRegistry) -> None:
    loaded = load_workflow(API, registry)
    assert loaded == LoadedWorkflow(api=API, ui=None, source_format="api")


def test_ui_file_is_converted(registry: NodeRegistry, tmp_path: Path) -> None:
    loaded = load_workflow(write(tmp_path, UI), registry)
    assert loaded.source_format == "ui"
    assert loaded.api == API
    assert loaded.ui == UI


def test_string_path_is_read(registry: NodeRegistry, tmp_path: Path) -> None:
    assert load_workflow(str(write(tmp_path, API)), registry).api == API


def test_prompt_and_workflow_wrapper(registry: NodeRegistry, tmp_path: Path) -> None:
    loaded = load_workflow(write(tmp_path, {"prompt": API, "workflow": UI}), registry)
    assert loaded == LoadedWorkflow(api=API, ui=UI, source_format="api")


def test_post_body_and_history_entry_wrappers(registry: NodeRegistry) -> None:
    body = {"prompt": API, "client_id": "c", "extra_data": {"extra_pnginfo": {"workflow": UI}}}
    assert load_workflow(body, registry) == LoadedWorkflow(api=API, ui=UI, source_format="api")
    history = {"prompt": [0, "pid", API, {"extra_pnginfo": {"workflow": UI}}, ["2"]], "outputs": {}}
    assert load_workflow(history, registry) == LoadedWorkflow(api=API, ui=UI, source_format="api")


def test_workflow_only_wrapper_is_converted(registry: NodeRegistry) -> None:
    loaded = load_workflow({"workflow": UI}, registry)
    assert (loaded.source_format, loaded.api) == ("ui", API)


def test_prompt_embedded_in_ui_extra_is_not_used(registry: NodeRegistry) -> None:
    other = {"9": {"class_type": "FakeLoad", "inputs": {"seed": 1, "name": "other"}}}
    loaded = load_workflow({**UI, "extra": {"prompt": other}}, registry)
    assert loaded.source_format == "ui"
    assert loaded.api == API


def test_utf8_bom_is_accepted(registry: NodeRegistry, tmp_path: Path) -> None:
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(API).encode())
    assert load_workflow(path, registry).api == API


def test_missing_file(registry: NodeRegistry, tmp_path: Path) -> None:
    path = tmp_path / "nope.json"
    with pytest.raises(WorkflowFormatError, match="not found") as info:
        load_workflow(path, registry)
    assert str(path) in str(info.value)


def test_directory_instead_of_file(registry: NodeRegistry, tmp_path: Path) -> None:
    with pytest.raises(WorkflowFormatError, match="directory"):
        load_workflow(tmp_path, registry)


def test_not_utf8(registry: NodeRegistry, tmp_path: Path) -> None:
    path = tmp_path / "latin.json"
    path.write_bytes(b'{"1": "caf\xe9"}')
    with pytest.raises(WorkflowFormatError, match="not UTF-8") as info:
        load_workflow(path, registry)
    assert str(path) in str(info.value)


def test_invalid_json_reports_line_and_column(registry: NodeRegistry, tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{\n  "1": {"class_type": "FakeLoad",,}\n}', encoding="utf-8")
    with pytest.raises(WorkflowFormatError, match="line 2, column 34") as info:
        load_workflow(path, registry)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([1, 2], "not a workflow.*JSON list"),
        ({}, "empty"),
        ({"1": {"class_type": "FakeLoad", "inputs": {}}, "2": {"inputs": {}}}, "node 2: class_type"),
        ({"prompt": {"1": "x"}}, "'prompt' is not an API prompt"),
    ],
)
def test_neither_format_names_the_path(registry: NodeRegistry, tmp_path: Path, data: Any, message: str) -> None:
    path = write(tmp_path, data)
    with pytest.raises(WorkflowFormatError, match=message) as info:
        load_workflow(path, registry)
    assert str(info.value).startswith(f"{path}: ")


def test_ui_conversion_error_names_the_path(registry: NodeRegistry, tmp_path: Path) -> None:
    path = write(tmp_path, {"nodes": [{"id": 1, "type": "FakeLoad", "inputs": "bad"}], "links": []})
    with pytest.raises(WorkflowFormatError, match=r"node 1 \(FakeLoad\): inputs") as info:
        load_workflow(path, registry)
    assert str(info.value).startswith(f"{path}: ")
