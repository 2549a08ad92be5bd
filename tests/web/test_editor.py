"""The browser editor against the real server: node types, templates, queueing, errors and autosave."""

from __future__ import annotations

from app.config import REPO_ROOT
from tests.server.process import ServerProcess
from tests.web.conftest import EditorPage

SCREENSHOT = REPO_ROOT / "bench" / "results" / "editor.png"

NODE_STATE = """(id) => {
  const node = reelgraph.graph.getNodeById(id);
  return {
    running: node.run.running,
    error: node.run.error,
    hasErrors: !!node.has_errors,
    images: node.run.images.map((image) => ({src: image.src, width: image.naturalWidth})),
  };
}"""


def test_the_page_loads_without_console_errors(editor: EditorPage) -> None:
    assert editor.evaluate("document.title") == "Reelgraph"
    assert editor.evaluate("reelgraph.graph._nodes.length") > 0  # the default template opens on a first visit
    editor.page.wait_for_timeout(300)
    assert editor.errors == []


def test_node_types_come_from_object_info(editor: EditorPage, server: ServerProcess) -> None:
    info = server.get("/object_info")
    registered = editor.evaluate("Object.keys(reelgraph.LiteGraph.registered_node_types)")
    assert set(info) <= set(registered)
    sampler = editor.evaluate(
        """() => {
      const node = reelgraph.LiteGraph.createNode("KSampler");
      return {
        inputs: node.inputs.map((i) => [i.name, i.type]),
        widgets: node.widgets.map((w) => [w.name, w.type, w.value]),
        cfg: reelgraph.LiteGraph.createNode("KSampler").widgets.find((w) => w.name === "cfg").options,
        category: node.constructor.category,
      };
    }"""
    )
    assert ["model", "MODEL"] in sampler["inputs"] and ["latent_image", "LATENT"] in sampler["inputs"]
    names = [widget[0] for widget in sampler["widgets"]]
    assert names[:3] == ["seed", "control_after_generate", "steps"]
    assert ["sampler_name", "combo", "euler"] in sampler["widgets"]
    assert sampler["cfg"]["min"] == 0 and sampler["cfg"]["max"] == 100 and sampler["cfg"]["step2"] == 0.1
    assert sampler["category"] == "sampling"


def test_the_image_template_runs_and_shows_its_output(editor: EditorPage) -> None:
    editor.page.select_option("#templates", "blend_scale_ui.json")
    editor.page.wait_for_function("reelgraph.graph._nodes.some((n) => n.title === 'Red')")
    output_id = editor.evaluate("reelgraph.graph._nodes.find((n) => n.constructor.nodeInfo?.output_node).id")
    prompt = editor.evaluate("reelgraph.graphToPrompt(reelgraph.graph).output")
    assert prompt["3"]["inputs"]["image1"] == ["1", 0] and prompt["3"]["inputs"]["blend_mode"] == "multiply"
    editor.page.keyboard.press("Control+Enter")
    editor.page.wait_for_function(
        "(id) => reelgraph.graph.getNodeById(id).run.images.some((i) => i.complete && i.naturalWidth > 0)",
        arg=output_id,
        timeout=30_000,
    )
    state = editor.evaluate(NODE_STATE, output_id)
    assert "/view?" in state["images"][0]["src"] and state["images"][0]["width"] > 0
    editor.page.wait_for_function("document.getElementById('status').textContent === 'done'")
    assert not state["hasErrors"] and editor.errors == []
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    editor.page.screenshot(path=str(SCREENSHOT))


def test_a_validation_error_marks_its_node(editor: EditorPage) -> None:
    editor.evaluate("reelgraph.loadTemplate('blend_scale_ui.json')")
    editor.evaluate("() => { reelgraph.graph.getNodeById(1).widgets.find((w) => w.name === 'width').value = 0; }")
    answer = editor.evaluate("reelgraph.queue()")
    assert "1" in answer["node_errors"]
    state = editor.evaluate(NODE_STATE, 1)
    assert state["hasErrors"] and "width" in state["error"]
    assert editor.evaluate(NODE_STATE, 2)["error"] is None
    assert "error" in editor.evaluate("document.getElementById('status').className")


def test_a_reload_keeps_the_graph(editor: EditorPage) -> None:
    editor.evaluate("reelgraph.loadTemplate('invert_crop_api.json')")
    editor.evaluate(
        """() => {
      const node = reelgraph.LiteGraph.createNode("EmptyImage");
      node.pos = [900, 500];
      node.title = "Added";
      reelgraph.graph.add(node);
      node.widgets[0].value = 77;
    }"""
    )
    editor.page.mouse.click(5, 300)  # a user action: the graph is saved
    before = editor.evaluate("reelgraph.graph.serialize()")
    editor.page.wait_for_timeout(300)
    editor.page.reload()
    editor.page.wait_for_function("window.reelgraph !== undefined")
    after = editor.evaluate("reelgraph.graph.serialize()")
    assert [n["type"] for n in after["nodes"]] == [n["type"] for n in before["nodes"]]
    added = next(node for node in after["nodes"] if node.get("title") == "Added")
    assert added["widgets_values"][0] == 77 and len(after["links"]) == len(before["links"])
    assert editor.errors == []


def test_progress_and_a_runtime_error_are_shown_on_their_nodes(editor: EditorPage) -> None:
    _, slow_id, fail_id, _ = editor.build_chain(
        ("EmptyImage", {"width": 8, "height": 8}),
        ("SlowPass", {"steps": 40, "seconds": 0.05}),
        ("FailWith", {"message": "the test node failed on purpose"}),
        ("SaveImage", {}),
    )
    answer = editor.evaluate("reelgraph.queue()")
    assert answer["node_errors"] == {}
    editor.page.wait_for_function(
        "(id) => { const run = reelgraph.graph.getNodeById(id).run; return run.running && run.progress?.value > 0; }",
        arg=slow_id,
        timeout=15_000,
    )
    editor.page.wait_for_function(
        "(id) => reelgraph.graph.getNodeById(id).run.error !== null", arg=fail_id, timeout=15_000
    )
    state = editor.evaluate(NODE_STATE, fail_id)
    assert state["hasErrors"] and "the test node failed on purpose" in state["error"]
    assert not editor.evaluate(NODE_STATE, slow_id)["running"]
    assert "failed" in editor.evaluate("document.getElementById('status').textContent")


def test_zoomed_far_out_nodes_are_drawn_as_boxes(editor: EditorPage) -> None:
    editor.evaluate("reelgraph.loadTemplate('blend_scale_ui.json')")
    drawn = editor.evaluate(
        """() => {
      const { canvas, graph } = reelgraph;
      const counts = {};
      const widgets = canvas.drawNodeWidgets.bind(canvas);
      canvas.drawNodeWidgets = (...args) => { counts.widgets += 1; return widgets(...args); };
      graph.getNodeById(3).setError("boom");
      for (const scale of [1, 0.1]) {
        counts.widgets = 0;
        canvas.ds.scale = scale;
        canvas.draw(true, true);
        counts[scale] = counts.widgets;
      }
      const [x, y] = canvas.ds.convertOffsetToCanvas(graph.getNodeById(3).pos);
      const pixel = canvas.ctx.getImageData(x + 1, y - 3, 1, 1).data;
      return { full: counts[1], minimal: counts[0.1], outline: [...pixel.slice(0, 3)] };
    }"""
    )
    assert drawn["full"] > 0 and drawn["minimal"] == 0
    assert drawn["outline"] == [255, 85, 85]  # the failed node keeps its red outline


def test_runs_queued_by_others_are_not_drawn_on_this_graph(editor: EditorPage, server: ServerProcess) -> None:
    """A script's prompt (no client_id) is broadcast to every page; its node ids must not light up this graph."""
    editor.evaluate("reelgraph.loadTemplate('blend_scale_ui.json')")
    editor.evaluate(
        """() => { window.executedFor = [];
      reelgraph.on("message", (type, data) => type === "executed" && executedFor.push(data.prompt_id)); }"""
    )
    foreign = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 32, "height": 32, "batch_size": 1, "color": 77}},
        "5": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
    }
    prompt_id = server.post("/prompt", {"prompt": foreign})["prompt_id"]
    server.wait_for(lambda: prompt_id in server.get(f"/history/{prompt_id}"))
    ours = editor.evaluate("reelgraph.queue()")["prompt_id"]
    # One socket delivers in order: once our run's output is shown, the foreign run's events were seen before it.
    editor.page.wait_for_function("reelgraph.graph.getNodeById(5).run.images.length > 0", timeout=30_000)
    assert editor.evaluate("executedFor") == [ours]
    assert "type=output" in editor.evaluate("reelgraph.graph.getNodeById(5).run.images[0].src")
    assert editor.errors == []
