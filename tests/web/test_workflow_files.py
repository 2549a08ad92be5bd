"""Workflow files in the editor: save/open on the server, download/upload, drag and drop, missing node types."""

from __future__ import annotations

import base64
import io
import json
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from PIL import Image

from app.config import REPO_ROOT
from tests.server.process import ServerProcess
from tests.web.conftest import EditorPage

STATUS = "document.getElementById('status').textContent"
SERIALIZE = "JSON.parse(JSON.stringify(reelgraph.graph.serialize()))"
EMPTY = {"nodes": [], "links": [], "version": 0.4}

# A red still saved as a PNG, and four frames saved as an mp4: both embed this workflow when queued.
MEDIA_WORKFLOW: dict[str, Any] = {
    "last_node_id": 5,
    "last_link_id": 3,
    "nodes": [
        {
            "id": 1,
            "type": "EmptyImage",
            "pos": [40, 60],
            "size": [315, 130],
            "flags": {},
            "order": 0,
            "mode": 0,
            "inputs": [],
            "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [1]}],
            "properties": {},
            "widgets_values": [64, 48, 1, 16711680],
            "title": "Red still",
        },
        {
            "id": 2,
            "type": "SaveImage",
            "pos": [420, 60],
            "size": [315, 270],
            "flags": {},
            "order": 1,
            "mode": 0,
            "inputs": [{"name": "images", "type": "IMAGE", "link": 1}],
            "outputs": [],
            "properties": {},
            "widgets_values": ["dropped/still"],
        },
        {
            "id": 3,
            "type": "EmptyImage",
            "pos": [40, 360],
            "size": [315, 130],
            "flags": {},
            "order": 2,
            "mode": 0,
            "inputs": [],
            "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [2]}],
            "properties": {},
            "widgets_values": [64, 48, 4, 255],
            "title": "Blue frames",
        },
        {
            "id": 4,
            "type": "CreateVideo",
            "pos": [420, 380],
            "size": [315, 80],
            "flags": {},
            "order": 3,
            "mode": 0,
            "inputs": [{"name": "images", "type": "IMAGE", "link": 2}],
            "outputs": [{"name": "VIDEO", "type": "VIDEO", "links": [3]}],
            "properties": {},
            "widgets_values": [8],
        },
        {
            "id": 5,
            "type": "SaveVideo",
            "pos": [780, 380],
            "size": [315, 270],
            "flags": {},
            "order": 4,
            "mode": 0,
            "inputs": [{"name": "video", "type": "VIDEO", "link": 3}],
            "outputs": [],
            "properties": {},
            "widgets_values": ["dropped/clip", "auto", "auto"],
        },
    ],
    "links": [[1, 1, 0, 2, 0, "IMAGE"], [2, 3, 0, 4, 0, "IMAGE"], [3, 4, 0, 5, 0, "VIDEO"]],
    "groups": [],
    "config": {},
    "extra": {},
    "version": 0.4,
}

# The image template with an uninstalled node between the scaler and the saver, carrying every kind of node data.
MISSING_NODE: dict[str, Any] = {
    "id": 8,
    "type": "FancyUpscaler",
    "pos": [1100, 420],
    "size": [333, 222],
    "flags": {},
    "order": 6,
    "mode": 0,
    "inputs": [
        {"name": "image", "type": "IMAGE", "link": 6},
        {"name": "model", "type": "UPSCALE_MODEL", "link": None, "shape": 7},
    ],
    "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [7], "slot_index": 0}, {"name": "MASK", "type": "MASK"}],
    "title": "My upscaler",
    "properties": {"Node name for S&R": "FancyUpscaler", "cnr_id": "fancy-nodes", "settings": {"tiles": [2, 2]}},
    "widgets_values": [2.5, "lanczos", True, {"nested": [1, 2]}],
    "color": "#223",
    "bgcolor": "#335",
    "custom_key": {"kept": True},
}


def data_dir(server: ServerProcess) -> Path:
    """The server's --data-dir (the user's saved workflows live under users/default/workflows/)."""
    return Path(server.command[server.command.index("--data-dir") + 1])


def node_data(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    """The saved nodes without the fields LiteGraph recomputes (execution order), sorted by id."""
    nodes = [{key: value for key, value in node.items() if key != "order"} for node in workflow["nodes"]]
    return sorted(nodes, key=lambda node: node["id"])


def same_graph(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return node_data(a) == node_data(b) and sorted(map(list, a["links"])) == sorted(map(list, b["links"]))


def blend_factor(saved_file: Path) -> float:
    """The blend node's factor in a saved copy of the image template."""
    return next(node for node in json.loads(saved_file.read_text())["nodes"] if node["id"] == 3)["widgets_values"][0]


def with_missing_node() -> dict[str, Any]:
    workflow = json.loads((REPO_ROOT / "workflows" / "blend_scale_ui.json").read_text())
    saver = next(node for node in workflow["nodes"] if node["type"] == "SaveImage")
    saver["inputs"][0]["link"] = 7
    scaler = next(node for node in workflow["nodes"] if node["type"] == "ImageScaleBy")
    scaler["outputs"][0]["links"].append(6)
    workflow["nodes"].append(json.loads(json.dumps(MISSING_NODE)))
    workflow["links"] += [[6, 4, 0, 8, 0, "IMAGE"], [7, 8, 0, 5, 0, "IMAGE"]]
    workflow["last_node_id"], workflow["last_link_id"] = 8, 7
    return workflow


def wait_status(editor: EditorPage, text: str) -> str:
    editor.page.wait_for_function(f"{STATUS}.includes({json.dumps(text)})", timeout=20_000)
    return str(editor.evaluate(STATUS))


def click_save_and_name(editor: EditorPage, name: str, *, save_as: bool = False) -> None:
    editor.page.click("button.wf-save", modifiers=["Shift"] if save_as else [])
    editor.page.wait_for_selector("dialog.wf-dialog[open] input.wf-name")
    editor.page.fill("dialog.wf-dialog input.wf-name", name)
    editor.page.keyboard.press("Enter")


def open_panel_names(editor: EditorPage) -> list[str]:
    editor.page.click("button.wf-open-panel")
    editor.page.wait_for_selector(".wf-panel:not([hidden]) .wf-list li:not(.wf-empty)")
    return editor.page.eval_on_selector_all(".wf-list li.wf-item", "(rows) => rows.map((r) => r.dataset.name)")


DROP = """async ({ name, type, data }) => {
  const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
  const transfer = new DataTransfer();
  transfer.items.add(new File([bytes], name, { type }));
  const canvas = document.getElementById("graph");
  const box = canvas.getBoundingClientRect();
  const at = { clientX: box.left + box.width / 2, clientY: box.top + box.height / 2 };
  const fire = (kind) => canvas.dispatchEvent(
    new DragEvent(kind, { bubbles: true, cancelable: true, dataTransfer: transfer, ...at }));
  fire("dragenter");
  const accepted = !fire("dragover");  // dispatchEvent answers false when the page called preventDefault
  const highlighted = document.body.classList.contains("reelgraph-dropping");
  fire("drop");
  return { accepted, highlighted };
}"""


def drop(editor: EditorPage, name: str, type_: str, data: bytes) -> dict[str, bool]:
    """Drop a file on the canvas with real drag events carrying it in a DataTransfer."""
    payload = {"name": name, "type": type_, "data": base64.b64encode(data).decode()}
    return editor.evaluate(DROP, payload)  # type: ignore[return-value]


def fetch_output(server: ServerProcess, entry: dict[str, str]) -> bytes:
    query = urllib.parse.urlencode(entry)
    with urllib.request.urlopen(f"http://{server.address}/view?{query}", timeout=10) as response:
        return response.read()


def finished_run(server: ServerProcess, workflow: object) -> dict[str, Any] | None:
    """The history entry of the finished run that carried ``workflow`` in extra_pnginfo; None until there is one."""
    for entry in server.get("/history").values():
        if entry["prompt"][3].get("extra_pnginfo", {}).get("workflow") != workflow:
            continue
        if entry["status"].get("status_str") == "error":
            raise AssertionError(f"the media run failed: {entry['status']}")
        if entry["status"].get("completed"):
            return entry
    return None


def test_save_through_the_ui_reload_and_open(editor: EditorPage, server: ServerProcess) -> None:
    editor.evaluate("reelgraph.loadTemplate('blend_scale_ui.json')")
    editor.evaluate("() => { reelgraph.graph.getNodeById(3).widgets[0].value = 0.25; }")
    click_save_and_name(editor, "my blend")
    wait_status(editor, "saved my blend.json")
    saved_file = data_dir(server) / "users" / "default" / "workflows" / "my blend.json"
    saved = json.loads(saved_file.read_text())
    assert same_graph(saved, editor.evaluate(SERIALIZE))  # type: ignore[arg-type]
    assert blend_factor(saved_file) == 0.25
    assert editor.page.text_content(".wf-current") == "my blend.json"

    editor.evaluate("() => { reelgraph.graph.getNodeById(3).widgets[0].value = 0.75; }")
    editor.page.keyboard.press("Control+s")  # the name is remembered: Ctrl+S saves again without asking
    server.wait_for(lambda: blend_factor(saved_file) == 0.75)
    assert not editor.page.is_visible("dialog.wf-dialog[open]")
    saved = json.loads(saved_file.read_text())

    editor.page.reload()
    editor.page.wait_for_function("window.reelgraph !== undefined", timeout=10_000)
    assert editor.page.text_content(".wf-current") == "my blend.json"
    editor.evaluate("(empty) => reelgraph.loadWorkflow(empty)", EMPTY)
    assert editor.evaluate("reelgraph.graph._nodes.length") == 0
    assert "my blend.json" in open_panel_names(editor)
    editor.page.click(".wf-item[data-name='my blend.json'] button.wf-open")
    wait_status(editor, "opened my blend.json")
    assert same_graph(editor.evaluate(SERIALIZE), saved)  # type: ignore[arg-type]
    assert editor.page.is_hidden(".wf-panel")
    assert editor.errors == []


def test_a_name_clash_asks_before_overwriting(editor: EditorPage, server: ServerProcess) -> None:
    folder = data_dir(server) / "users" / "default" / "workflows"
    editor.evaluate("reelgraph.loadTemplate('blend_scale_ui.json')")
    click_save_and_name(editor, "clash")
    wait_status(editor, "saved clash.json")
    original = (folder / "clash.json").read_text()

    editor.evaluate("(empty) => reelgraph.loadWorkflow(empty)", EMPTY)
    assert editor.page.text_content(".wf-current") == "unsaved"  # another graph: Save asks for a name again
    click_save_and_name(editor, "clash.json")
    editor.page.wait_for_selector("dialog.wf-dialog[open] .wf-message:has-text('already exists')")
    assert editor.page.is_hidden("dialog.wf-dialog input.wf-name")
    editor.page.click("dialog.wf-dialog button.wf-cancel")
    wait_status(editor, "not saved")
    assert (folder / "clash.json").read_text() == original

    click_save_and_name(editor, "clash")
    editor.page.wait_for_selector("dialog.wf-dialog[open] .wf-message:has-text('already exists')")
    editor.page.click("dialog.wf-dialog button.wf-ok")
    wait_status(editor, "saved clash.json")
    assert json.loads((folder / "clash.json").read_text())["nodes"] == []

    click_save_and_name(editor, "newer", save_as=True)  # Shift+click: save as, though the graph has a name
    wait_status(editor, "saved newer.json")
    names = open_panel_names(editor)
    assert names.index("newer.json") < names.index("clash.json")  # newest first
    editor.page.click(".wf-item[data-name='newer.json'] button.wf-delete")
    editor.page.wait_for_selector("dialog.wf-dialog[open] .wf-message:has-text('Delete')")
    editor.page.click("dialog.wf-dialog button.wf-ok")
    wait_status(editor, "deleted newer.json")
    assert (
        not (folder / "newer.json").exists() and editor.page.query_selector(".wf-item[data-name='newer.json']") is None
    )
    # Chromium logs each refused request; the two 409s (the clash asked about, then cancelled and overwritten) are all
    assert [error for error in editor.errors if "409 (Conflict)" not in error] == []
    assert len(editor.errors) == 2


def test_a_bad_name_is_refused_with_a_message(editor: EditorPage, server: ServerProcess) -> None:
    click_save_and_name(editor, "../outside")
    status = wait_status(editor, "not a usable name")
    assert "../outside" in status
    editor.page.keyboard.press("Escape")  # the dialog asks again; Escape gives up
    assert not list(data_dir(server).rglob("outside.json"))


def test_download_then_upload_restores_the_graph(editor: EditorPage, tmp_path: Path) -> None:
    editor.evaluate("reelgraph.loadTemplate('blend_scale_ui.json')")
    with editor.page.expect_download() as download_info:
        editor.page.click("button.wf-download")
    download = download_info.value
    assert download.suggested_filename == "workflow.json"
    path = tmp_path / "downloaded.json"
    download.save_as(path)
    downloaded = json.loads(path.read_text())
    assert downloaded == editor.evaluate(SERIALIZE)  # ComfyUI's UI format: exactly graph.serialize()
    assert {"nodes", "links", "groups", "version"} <= set(downloaded)

    editor.evaluate("(empty) => reelgraph.loadWorkflow(empty)", EMPTY)
    editor.page.set_input_files("input.wf-upload", str(path))
    wait_status(editor, "opened downloaded.json")
    assert same_graph(editor.evaluate(SERIALIZE), downloaded)  # type: ignore[arg-type]

    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    before = editor.evaluate(SERIALIZE)
    editor.page.set_input_files("input.wf-upload", str(broken))
    assert "broken.json is not valid JSON" in wait_status(editor, "is not valid JSON")
    assert editor.evaluate(SERIALIZE) == before
    assert editor.errors == []


def test_dropping_media_with_an_embedded_workflow_restores_it(editor: EditorPage, server: ServerProcess) -> None:
    editor.evaluate("(workflow) => reelgraph.loadWorkflow(workflow)", MEDIA_WORKFLOW)
    queued = editor.evaluate(SERIALIZE)
    editor.page.keyboard.press("Control+Enter")
    server.wait_for(lambda: finished_run(server, queued) is not None)
    outputs = finished_run(server, queued)["outputs"]  # type: ignore[index]
    png = fetch_output(server, outputs["2"]["images"][0])
    mp4 = fetch_output(server, outputs["5"]["images"][0])
    assert png.startswith(b"\x89PNG") and mp4[4:8] == b"ftyp"

    for name, kind, data in (("still.png", "image/png", png), ("clip.mp4", "video/mp4", mp4)):
        editor.evaluate("reelgraph.loadTemplate('blend_scale_ui.json')")
        assert not same_graph(editor.evaluate(SERIALIZE), queued)  # type: ignore[arg-type]
        events = drop(editor, name, kind, data)
        assert events == {"accepted": True, "highlighted": True}
        wait_status(editor, f"opened {name}")
        assert same_graph(editor.evaluate(SERIALIZE), queued), name  # type: ignore[arg-type]
        assert not editor.evaluate("document.body.classList.contains('reelgraph-dropping')")
    assert editor.errors == []


def test_dropping_a_png_without_a_workflow_leaves_the_graph(editor: EditorPage) -> None:
    editor.evaluate("reelgraph.loadTemplate('blend_scale_ui.json')")
    before = editor.evaluate(SERIALIZE)
    plain = io.BytesIO()
    Image.new("RGB", (8, 8), (0, 128, 0)).save(plain, format="PNG")
    drop(editor, "plain.png", "image/png", plain.getvalue())
    status = wait_status(editor, "carries no workflow")
    assert status == "plain.png carries no workflow"
    assert "error" in editor.evaluate("document.getElementById('status').className")
    assert editor.evaluate(SERIALIZE) == before

    drop(editor, "notes.txt", "text/plain", b"hello")
    assert "notes.txt" in wait_status(editor, "is not a workflow")
    drop(editor, "fake.png", "image/png", b"not an image at all")
    assert "fake.png" in wait_status(editor, "unrecognised")
    assert editor.evaluate(SERIALIZE) == before


def test_dropping_an_api_prompt_lays_its_nodes_out(editor: EditorPage) -> None:
    prompt = json.loads((REPO_ROOT / "workflows" / "invert_crop_api.json").read_text())
    prompt["5"] = {"class_type": "PrimitiveInt", "inputs": {"value": 96}, "_meta": {"title": "Crop width"}}
    prompt["3"]["inputs"]["width"] = ["5", 0]  # a link into an input that is a widget too
    drop(editor, "invert_crop_api.json", "application/json", json.dumps(prompt).encode())
    wait_status(editor, "opened invert_crop_api.json")
    output = editor.evaluate("reelgraph.graphToPrompt(reelgraph.graph).output")
    assert output == prompt
    boxes = editor.evaluate("reelgraph.graph._nodes.map((n) => [n.id, n.pos[0], n.pos[1], n.size[0], n.size[1]])")
    for i, (_, x, y, w, h) in enumerate(boxes):  # type: ignore[arg-type]
        for _, x2, y2, w2, h2 in boxes[i + 1 :]:  # type: ignore[index]
            assert x + w <= x2 or x2 + w2 <= x or y + h <= y2 or y2 + h2 <= y, "laid-out nodes overlap"
    left = {node_id: x for node_id, x, *_ in boxes}  # type: ignore[union-attr]
    assert left[1] == left[5] < left[2] < left[3] < left[4]  # columns follow the links, sources first

    unknown = {
        "1": {"class_type": "MysteryFilter", "inputs": {"strength": 0.5, "mode": "soft"}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "never"}},
    }
    drop(editor, "unknown_api.json", "application/json", json.dumps(unknown).encode())
    assert "not installed: MysteryFilter" in wait_status(editor, "opened unknown_api.json")
    missing, data = editor.evaluate(  # type: ignore[misc]
        "(() => { const n = reelgraph.graph.getNodeById(1); return [n.constructor.missing, n.serialize()]; })()"
    )
    assert missing and data["widgets_values"] == [0.5, "soft"]
    assert data["outputs"][0]["type"] == "IMAGE" and len(data["outputs"][0]["links"]) == 1

    drop(editor, "invert_crop_api.json", "application/json", json.dumps(prompt).encode())
    wait_status(editor, "opened invert_crop_api.json")
    editor.page.keyboard.press("Control+Enter")  # the converted graph runs
    wait_status(editor, "done")
    assert editor.errors == []


def test_an_unknown_node_type_is_a_placeholder_that_keeps_its_data(editor: EditorPage, tmp_path: Path) -> None:
    workflow = with_missing_node()
    path = tmp_path / "with_missing.json"
    path.write_text(json.dumps(workflow))
    editor.page.set_input_files("input.wf-upload", str(path))
    status = wait_status(editor, "opened with_missing.json")
    assert "not installed: FancyUpscaler" in status

    node = editor.evaluate(
        """() => {
      const node = reelgraph.graph.getNodeById(8);
      return { missing: !!node.constructor.missing, title: node.getTitle(), links: node.inputs.map((i) => i.link),
               stroke: node.strokeStyles.missing?.call(node).color, searchable: !node.constructor.skip_list };
    }"""
    )
    assert node == {
        "missing": True,
        "title": "My upscaler (FancyUpscaler not installed)",
        "links": [6, None],
        "stroke": "#a33",
        "searchable": False,
    }
    saved = editor.evaluate(SERIALIZE)
    assert sorted(map(list, saved["links"])) == sorted(workflow["links"])  # type: ignore[index]
    saved_node = next(n for n in saved["nodes"] if n["id"] == 8)  # type: ignore[index]
    assert {k: v for k, v in saved_node.items() if k != "order"} == {
        k: v for k, v in MISSING_NODE.items() if k != "order"
    }

    editor.page.keyboard.press("Control+Enter")
    status = wait_status(editor, "cannot queue")
    assert "#8 FancyUpscaler" in status and '"My upscaler"' in status
    answer = editor.evaluate("reelgraph.queue()")
    assert "FancyUpscaler" in answer["error"]["message"]  # type: ignore[index]

    # Moved, then reloaded: the autosaved graph comes back with the placeholder and all of its data.
    editor.evaluate("() => { reelgraph.graph.getNodeById(8).pos = [1200, 500]; }")
    editor.page.mouse.click(5, 300)
    editor.page.wait_for_function(
        "JSON.parse(localStorage.getItem('reelgraph.workflow')).nodes.find((n) => n.id === 8).pos[0] === 1200"
    )
    editor.page.reload()
    editor.page.wait_for_function("window.reelgraph !== undefined", timeout=10_000)
    assert editor.evaluate("!!reelgraph.graph.getNodeById(8).constructor.missing")
    reloaded = next(n for n in editor.evaluate(SERIALIZE)["nodes"] if n["id"] == 8)  # type: ignore[index]
    assert reloaded["pos"] == [1200, 500]
    assert {k: v for k, v in reloaded.items() if k not in ("order", "pos")} == {
        k: v for k, v in MISSING_NODE.items() if k not in ("order", "pos")
    }
    assert editor.errors == []
