"""ComfyUI's saved workflows in the editor: lossless round trips through every save path, and subgraph instances.

Fixtures (hand-written, in ComfyUI's shapes, with only node types the test server has):
- ``fixtures/comfy_schema1_subgraph.json``: schema version 1 (object links with ``parentId`` and an unknown key,
  ``state``, top-level ``reroutes``), a subgraph instance with two promoted widgets, a bypassed and a muted node,
  a PrimitiveNode, a Reroute, a Note, a MarkdownNote, groups, and unknown keys at every level.
- ``fixtures/comfy_v04.json``: version 0.4 (array links, native reroutes in ``extra``) with the same kinds of nodes
  and unknown keys.
"""

from __future__ import annotations

import copy
import io
import json
from pathlib import Path
from typing import Any

from PIL import Image

from tests.server.process import ServerProcess
from tests.web.conftest import EditorPage
from tests.web.test_workflow_files import click_save_and_name, data_dir, fetch_output, wait_status

FIXTURES = Path(__file__).parent / "fixtures"
SCHEMA1 = FIXTURES / "comfy_schema1_subgraph.json"
V04 = FIXTURES / "comfy_v04.json"
SUBGRAPH_ID = "5e0c9d6a-6f0e-4f52-9c1d-2b7f3a8e1c44"
SERIALIZE = "JSON.parse(JSON.stringify(reelgraph.graph.serialize()))"

# Fields no ComfyUI-format reader of ours understands: each must come back exactly as it was loaded.
UNKNOWN_FIELDS: dict[str, list[tuple[str | int, ...]]] = {
    SCHEMA1.name: [
        ("id",),
        ("revision",),
        ("version",),
        ("state",),
        ("definitions",),
        ("models",),
        ("reroutes",),
        ("floatingLinks",),
        ("reelgraph_unknown_top",),
        ("extra", "frontendVersion"),
        ("extra", "workflowRendererVersion"),
        ("extra", "reelgraph_unknown_extra"),
        ("links",),  # objects, with parentId and an unknown key
        ("groups",),
        ("nodes", 1, "custom_node_key"),
        ("nodes", 1, "properties"),
        ("nodes", 1, "outputs", 0, "custom_slot_key"),
        ("nodes", 1, "color"),
        ("nodes", 1, "bgcolor"),
        ("nodes", 1, "shape"),
        ("nodes", 5),  # the subgraph instance
        ("nodes", 7),  # Note
        ("nodes", 8),  # MarkdownNote
        ("nodes", 11, "widgets_values"),
    ],
    V04.name: [
        ("id",),
        ("revision",),
        ("version",),
        ("models",),
        ("custom_top_key",),
        ("links",),
        ("groups",),
        ("extra", "reroutes"),
        ("extra", "linkExtensions"),
        ("extra", "VHS_latentpreview"),
        ("extra", "ue_links"),
        ("nodes", 1, "custom_node_key"),
        ("nodes", 1, "properties"),
        ("nodes", 5, "title"),  # equal to the type's display name, which LiteGraph leaves out
        ("nodes", 7, "widgets_values"),
        ("nodes", 8),
        ("nodes", 9),
    ],
}


def load_fixture(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def normalised(workflow: dict[str, Any]) -> dict[str, Any]:
    """The workflow without what the editor recomputes (node execution order, the view), nodes sorted by id."""
    data = copy.deepcopy(workflow)
    data.get("extra", {}).pop("ds", None)
    for node in data["nodes"]:
        node.pop("order", None)
    data["nodes"].sort(key=lambda node: node["id"])
    return json.loads(json.dumps(data, sort_keys=True))


def field(workflow: dict[str, Any], path: tuple[str | int, ...]) -> Any:
    """The value at ``path``; an int after "nodes" is a node id."""
    value: Any = workflow
    for index, key in enumerate(path):
        if index and path[index - 1] == "nodes":
            value = next(node for node in value if node["id"] == key)
        else:
            value = value[key]
    return value


def assert_kept(original: dict[str, Any], saved: dict[str, Any], name: str) -> None:
    """Every unknown field as it was, then the whole document (both normalised)."""
    original, saved = normalised(original), normalised(saved)
    for path in UNKNOWN_FIELDS[name]:
        assert field(saved, path) == field(original, path), path
    assert saved == original


def open_fixture(editor: EditorPage, path: Path) -> str:
    editor.page.set_input_files("input.wf-upload", str(path))
    return wait_status(editor, f"opened {path.name}")


def test_a_schema1_workflow_with_a_subgraph_survives_every_save_path(
    editor: EditorPage, server: ServerProcess, tmp_path: Path
) -> None:
    original = load_fixture(SCHEMA1)
    status = open_fixture(editor, SCHEMA1)
    assert "not installed" not in status

    click_save_and_name(editor, "comfy schema1")  # the user's workflows, through /userdata
    wait_status(editor, "saved comfy schema1.json")
    saved_file = data_dir(server) / "users" / "default" / "workflows" / "comfy schema1.json"
    assert_kept(original, json.loads(saved_file.read_text()), SCHEMA1.name)

    with editor.page.expect_download() as download_info:  # Download
        editor.page.click("button.wf-download")
    downloaded = tmp_path / "downloaded.json"
    download_info.value.save_as(downloaded)
    assert_kept(original, json.loads(downloaded.read_text()), SCHEMA1.name)

    editor.page.reload()  # the autosave brings it back; saved again under the remembered name
    editor.page.wait_for_function("window.reelgraph !== undefined", timeout=10_000)
    saved_file.unlink()
    editor.page.keyboard.press("Control+s")
    server.wait_for(saved_file.exists)
    assert_kept(original, json.loads(saved_file.read_text()), SCHEMA1.name)
    assert editor.errors == []


def test_a_v04_workflow_survives_save_and_reload(editor: EditorPage, server: ServerProcess) -> None:
    original = load_fixture(V04)
    assert "not installed" not in open_fixture(editor, V04)
    click_save_and_name(editor, "comfy v04")
    wait_status(editor, "saved comfy v04.json")
    saved_file = data_dir(server) / "users" / "default" / "workflows" / "comfy v04.json"
    assert_kept(original, json.loads(saved_file.read_text()), V04.name)

    editor.page.reload()
    editor.page.wait_for_function("window.reelgraph !== undefined", timeout=10_000)
    assert_kept(original, editor.evaluate(SERIALIZE), V04.name)  # type: ignore[arg-type]
    assert editor.errors == []


def test_the_link_form_decides_how_links_are_read_and_saved(editor: EditorPage) -> None:
    for version in (None, 1):  # array links under another version (or none) are still read as arrays
        workflow = load_fixture(V04)
        if version is None:
            del workflow["version"]
        else:
            workflow["version"] = version
        editor.evaluate("(workflow) => reelgraph.loadWorkflow(workflow)", workflow)
        assert editor.evaluate("reelgraph.graph.getLink(2)?.target_id") == 3
        saved = editor.evaluate(SERIALIZE)
        assert saved["links"] == workflow["links"]  # type: ignore[index]
        assert saved["version"] == (0.4 if version is None else 1)  # type: ignore[index]

    workflow = load_fixture(SCHEMA1)
    workflow["version"] = 0.4  # object links under 0.4: still read as objects
    editor.evaluate("(workflow) => reelgraph.loadWorkflow(workflow)", workflow)
    assert editor.evaluate("reelgraph.graph.getLink(2)?.target_id") == 6
    assert editor.evaluate(SERIALIZE)["links"] == workflow["links"]  # type: ignore[index]


def test_editor_only_nodes_and_modes_load_without_placeholders(editor: EditorPage) -> None:
    for path in (SCHEMA1, V04):
        open_fixture(editor, path)
        nodes = editor.evaluate(
            """reelgraph.graph._nodes.map((n) => ({
              id: n.id, type: n.type, missing: !!n.constructor.missing, mode: n.mode,
              widgets: (n.widgets ?? []).map((w) => w.value) }))"""
        )
        by_type = {node["type"]: node for node in nodes}  # type: ignore[union-attr]
        assert not [node for node in nodes if node["missing"]], path.name  # type: ignore[union-attr]
        assert {"Note", "MarkdownNote", "Reroute", "PrimitiveNode"} <= set(by_type)
        assert by_type["MarkdownNote"]["widgets"][0].startswith("#")
        assert sorted(node["mode"] for node in nodes)[-2:] == [2, 4]  # type: ignore[union-attr]
        assert editor.evaluate("reelgraph.graph._groups.length") == 2


def test_a_subgraph_instance_shows_its_definition_and_promoted_widgets(editor: EditorPage) -> None:
    open_fixture(editor, SCHEMA1)
    instance = editor.evaluate(
        """(() => {
      const node = reelgraph.graph.getNodeById(5);
      return {
        missing: !!node.constructor.missing, subgraph: node.constructor.subgraph?.name, title: node.getTitle(),
        defaultTitle: node.constructor.title, badges: node.badges.map((b) => b.text),
        inputs: node.inputs.map((i) => [i.name, i.type, i.link]), outputs: node.outputs.map((o) => [o.name, o.links]),
        widgets: node.widgets.map((w) => [w.name, w.type, w.value, w.options.values ?? null]),
      };
    })()"""
    )
    assert instance == {
        "missing": False,
        "subgraph": "Invert and scale",
        "title": "Invert, then halve",
        "defaultTitle": "Invert and scale",
        "badges": ["subgraph · 2 nodes"],
        "inputs": [["image", "IMAGE", 6]],
        "outputs": [["IMAGE", [2, 3]]],
        "widgets": [
            ["scale_by", "number", 0.5, None],
            ["upscale_method", "combo", "bilinear", ["nearest-exact", "bilinear", "area", "bicubic", "lanczos"]],
        ],
    }
    editor.evaluate("() => { reelgraph.graph.getNodeById(5).widgets[1].value = 'area'; }")
    saved = next(node for node in editor.evaluate(SERIALIZE)["nodes"] if node["id"] == 5)  # type: ignore[index]
    assert saved["widgets_values"] == [0.5, "area"]
    assert saved["properties"] == field(load_fixture(SCHEMA1), ("nodes", 5, "properties"))

    without_title = load_fixture(SCHEMA1)
    del field(without_title, ("nodes", 5))["title"]
    editor.evaluate("(workflow) => reelgraph.loadWorkflow(workflow)", without_title)
    assert editor.evaluate("reelgraph.graph.getNodeById(5).getTitle()") == "Invert and scale"
    assert "title" not in next(n for n in editor.evaluate(SERIALIZE)["nodes"] if n["id"] == 5)  # type: ignore[index]

    without_definition = load_fixture(SCHEMA1)  # the same type with no definition: a placeholder, refused
    del without_definition["definitions"]
    editor.evaluate("(workflow) => reelgraph.loadWorkflow(workflow)", without_definition)
    assert editor.evaluate("!!reelgraph.graph.getNodeById(5).constructor.missing")
    assert SUBGRAPH_ID in editor.evaluate("reelgraph.queue()")["error"]["message"]  # type: ignore[index]


def test_a_missing_type_inside_a_subgraph_refuses_the_queue(editor: EditorPage) -> None:
    workflow = load_fixture(SCHEMA1)
    workflow["definitions"]["subgraphs"][0]["nodes"][0]["type"] = "NotInstalledInside"
    editor.evaluate("(workflow) => reelgraph.loadWorkflow(workflow)", workflow)
    message = editor.evaluate("reelgraph.queue().then((answer) => answer.error.message)")
    assert message == "cannot queue: node type not installed: #5:2 NotInstalledInside"


def test_a_subgraph_workflow_queued_from_the_editor_runs_flattened(editor: EditorPage, server: ServerProcess) -> None:
    workflow = load_fixture(SCHEMA1)
    inner = workflow["definitions"]["subgraphs"][0]["nodes"][0]  # ImageInvert -> a slow invert, to watch it run
    inner.update(
        type="SlowPass",
        inputs=[
            *inner["inputs"],
            *(
                {"name": n, "type": t, "widget": {"name": n}, "link": None}
                for n, t in (("steps", "INT"), ("seconds", "FLOAT"))
            ),
        ],
        widgets_values=[20, 0.05],
    )
    editor.evaluate("(workflow) => reelgraph.loadWorkflow(workflow)", workflow)
    editor.evaluate("() => { reelgraph.graph.getNodeById(5).widgets[0].value = 0.25; }")  # the promoted scale_by
    answer = editor.evaluate("reelgraph.queue()")
    assert answer["node_errors"] == {}, answer  # type: ignore[index]
    editor.page.wait_for_function(  # progress of node "5:2" is drawn on instance 5
        "() => { const run = reelgraph.graph.getNodeById(5).run; return run.running && run.progress?.value > 0; }",
        timeout=15_000,
    )
    wait_status(editor, "done")

    entry = server.get(f"/history/{answer['prompt_id']}")[answer["prompt_id"]]  # type: ignore[index]
    assert entry["status"]["status_str"] == "success"
    prompt = entry["prompt"][2]
    assert sorted(prompt) == ["1", "5:2", "5:3", "6"]  # bypassed 11, muted 10 and editor-only nodes left out
    assert prompt["5:2"] == {
        "class_type": "SlowPass",
        "inputs": {"image": ["1", 0], "steps": 20, "seconds": 0.05},
        "_meta": {"title": "SlowPass"},
    }
    assert prompt["5:3"]["inputs"] == {"image": ["5:2", 0], "upscale_method": "bilinear", "scale_by": 0.25}
    assert prompt["6"]["inputs"] == {"images": ["5:3", 0], "filename_prefix": "comfy/subgraph"}
    assert entry["prompt"][3]["extra_pnginfo"]["workflow"]["definitions"] == workflow["definitions"]
    image = Image.open(io.BytesIO(fetch_output(server, entry["outputs"]["6"]["images"][0])))
    assert image.size == (16, 12) and image.convert("RGB").getpixel((0, 0)) == (255, 0, 0)  # SlowPass does not invert
    assert not editor.evaluate("reelgraph.graph.getNodeById(5).run.running")
    assert editor.errors == []
