"""Editing in the canvas with real mouse and keyboard events: search box, typed links, undo, shortcuts, reroutes."""

from __future__ import annotations

import json
from typing import Any

from app.config import REPO_ROOT
from tests.server.process import ServerProcess
from tests.web.conftest import EditorPage

TEMPLATE = json.loads((REPO_ROOT / "workflows" / "blend_scale_ui.json").read_text())
WAIT_MS = 15_000

EMPTY_GRAPH = """() => {
  reelgraph.loadWorkflow({ nodes: [], links: [], version: 0.4 });
  reelgraph.canvas.ds.scale = 1;
  reelgraph.canvas.ds.offset = [0, 0];
  reelgraph.canvas.draw(true, true); // now: hit tests use the node areas litegraph updates when it draws a frame
}"""

TEMPLATE_AT_SCALE_ONE = """(workflow) => {
  reelgraph.loadWorkflow(workflow);
  reelgraph.canvas.ds.scale = 1;
  reelgraph.canvas.ds.offset = [20, 20];
  reelgraph.canvas.draw(true, true); // now: hit tests use the node areas litegraph updates when it draws a frame
}"""

TO_CLIENT = """([x, y]) => {
  const canvas = reelgraph.canvas;
  const [cx, cy] = canvas.ds.convertOffsetToCanvas([x, y]);
  const rect = canvas.canvas.getBoundingClientRect();
  return [rect.left + cx, rect.top + cy];
}"""

SLOT = """([id, kind, index]) => {
  const node = reelgraph.graph.getNodeById(id);
  return Array.from(kind === "input" ? node.getInputPos(index) : node.getOutputPos(index));
}"""

WIDGET_CENTRE = """([id, name]) => {
  const node = reelgraph.graph.getNodeById(id);
  const widget = node.widgets.find((w) => w.name === name);
  const top = widget.last_y ?? widget.y;
  return [node.pos[0] + node.size[0] / 2, node.pos[1] + top + reelgraph.LiteGraph.NODE_WIDGET_HEIGHT / 2];
}"""

LINKS = """() => [...reelgraph.graph._links.values()]
  .map((l) => [l.origin_id, l.origin_slot, l.target_id, l.target_slot])"""

PIXEL = """([x, y]) => {
  const canvas = reelgraph.canvas;
  canvas.draw(true, true);
  const [cx, cy] = canvas.ds.convertOffsetToCanvas([x, y]);
  return Array.from(canvas.ctx.getImageData(Math.round(cx), Math.round(cy), 1, 1).data);
}"""


class Canvas:
    """The editor's canvas driven by the real mouse and keyboard, at points computed from graph coordinates."""

    def __init__(self, editor: EditorPage) -> None:
        self.editor = editor
        self.page = editor.page
        self.mouse = editor.page.mouse
        self.keyboard = editor.page.keyboard

    def js(self, script: str, arg: Any = None) -> Any:
        return self.editor.evaluate(script, arg)

    def client(self, x: float, y: float) -> tuple[float, float]:
        cx, cy = self.js(TO_CLIENT, [x, y])
        return cx, cy

    def node(self, node_id: int, dx: float, dy: float) -> tuple[float, float]:
        """A client point relative to a node's position (negative dy: in the title bar)."""
        x, y = self.js("(id) => Array.from(reelgraph.graph.getNodeById(id).pos)", node_id)
        return self.client(x + dx, y + dy)

    def slot(self, node_id: int, kind: str, index: int) -> tuple[float, float]:
        return self.client(*self.js(SLOT, [node_id, kind, index]))

    def drag(self, start: tuple[float, float], end: tuple[float, float]) -> None:
        self.mouse.move(*start)
        self.mouse.down()
        self.mouse.move(*end, steps=12)
        self.mouse.up()

    def link(self, source: int, output: int, target: int, input_index: int) -> None:
        """Drag a new link from an output socket to an input socket."""
        self.drag(self.slot(source, "output", output), self.slot(target, "input", input_index))

    def node_ids(self) -> list[int]:
        return self.js("() => reelgraph.graph._nodes.map((n) => n.id)")

    def history_index(self) -> int:
        return self.js("() => reelgraph.history.index")

    def wait_history(self, index: int) -> None:
        self.page.wait_for_function("(i) => reelgraph.history.index === i", arg=index, timeout=WAIT_MS)

    def choose(self, query: str, node_type: str, by: str = "keys") -> int:
        """In the open search box: type `query`, then pick `node_type` with the arrow keys and Enter, or a click."""
        box = self.page.locator(".rg-search")
        box.wait_for(state="visible", timeout=WAIT_MS)
        self.page.locator(".rg-search input").type(query)
        item = box.locator(f'li[data-type="{node_type}"]')
        item.wait_for(timeout=WAIT_MS)
        before = set(self.node_ids())
        if by == "click":
            item.click()
        else:
            for _ in range(int(item.get_attribute("data-index") or 0)):
                self.keyboard.press("ArrowDown")
            assert "active" in (item.get_attribute("class") or "")
            self.keyboard.press("Enter")
        assert box.is_hidden()
        self.page.wait_for_function("(n) => reelgraph.graph._nodes.length === n", arg=len(before) + 1)
        (added,) = set(self.node_ids()) - before
        assert self.js("(id) => reelgraph.graph.getNodeById(id).type", added) == node_type
        return added

    def add(self, x: float, y: float, query: str, node_type: str, by: str = "keys") -> int:
        """Double-click the empty canvas at graph point (x, y) and add `node_type` from the search box."""
        self.mouse.dblclick(*self.client(x, y))
        return self.choose(query, node_type, by)

    def widget(self, node_id: int, name: str) -> tuple[float, float]:
        return self.client(*self.js(WIDGET_CENTRE, [node_id, name]))

    def type_value(self, node_id: int, name: str, value: str) -> None:
        """Click a number or text widget and type its new value into litegraph's prompt."""
        self.mouse.click(*self.widget(node_id, name))
        field = self.page.locator(".graphdialog .value")
        field.wait_for(timeout=WAIT_MS)
        field.fill(value)
        field.press("Enter")
        field.wait_for(state="detached", timeout=WAIT_MS)

    def pick_combo(self, node_id: int, name: str, value: str) -> None:
        """Click a combo widget and choose `value` from its menu."""
        self.mouse.click(*self.widget(node_id, name))
        self.page.locator(".litecontextmenu .litemenu-entry", has_text=value).first.click()

    def value(self, node_id: int, name: str) -> Any:
        script = "([id, name]) => reelgraph.graph.getNodeById(id).widgets.find((w) => w.name === name).value"
        return self.js(script, [node_id, name])


def template_prompt(editor: EditorPage) -> dict[str, Any]:
    """The API prompt of the shipped template, from a graph that is not on the canvas."""
    script = """(workflow) => {
      const graph = new reelgraph.lib.LGraph();
      graph.configure(workflow);
      return reelgraph.graphToPrompt(graph).output;
    }"""
    return editor.evaluate(script, TEMPLATE)


def shape(prompt: dict[str, Any]) -> dict[str, tuple[str, dict[str, Any]]]:
    """Each node's class type and linked inputs."""
    return {
        node_id: (node["class_type"], {k: v for k, v in node["inputs"].items() if isinstance(v, list)})
        for node_id, node in prompt.items()
    }


def test_the_image_chain_is_built_with_search_and_links_and_runs(editor: EditorPage, server: ServerProcess) -> None:
    canvas = Canvas(editor)
    canvas.js(EMPTY_GRAPH)
    assert canvas.node_ids() == []
    red = canvas.add(30, 60, "empty image", "EmptyImage")
    gray = canvas.add(30, 330, "empty", "EmptyImage")
    blend = canvas.add(400, 160, "blend", "ImageBlend", by="click")
    scale = canvas.add(740, 160, "upscaling by", "ImageScaleBy")  # the category matches "upscaling"
    canvas.link(red, 0, blend, 0)
    canvas.link(gray, 0, blend, 1)
    canvas.link(blend, 0, scale, 0)

    # a link released on empty canvas offers only node types with an IMAGE input, and the pick is linked to it
    canvas.drag(canvas.slot(scale, "output", 0), canvas.client(1080, 200))
    box = editor.page.locator(".rg-search")
    box.wait_for(state="visible", timeout=WAIT_MS)
    assert "IMAGE" in box.locator(".rg-search-title").inner_text()
    offered = box.locator("li[data-type]").evaluate_all("(items) => items.map((i) => i.dataset.type)")
    assert "SaveImage" in offered and "EmptyImage" not in offered and "EmptyHunyuanLatentVideo" not in offered
    save = canvas.choose("save image", "SaveImage")

    for node_id in (red, gray):
        canvas.type_value(node_id, "width", "64")
        canvas.type_value(node_id, "height", "48")
    canvas.type_value(red, "color", str(0xFF0000))
    canvas.pick_combo(blend, "blend_mode", "multiply")
    canvas.pick_combo(scale, "upscale_method", "bilinear")
    canvas.type_value(scale, "scale_by", "0.5")
    canvas.type_value(save, "filename_prefix", "examples/built")
    assert canvas.value(red, "width") == 64 and canvas.value(gray, "height") == 48
    assert canvas.value(blend, "blend_mode") == "multiply" and canvas.value(scale, "scale_by") == 0.5

    editor.evaluate(
        """() => {
      window.seenRunning = [];
      reelgraph.on("queued", (answer) => { window.queued = answer; });
      reelgraph.on("message", (type, data) => {
        const node = type === "executing" && data.node != null && reelgraph.graph.getNodeById(Number(data.node));
        if (node) seenRunning.push([node.id, node.run.running]);
      });
    }"""
    )
    editor.page.mouse.click(*canvas.client(700, 600))  # focus the canvas, on nothing
    editor.page.keyboard.press("Control+Enter")
    editor.page.wait_for_function(
        "(id) => reelgraph.graph.getNodeById(id).run.images.some((i) => i.complete && i.naturalWidth > 0)",
        arg=save,
        timeout=60_000,
    )
    image = editor.evaluate(
        "(id) => { const i = reelgraph.graph.getNodeById(id).run.images[0]; return [i.naturalWidth, i.naturalHeight] }",
        save,
    )
    assert image == [32, 24]  # 64 x 48 halved by ImageScaleBy
    editor.page.wait_for_function("document.getElementById('status').textContent === 'done'", timeout=WAIT_MS)
    assert [save, True] in editor.evaluate("seenRunning")  # the running node was highlighted

    prompt_id = editor.evaluate("window.queued.prompt_id")
    queued = server.get(f"/history/{prompt_id}")[prompt_id]["prompt"][2]
    assert shape(queued) == shape(template_prompt(editor))
    assert queued[str(blend)]["inputs"]["blend_mode"] == "multiply"
    assert queued[str(scale)]["inputs"]["scale_by"] == 0.5
    assert queued[str(save)]["inputs"]["filename_prefix"] == "examples/built"
    assert editor.errors == []


def test_an_incompatible_link_is_refused_with_its_reason(editor: EditorPage) -> None:
    canvas = Canvas(editor)
    canvas.js(EMPTY_GRAPH)
    latent = canvas.add(30, 60, "hunyuan latent", "EmptyHunyuanLatentVideo")
    blend = canvas.add(420, 60, "image blend", "ImageBlend")
    canvas.link(latent, 0, blend, 0)
    assert canvas.js(LINKS) == []
    reason = "Image Blend.image1 takes IMAGE, not LATENT"
    editor.page.wait_for_function(
        "(text) => document.getElementById('status').textContent.includes(text)", arg=reason, timeout=WAIT_MS
    )
    assert editor.page.locator(".rg-toast", has_text=reason).is_visible()
    assert "error" in (editor.page.locator("#status").get_attribute("class") or "")

    # dropped on the node's body: no input takes LATENT at all
    canvas.drag(canvas.slot(latent, "output", 0), canvas.node(blend, 60, 90))
    assert canvas.js(LINKS) == []
    assert "Image Blend has no input that takes LATENT" in editor.page.locator("#status").inner_text()

    # a compatible drop links
    image = canvas.add(30, 300, "empty image", "EmptyImage")
    canvas.link(image, 0, blend, 0)
    assert canvas.js(LINKS) == [[image, 0, blend, 0]]


def test_undo_and_redo_step_through_one_user_action_at_a_time(editor: EditorPage) -> None:
    canvas = Canvas(editor)
    canvas.js(EMPTY_GRAPH)
    assert canvas.history_index() == 0
    node = canvas.add(100, 100, "empty image", "EmptyImage")
    canvas.wait_history(1)
    canvas.drag(canvas.node(node, 40, -10), canvas.node(node, 240, 90))  # by the title bar
    canvas.wait_history(2)
    moved = canvas.js("(id) => Array.from(reelgraph.graph.getNodeById(id).pos)", node)
    assert moved == [300, 200]
    canvas.type_value(node, "width", "100")
    canvas.wait_history(3)
    editor.page.mouse.click(*canvas.node(node, 40, -10))  # select it: no step
    editor.page.keyboard.press("Delete")
    canvas.wait_history(4)
    assert canvas.node_ids() == []

    def state() -> Any:
        return canvas.js(
            """(id) => {
          const node = reelgraph.graph.getNodeById(id);
          return node && [Array.from(node.pos), node.widgets.find((w) => w.name === "width").value];
        }""",
            node,
        )

    editor.page.keyboard.press("Control+z")
    assert state() == [[300, 200], 100]
    editor.page.keyboard.press("Control+z")
    assert state() == [[300, 200], 512]
    editor.page.keyboard.press("Control+z")
    assert state() == [[100, 100], 512]
    editor.page.keyboard.press("Control+z")
    assert state() is None
    editor.page.keyboard.press("Control+z")  # nothing left to undo
    assert state() is None and canvas.history_index() == 0
    editor.page.keyboard.press("Control+y")
    assert state() == [[100, 100], 512]
    editor.page.keyboard.press("Control+y")
    assert state() == [[300, 200], 512]
    editor.page.keyboard.press("Control+Shift+z")
    assert state() == [[300, 200], 100]
    editor.page.keyboard.press("Control+y")
    assert state() is None
    assert editor.errors == []


def test_a_drag_of_a_box_selection_is_one_undo_step_and_autosave_follows_undo(editor: EditorPage) -> None:
    canvas = Canvas(editor)
    canvas.js(TEMPLATE_AT_SCALE_ONE, TEMPLATE)
    start = canvas.js("() => reelgraph.graph._nodes.map((n) => [n.id, Array.from(n.pos)])")
    # Ctrl+drag on empty canvas draws a selection box around the two EmptyImage nodes (at x 40, y 80 and 300)
    editor.page.keyboard.down("Control")
    canvas.drag(canvas.client(20, 30), canvas.client(380, 460))
    editor.page.keyboard.up("Control")
    selected = canvas.js("() => [...reelgraph.canvas.selectedItems].map((i) => i.id).sort()")
    assert selected == [1, 2]
    index = canvas.history_index()
    canvas.drag(canvas.node(1, 60, -10), canvas.node(1, 60, 140))
    canvas.wait_history(index + 1)
    positions = dict(canvas.js("() => reelgraph.graph._nodes.map((n) => [n.id, Array.from(n.pos)])"))
    assert positions[1] == [40, 230] and positions[2] == [40, 450]
    editor.page.keyboard.press("Control+z")
    assert canvas.js("() => reelgraph.graph._nodes.map((n) => [n.id, Array.from(n.pos)])") == start
    editor.page.wait_for_function(
        "() => JSON.parse(localStorage.getItem('reelgraph.workflow')).nodes.find((n) => n.id === 1).pos[1] === 80",
        timeout=WAIT_MS,
    )


def test_copy_paste_keeps_the_links_between_the_pasted_nodes(editor: EditorPage) -> None:
    canvas = Canvas(editor)
    canvas.js(TEMPLATE_AT_SCALE_ONE, TEMPLATE)
    editor.page.mouse.click(*canvas.node(1, 60, -10))
    for node_id in (2, 3):
        editor.page.keyboard.down("Shift")
        editor.page.mouse.click(*canvas.node(node_id, 60, -10))
        editor.page.keyboard.up("Shift")
    assert canvas.js("() => [...reelgraph.canvas.selectedItems].map((i) => i.id).sort()") == [1, 2, 3]
    editor.page.keyboard.press("Control+c")
    editor.page.mouse.move(*canvas.client(500, 600))
    index = canvas.history_index()
    editor.page.keyboard.press("Control+v")
    editor.page.wait_for_function("() => reelgraph.graph._nodes.length === 10", timeout=WAIT_MS)
    canvas.wait_history(index + 1)  # the paste is one step
    pasted = canvas.js(
        """() => {
      const ids = [...reelgraph.canvas.selectedItems].map((n) => n.id);
      const types = Object.fromEntries(ids.map((id) => [id, reelgraph.graph.getNodeById(id).type]));
      const links = [...reelgraph.graph._links.values()]
        .filter((l) => ids.includes(l.target_id))
        .map((l) => [types[l.origin_id] ?? "outside", l.origin_slot, types[l.target_id], l.target_slot]);
      return { types: Object.values(types).sort(), links: links.sort() };
    }"""
    )
    assert pasted["types"] == ["EmptyImage", "EmptyImage", "ImageBlend"]
    assert pasted["links"] == [["EmptyImage", 0, "ImageBlend", 0], ["EmptyImage", 0, "ImageBlend", 1]]
    assert len(canvas.js(LINKS)) == 7
    editor.page.keyboard.press("Control+z")
    assert len(canvas.node_ids()) == 7 and len(canvas.js(LINKS)) == 5


def test_ctrl_g_groups_the_selection(editor: EditorPage) -> None:
    canvas = Canvas(editor)
    canvas.js(TEMPLATE_AT_SCALE_ONE, TEMPLATE)
    editor.page.mouse.click(*canvas.node(3, 60, -10))
    editor.page.keyboard.down("Shift")
    editor.page.mouse.click(*canvas.node(4, 60, -10))
    editor.page.keyboard.up("Shift")
    editor.page.keyboard.press("Control+g")
    group = canvas.js(
        """() => {
      const [group] = reelgraph.graph._groups;
      const inside = (n) => {
        const [x, y, w, h] = n.boundingRect;
        const [gx, gy, gw, gh] = group._bounding;
        return x >= gx && y >= gy && x + w <= gx + gw && y + h <= gy + gh;
      };
      return {
        count: reelgraph.graph._groups.length,
        children: [...group._children].map((n) => n.id).sort(),
        inside: [3, 4].every((id) => inside(reelgraph.graph.getNodeById(id))),
      };
    }"""
    )
    assert group == {"count": 1, "children": [3, 4], "inside": True}
    assert len(canvas.js("() => reelgraph.graph.serialize().groups")) == 1


def test_ctrl_b_bypasses_and_ctrl_m_mutes_and_both_are_drawn(editor: EditorPage) -> None:
    canvas = Canvas(editor)
    canvas.js(TEMPLATE_AT_SCALE_ONE, TEMPLATE)
    body = canvas.js(
        "() => { const n = reelgraph.graph.getNodeById(4); return [n.pos[0] + 6, n.pos[1] + n.size[1] - 6]; }"
    )
    normal = canvas.js(PIXEL, body)
    editor.page.mouse.click(*canvas.node(4, 60, -10))
    # keys typed into a text field (here litegraph's value prompt) are no shortcuts
    editor.page.mouse.click(*canvas.widget(4, "scale_by"))
    field = editor.page.locator(".graphdialog .value")
    field.press("Control+b")
    field.press("Backspace")
    assert field.input_value() == "" and canvas.js("() => reelgraph.graph.getNodeById(4)?.mode") == 0
    field.press("Escape")
    assert canvas.js("() => [...reelgraph.canvas.selectedItems].map((n) => n.id)") == [4]
    editor.page.keyboard.press("Control+b")
    assert canvas.js("() => reelgraph.graph.getNodeById(4).mode") == 4
    bypassed = canvas.js(PIXEL, body)
    assert bypassed[0] > normal[0] + 20 and bypassed[2] > normal[2] + 20  # tinted purple
    prompt = canvas.js("() => reelgraph.graphToPrompt(reelgraph.graph).output")
    assert "4" not in prompt and prompt["5"]["inputs"]["images"] == ["3", 0]  # passed through

    editor.page.keyboard.press("Control+m")
    assert canvas.js("() => reelgraph.graph.getNodeById(4).mode") == 2
    muted = canvas.js(PIXEL, body)
    assert sum(muted[:3]) < sum(normal[:3])  # faded towards the background
    assert "4" not in canvas.js("() => reelgraph.graphToPrompt(reelgraph.graph).output")
    editor.page.keyboard.press("Control+m")
    assert canvas.js("() => reelgraph.graph.getNodeById(4).mode") == 0


def test_a_reroute_made_with_alt_click_survives_a_reload_and_keeps_the_prompt(editor: EditorPage) -> None:
    canvas = Canvas(editor)
    canvas.js(TEMPLATE_AT_SCALE_ONE, TEMPLATE)
    before = canvas.js("() => reelgraph.graphToPrompt(reelgraph.graph).output")
    centre = canvas.js(
        "() => { reelgraph.canvas.draw(true, true); return Array.from(reelgraph.graph._links.get(3)._pos); }"
    )
    editor.page.keyboard.down("Alt")
    editor.page.mouse.click(*canvas.client(*centre))
    editor.page.keyboard.up("Alt")
    reroute = """() => [...reelgraph.graph.reroutes.values()]
      .map((r) => [r.id, [...r.linkIds], reelgraph.graph._links.get(3).parentId])"""
    made = canvas.js(reroute)
    assert len(made) == 1 and made[0][1] == [3] and made[0][2] == made[0][0]
    assert canvas.js("() => reelgraph.graphToPrompt(reelgraph.graph).output") == before
    editor.page.wait_for_function(
        "() => JSON.parse(localStorage.getItem('reelgraph.workflow')).extra.reroutes?.length === 1", timeout=WAIT_MS
    )
    editor.page.reload()
    editor.page.wait_for_function("window.reelgraph !== undefined", timeout=WAIT_MS)
    assert canvas.js(reroute) == made
    link = canvas.js("() => { const l = reelgraph.graph._links.get(3); return [l.origin_id, l.target_id]; }")
    assert link == [3, 4]
    assert canvas.js("() => reelgraph.graphToPrompt(reelgraph.graph).output") == before
    assert editor.errors == []
