"""Widgets against the real server: uploads, refreshable lists, widget inputs as sockets, reroutes and primitives."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from app.config import REPO_ROOT
from tests.nodes.media.synthetic import indexed_frames, write_video
from tests.server.process import ServerProcess, free_port, server_command
from tests.web.conftest import EditorPage

WAIT_MS = 30_000
MAX_UPLOAD_MB = 1

TO_PAGE = """([x, y]) => {
  const { canvas } = reelgraph;
  const rect = canvas.canvas.getBoundingClientRect();
  const [sx, sy] = canvas.ds.convertOffsetToCanvas([x, y]);
  return [rect.left + sx, rect.top + sy];
}"""

ADD_NODE = """([type, x, y]) => {
  const { LiteGraph, graph, canvas } = reelgraph;
  const node = LiteGraph.createNode(type);
  node.pos = [x, y];
  graph.add(node);
  canvas.draw(true, true);
  return node.id;
}"""

EMPTY_GRAPH = """() => {
  reelgraph.loadWorkflow({ nodes: [], links: [], version: 0.4 });
  reelgraph.canvas.ds.offset = [0, 0];
  reelgraph.canvas.ds.scale = 1;
  reelgraph.canvas.draw(true, true);
}"""

WIDGET_CENTRE = """([id, name]) => {
  const { graph, canvas, LiteGraph } = reelgraph;
  canvas.draw(true, true);
  const node = graph.getNodeById(id);
  const widget = node.widgets.find((w) => w.name === name);
  return [node.pos[0] + node.size[0] / 2, node.pos[1] + widget.y + LiteGraph.NODE_WIDGET_HEIGHT / 2];
}"""

SLOT_POS = """([id, kind, name]) => {
  const node = reelgraph.graph.getNodeById(id);
  reelgraph.canvas.draw(true, true);
  if (kind === "output") return node.getOutputPos(node.outputs.findIndex((o) => o.name === name));
  return node.getInputPos(node.inputs.findIndex((i) => i.name === name));
}"""

COMBO_STATE = """(id) => {
  const node = reelgraph.graph.getNodeById(id);
  const combo = node.widgets[0];
  const shown = node.run.images[0];
  return {
    value: combo.value,
    values: [...combo.options.values],
    shown: shown ? { src: shown.src, tag: shown.tagName, width: shown.naturalWidth ?? shown.videoWidth } : null,
  };
}"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The editor's server (with the test nodes) taking uploads up to MAX_UPLOAD_MB."""
    root = tmp_path_factory.mktemp("widgets")
    port = free_port()
    command = server_command(
        root, port, module="tests.server.slow_nodes", extra=["--max-upload-mb", str(MAX_UPLOAD_MB)]
    )
    process = ServerProcess(command, port, root / "server.log")
    yield process.start()
    process.stop()


def input_dir(server: ServerProcess) -> Path:
    return Path(server.command[server.command.index("--input-dir") + 1])


def models_dir(server: ServerProcess) -> Path:
    return Path(server.command[server.command.index("--models-dir") + 1])


def png_bytes(colour: tuple[int, int, int], size: tuple[int, int] = (24, 16)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def page_point(editor: EditorPage, graph_point: list[float]) -> tuple[float, float]:
    x, y = editor.evaluate(TO_PAGE, graph_point)
    return x, y


def drag(editor: EditorPage, start: list[float], end: list[float]) -> None:
    """Press at graph point `start`, move to `end` in steps and release: a real pointer drag on the canvas."""
    mouse = editor.page.mouse
    mouse.move(*page_point(editor, start))
    mouse.down()
    mouse.move(*page_point(editor, end), steps=12)
    mouse.up()


def empty_graph(editor: EditorPage) -> None:
    editor.evaluate(EMPTY_GRAPH)


def status(editor: EditorPage) -> str:
    return str(editor.evaluate("document.getElementById('status').textContent"))


def upload_with_button(editor: EditorPage, node_id: int, path: Path) -> None:
    """Click the node's upload button and pick `path` in the file chooser."""
    centre = editor.evaluate(WIDGET_CENTRE, [node_id, "upload"])
    with editor.page.expect_file_chooser() as chooser:
        editor.page.mouse.click(*page_point(editor, centre))
    chooser.value.set_files(str(path))


def test_upload_through_the_widget_selects_and_shows_the_image(
    editor: EditorPage, server: ServerProcess, tmp_path: Path
) -> None:
    empty_graph(editor)
    node_id = editor.evaluate(ADD_NODE, ["LoadImage", 60, 80])
    picked = tmp_path / "red square.png"
    picked.write_bytes(png_bytes((230, 20, 20)))
    upload_with_button(editor, node_id, picked)
    editor.page.wait_for_function(
        "(id) => { const node = reelgraph.graph.getNodeById(id); const shown = node.run.images[0];"
        " return node.widgets[0].value === 'red square.png' && shown?.complete && shown.naturalWidth === 24; }",
        arg=node_id,
        timeout=WAIT_MS,
    )
    state = editor.evaluate(COMBO_STATE, node_id)
    assert "red square.png" in state["values"]
    assert "type=input" in state["shown"]["src"] and "filename=red+square.png" in state["shown"]["src"]
    assert (input_dir(server) / "red square.png").read_bytes() == picked.read_bytes()
    assert status(editor) == "uploaded red square.png"
    saved = editor.evaluate("(id) => reelgraph.graph.getNodeById(id).serialize().widgets_values", node_id)
    assert saved == ["red square.png", "image"]  # ComfyUI's shape: the upload button saves as "image"
    prompt = editor.evaluate("(id) => reelgraph.graphToPrompt(reelgraph.graph).output[id]", node_id)
    assert prompt["inputs"] == {"image": "red square.png"}
    assert editor.errors == []


def test_a_non_image_upload_is_refused_and_the_combo_is_unchanged(
    editor: EditorPage, server: ServerProcess, tmp_path: Path
) -> None:
    empty_graph(editor)
    node_id = editor.evaluate(ADD_NODE, ["LoadImage", 60, 80])
    before = editor.evaluate(COMBO_STATE, node_id)
    notes = tmp_path / "notes.txt"
    notes.write_text("not an image at all\n")
    upload_with_button(editor, node_id, notes)
    editor.page.wait_for_function(
        "document.getElementById('status').textContent.includes('was not uploaded')", timeout=WAIT_MS
    )
    assert "notes.txt" in status(editor)
    assert "error" in str(editor.evaluate("document.getElementById('status').className"))
    assert editor.evaluate("document.getElementById('status').offsetParent !== null")  # visible
    after = editor.evaluate(COMBO_STATE, node_id)
    assert after["value"] == before["value"] and after["values"] == before["values"]
    assert not (input_dir(server) / "notes.txt").exists()


def test_an_upload_over_the_size_limit_is_refused_with_the_limit_named(
    editor: EditorPage, server: ServerProcess, tmp_path: Path
) -> None:
    empty_graph(editor)
    node_id = editor.evaluate(ADD_NODE, ["LoadImage", 60, 80])
    before = editor.evaluate(COMBO_STATE, node_id)
    noise = np.random.default_rng(7).integers(0, 256, (800, 800, 3), dtype=np.uint8)
    big = tmp_path / "noise.png"
    Image.fromarray(noise).save(big)
    assert big.stat().st_size > MAX_UPLOAD_MB * 1024 * 1024
    upload_with_button(editor, node_id, big)
    editor.page.wait_for_function(
        "document.getElementById('status').textContent.includes('was not uploaded')", timeout=WAIT_MS
    )
    assert "over this server's limit" in status(editor)
    after = editor.evaluate(COMBO_STATE, node_id)
    assert after["value"] == before["value"] and after["values"] == before["values"]
    assert not (input_dir(server) / "noise.png").exists()


def test_a_video_upload_plays_muted_in_the_node(editor: EditorPage, server: ServerProcess, tmp_path: Path) -> None:
    empty_graph(editor)
    node_id = editor.evaluate(ADD_NODE, ["LoadVideo", 60, 80])
    clip = write_video(tmp_path / "clip.webm", indexed_frames(12), fps=12)
    upload_with_button(editor, node_id, clip)
    editor.page.wait_for_function(
        "(id) => { const node = reelgraph.graph.getNodeById(id); const shown = node.run.images[0];"
        " return node.widgets[0].value === 'clip.webm' && shown?.tagName === 'VIDEO' && shown.readyState >= 2; }",
        arg=node_id,
        timeout=WAIT_MS,
    )
    video = editor.evaluate(
        "(id) => { const v = reelgraph.graph.getNodeById(id).run.images[0];"
        " return { muted: v.muted, loop: v.loop, width: v.videoWidth, src: v.src }; }",
        node_id,
    )
    assert video["muted"] and video["loop"] and video["width"] == 96 and "type=input" in video["src"]
    assert (input_dir(server) / "clip.webm").is_file()


DROP_FILE = """([x, y, name, type, data]) => {
  const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
  const transfer = new DataTransfer();
  transfer.items.add(new File([bytes], name, { type }));
  const target = reelgraph.canvas.canvas;
  const init = { clientX: x, clientY: y, dataTransfer: transfer, bubbles: true, cancelable: true };
  target.dispatchEvent(new DragEvent("dragenter", init));
  const over = new DragEvent("dragover", init);
  target.dispatchEvent(over);
  target.dispatchEvent(new DragEvent("drop", init));
  return over.defaultPrevented;
}"""


def test_an_image_dropped_on_a_load_image_node_is_uploaded_into_it(editor: EditorPage, server: ServerProcess) -> None:
    empty_graph(editor)
    node_id = editor.evaluate(ADD_NODE, ["LoadImage", 60, 80])
    other = editor.evaluate(ADD_NODE, ["EmptyImage", 500, 80])
    data = base64.b64encode(png_bytes((20, 200, 40), (10, 30))).decode()
    point = page_point(editor, editor.evaluate(WIDGET_CENTRE, [node_id, "image"]))
    accepted = editor.evaluate(DROP_FILE, [*point, "dropped.png", "image/png", data])
    assert accepted  # the drag over the node was taken as a drop target
    editor.page.wait_for_function(
        "(id) => { const node = reelgraph.graph.getNodeById(id); const shown = node.run.images[0];"
        " return node.widgets[0].value === 'dropped.png' && shown?.complete && shown.naturalWidth === 10; }",
        arg=node_id,
        timeout=WAIT_MS,
    )
    assert (input_dir(server) / "dropped.png").is_file()
    assert editor.evaluate("reelgraph.graph._nodes.map((n) => n.id)") == [node_id, other]  # no workflow was opened


def test_refresh_lists_new_files_and_marks_values_no_longer_offered(editor: EditorPage, server: ServerProcess) -> None:
    empty_graph(editor)
    (input_dir(server) / "before.png").write_bytes(png_bytes((1, 2, 3)))
    editor.evaluate("() => reelgraph.api.objectInfo()")  # the server lists files afresh on each call
    image_id = editor.evaluate(ADD_NODE, ["LoadImage", 60, 80])
    lora_id = editor.evaluate(ADD_NODE, ["LoraLoaderModelOnly", 400, 80])
    editor.evaluate("(id) => { reelgraph.graph.getNodeById(id).widgets[0].value = 'vanished.png'; }", image_id)
    (input_dir(server) / "fresh.png").write_bytes(png_bytes((4, 5, 6)))
    loras = models_dir(server) / "loras"
    loras.mkdir(parents=True, exist_ok=True)
    (loras / "style.safetensors").write_bytes(b"\0" * 16)
    lora_values = "(id) => reelgraph.graph.getNodeById(id).widgets.find((w) => w.name === 'lora_name').options.values"
    assert "style.safetensors" not in editor.evaluate(lora_values, lora_id)
    editor.page.get_by_role("button", name="Refresh").click()
    editor.page.wait_for_function(
        "(id) => reelgraph.graph.getNodeById(id).widgets[0].options.values.includes('fresh.png')",
        arg=image_id,
        timeout=WAIT_MS,
    )
    assert "style.safetensors" in editor.evaluate(lora_values, lora_id)
    image = editor.evaluate(
        "(id) => { const n = reelgraph.graph.getNodeById(id); return { value: n.widgets[0].value,"
        " error: n.run.error, marked: !!n.has_errors }; }",
        image_id,
    )
    assert image["value"] == "vanished.png" and image["marked"] and "vanished.png" in image["error"]
    assert "vanished.png" in status(editor)
    new_node = editor.evaluate("() => reelgraph.LiteGraph.createNode('LoadImage').widgets[0].options.values")
    assert "fresh.png" in new_node  # the registered type lists it too

    (input_dir(server) / "by key.png").write_bytes(png_bytes((7, 8, 9)))
    editor.page.mouse.click(*page_point(editor, [800, 600]))  # focus the canvas, then the R key
    editor.page.keyboard.press("r")
    editor.page.wait_for_function(
        "(id) => reelgraph.graph.getNodeById(id).widgets[0].options.values.includes('by key.png')",
        arg=image_id,
        timeout=WAIT_MS,
    )


def test_a_link_into_a_widget_socket_replaces_the_widget_value(editor: EditorPage) -> None:
    empty_graph(editor)
    source = editor.evaluate(ADD_NODE, ["PrimitiveInt", 40, 100])
    target = editor.evaluate(ADD_NODE, ["EmptyImage", 420, 100])
    editor.evaluate("(id) => { reelgraph.graph.getNodeById(id).widgets[0].value = 24; }", source)
    drag(
        editor,
        editor.evaluate(SLOT_POS, [source, "output", "INT"]),
        editor.evaluate(SLOT_POS, [target, "input", "width"]),
    )
    prompt = editor.evaluate("(id) => reelgraph.graphToPrompt(reelgraph.graph).output[id].inputs", target)
    assert prompt["width"] == [str(source), 0] and prompt["height"] == 512
    state = editor.evaluate(
        "(id) => { reelgraph.canvas.draw(true, true); const n = reelgraph.graph.getNodeById(id);"
        " return { disabled: n.widgets.find((w) => w.name === 'width').computedDisabled,"
        " saved: n.serialize().inputs.find((i) => i.name === 'width'), values: n.serialize().widgets_values }; }",
        target,
    )
    assert state["disabled"]  # greyed while the link feeds it
    assert state["saved"]["widget"] == {"name": "width"} and state["saved"]["link"] is not None
    assert len(state["values"]) == 4  # width, height, batch_size, color: one per widget, linked or not

    # Drag the link off the socket into empty canvas: unlinked, the widget's own value is sent again.
    drag(editor, editor.evaluate(SLOT_POS, [target, "input", "width"]), [300, 500])
    editor.page.wait_for_function(
        "(id) => reelgraph.graph.getNodeById(id).inputs.find((i) => i.name === 'width').link == null", arg=target
    )
    prompt = editor.evaluate("(id) => reelgraph.graphToPrompt(reelgraph.graph).output[id].inputs", target)
    assert prompt["width"] == 512
    assert editor.errors == []


def history_entry(server: ServerProcess, prompt_id: str) -> dict[str, Any]:
    server.wait_for(lambda: prompt_id in server.get(f"/history/{prompt_id}"), timeout=60)
    return server.get(f"/history/{prompt_id}")[prompt_id]


def test_a_primitive_drives_its_widget_inputs_and_runs(editor: EditorPage, server: ServerProcess) -> None:
    empty_graph(editor)
    primitive = editor.evaluate(ADD_NODE, ["PrimitiveNode", 40, 100])
    image = editor.evaluate(ADD_NODE, ["EmptyImage", 420, 100])
    save = editor.evaluate(ADD_NODE, ["SaveImage", 800, 100])
    editor.evaluate(
        "([a, b]) => reelgraph.graph.getNodeById(a).connect(0, reelgraph.graph.getNodeById(b), 0)", [image, save]
    )
    out_pos = editor.evaluate(SLOT_POS, [primitive, "output", "connect to widget input"])
    drag(editor, out_pos, editor.evaluate(SLOT_POS, [image, "input", "width"]))
    adopted = editor.evaluate(
        "(id) => { const n = reelgraph.graph.getNodeById(id);"
        " return { type: n.outputs[0].type, widgets: n.widgets.map((w) => [w.name, w.value]) }; }",
        primitive,
    )
    assert adopted["type"] == "INT" and adopted["widgets"] == [["value", 512], ["control_after_generate", "fixed"]]
    drag(
        editor,
        editor.evaluate(SLOT_POS, [primitive, "output", "INT"]),
        editor.evaluate(SLOT_POS, [image, "input", "height"]),
    )
    editor.evaluate(
        """(id) => { const n = reelgraph.graph.getNodeById(id); n.widgets[0].value = 12;
        n.widgets[0].callback(12); n.widgets[1].value = "increment"; }""",
        primitive,
    )
    answer = editor.evaluate("reelgraph.queue()")
    assert answer["node_errors"] == {}
    entry = history_entry(server, answer["prompt_id"])
    sent = entry["prompt"][2]
    assert str(primitive) not in sent  # editor-only: never sent
    assert sent[str(image)]["inputs"]["width"] == 12 and sent[str(image)]["inputs"]["height"] == 12
    assert entry["status"]["status_str"] == "success"
    assert entry["outputs"][str(save)]["images"]
    after = editor.evaluate(
        "([p, i]) => [reelgraph.graph.getNodeById(p).widgets[0].value,"
        " reelgraph.graph.getNodeById(i).widgets.find((w) => w.name === 'width').value]",
        [primitive, image],
    )
    assert after == [13, 13]  # control after generate, and the target shows the driven value
    saved = editor.evaluate("(id) => reelgraph.graph.getNodeById(id).serialize()", primitive)
    assert saved["outputs"][0]["widget"] == {"name": "width"} and saved["widgets_values"] == [13, "increment"]


def test_a_reroute_chain_is_resolved_in_the_prompt_and_runs(editor: EditorPage, server: ServerProcess) -> None:
    empty_graph(editor)
    ids = editor.evaluate(
        """() => {
      const { LiteGraph, graph } = reelgraph;
      const make = (type, x) => { const n = LiteGraph.createNode(type); n.pos = [x, 100]; graph.add(n); return n; };
      const image = make("EmptyImage", 0);
      const first = make("Reroute", 350);
      const second = make("Reroute", 500);
      const save = make("SaveImage", 700);
      image.widgets.find((w) => w.name === "width").value = 8;
      image.widgets.find((w) => w.name === "height").value = 8;
      image.connect(0, first, 0);
      first.connect(0, second, 0);
      second.connect(0, save, 0);
      return { image: image.id, first: first.id, second: second.id, save: save.id };
    }"""
    )
    types = editor.evaluate(
        "(ids) => [ids.first, ids.second].map((id) => reelgraph.graph.getNodeById(id).outputs[0].type)", ids
    )
    assert types == ["IMAGE", "IMAGE"]  # each reroute takes the type it carries
    answer = editor.evaluate("reelgraph.queue()")
    assert answer["node_errors"] == {}
    entry = history_entry(server, answer["prompt_id"])
    sent = entry["prompt"][2]
    assert set(sent) == {str(ids["image"]), str(ids["save"])}
    assert sent[str(ids["save"])]["inputs"]["images"] == [str(ids["image"]), 0]
    assert entry["status"]["status_str"] == "success" and entry["outputs"][str(ids["save"])]["images"]
    refused = editor.evaluate(
        """(ids) => { const { LiteGraph, graph } = reelgraph;
        const loader = LiteGraph.createNode("LoadImage"); graph.add(loader);
        return loader.connect(1, graph.getNodeById(ids.first), 0) === null; }""",
        ids,
    )
    assert refused  # a reroute feeding an IMAGE input takes no MASK


# A ComfyUI-saved workflow: widgets converted to inputs (old style: only converted ones listed), a PrimitiveNode
# driving two of them and a Reroute between a node and its output.
COMFY_WORKFLOW: dict[str, Any] = {
    "last_node_id": 5,
    "last_link_id": 5,
    "nodes": [
        {
            "id": 1,
            "type": "EmptyImage",
            "pos": [300, 100],
            "size": [315, 130],
            "flags": {},
            "order": 1,
            "mode": 0,
            "inputs": [
                {"name": "width", "type": "INT", "link": 1, "widget": {"name": "width"}},
                {"name": "height", "type": "INT", "link": 2, "widget": {"name": "height"}},
            ],
            "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [3], "slot_index": 0}],
            "properties": {"Node name for S&R": "EmptyImage"},
            "widgets_values": [16, 16, 1, 16711680],
        },
        {
            "id": 2,
            "type": "PrimitiveNode",
            "pos": [0, 100],
            "size": [210, 82],
            "flags": {},
            "order": 0,
            "mode": 0,
            "outputs": [{"name": "INT", "type": "INT", "links": [1, 2], "slot_index": 0, "widget": {"name": "width"}}],
            "title": "size",
            "properties": {"Run widget replace on values": False},
            "widgets_values": [16, "fixed"],
        },
        {
            "id": 3,
            "type": "Reroute",
            "pos": [700, 120],
            "size": [75, 26],
            "flags": {},
            "order": 2,
            "mode": 0,
            "inputs": [{"name": "", "type": "*", "link": 3}],
            "outputs": [{"name": "", "type": "IMAGE", "links": [4], "slot_index": 0}],
            "properties": {"showOutputText": False, "horizontal": False},
        },
        {
            "id": 4,
            "type": "ImageInvert",
            "pos": [850, 100],
            "size": [210, 26],
            "flags": {},
            "order": 3,
            "mode": 0,
            "inputs": [{"name": "image", "type": "IMAGE", "link": 4}],
            "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [5], "slot_index": 0}],
            "properties": {"Node name for S&R": "ImageInvert"},
        },
        {
            "id": 5,
            "type": "SaveImage",
            "pos": [1100, 100],
            "size": [315, 270],
            "flags": {},
            "order": 4,
            "mode": 0,
            "inputs": [{"name": "images", "type": "IMAGE", "link": 5}],
            "outputs": [],
            "properties": {},
            "widgets_values": ["ComfyUI"],
        },
    ],
    "links": [
        [1, 2, 0, 1, 0, "INT"],
        [2, 2, 0, 1, 1, "INT"],
        [3, 1, 0, 3, 0, "*"],
        [4, 3, 0, 4, 0, "IMAGE"],
        [5, 4, 0, 5, 0, "IMAGE"],
    ],
    "groups": [],
    "config": {},
    "extra": {},
    "version": 0.4,
}


def test_a_comfyui_workflow_with_converted_widgets_loads_runs_and_resaves(
    editor: EditorPage, server: ServerProcess
) -> None:
    editor.evaluate("(workflow) => reelgraph.loadWorkflow(workflow)", COMFY_WORKFLOW)
    prompt = editor.evaluate("reelgraph.graphToPrompt(reelgraph.graph).output")
    assert set(prompt) == {"1", "4", "5"}
    assert prompt["1"]["inputs"] == {"width": 16, "height": 16, "batch_size": 1, "color": 16711680}
    assert prompt["4"]["inputs"] == {"image": ["1", 0]} and prompt["5"]["inputs"]["images"] == ["4", 0]
    saved = editor.evaluate("reelgraph.graph.serialize()")
    assert saved["links"] == COMFY_WORKFLOW["links"]
    for before, after in zip(COMFY_WORKFLOW["nodes"], saved["nodes"], strict=True):
        assert after.get("widgets_values", []) == before.get("widgets_values", []), before["type"]
        kept = [{k: entry[k] for k in ("name", "type", "link", "widget") if k in entry} for entry in after["inputs"]]
        assert kept[: len(before.get("inputs", []))] == before.get("inputs", []), before["type"]
        assert all(entry["link"] is None for entry in after["inputs"][len(before.get("inputs", [])) :])
    assert saved["nodes"][1]["outputs"][0]["widget"] == {"name": "width"}
    answer = editor.evaluate("reelgraph.queue()")
    entry = history_entry(server, answer["prompt_id"])
    assert entry["status"]["status_str"] == "success" and entry["outputs"]["5"]["images"]
    assert editor.errors == []


UI_WORKFLOWS = sorted(
    path.name for path in (REPO_ROOT / "workflows").glob("*.json") if "nodes" in json.loads(path.read_text())
)


@pytest.mark.parametrize("name", UI_WORKFLOWS)
def test_shipped_ui_workflows_keep_their_links_and_widget_values(editor: EditorPage, name: str) -> None:
    original = json.loads((REPO_ROOT / "workflows" / name).read_text())
    editor.evaluate("(name) => reelgraph.loadTemplate(name)", name)
    saved = editor.evaluate("reelgraph.graph.serialize()")
    assert [list(link[:6]) for link in saved["links"]] == [list(link[:6]) for link in original["links"]]
    by_id = {node["id"]: node for node in saved["nodes"]}
    for node in original["nodes"]:
        again = by_id[node["id"]]
        if "widgets_values" in node:
            # our node may have more widgets than the one that saved it (a newer input): those come after
            assert again.get("widgets_values", [])[: len(node["widgets_values"])] == node["widgets_values"], node[
                "type"
            ]
        for index, entry in enumerate(node.get("inputs", [])):
            assert again["inputs"][index]["name"] == entry["name"] and again["inputs"][index]["link"] == entry["link"]
    assert editor.errors == []
