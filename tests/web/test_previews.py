"""Live step previews from the WebSocket's binary frames, and videos and animations playing inside their nodes."""

from __future__ import annotations

from app.config import REPO_ROOT
from tests.server.process import ServerProcess
from tests.web.conftest import EditorPage

SCREENSHOT = REPO_ROOT / "bench" / "results" / "editor_video.png"
SAMPLE_CLIP = REPO_ROOT / "input" / "reelgraph_sample.mp4"
RUN_TIMEOUT_MS = 120_000
STEPS = 8

# Records, after each message, what the previews and progress looked like (the feature's listener runs first).
RECORD_MESSAGES = """(slowId) => {
  window.seen = { previews: [], progress: [] };
  reelgraph.on("message", (type, data) => {
    const node = reelgraph.graph.getNodeById(slowId);
    if (type === "b_preview") {
      window.seen.previews.push({ src: node.run.preview?.src, running: reelgraph.runState.running?.id });
    } else if (type === "progress" && String(data.node) === String(slowId)) {
      window.seen.progress.push([data.value, data.max]);
    }
  });
}"""

URL_IS_LIVE = """async (url) => {
  try { await (await fetch(url)).blob(); return true; } catch { return false; }
}"""


def test_step_previews_show_on_the_running_node_and_their_urls_are_revoked(editor: EditorPage) -> None:
    _, slow_id, _ = editor.build_chain(
        ("EmptyImage", {"width": 64, "height": 48, "color": 0xFF8800}),
        ("SlowPass", {"steps": STEPS, "seconds": 0.25}),
        ("PreviewImage", {}),
    )
    editor.evaluate("reelgraph.fitView()")
    editor.evaluate(RECORD_MESSAGES, slow_id)
    editor.page.mouse.click(5, 300)
    editor.page.keyboard.press("Control+Enter")
    # While SlowPass runs, it shows a decoded preview of the frame it was given (64x48).
    editor.page.wait_for_function(
        """(id) => {
          const node = reelgraph.graph.getNodeById(id);
          const preview = node.run.preview;
          return node.run.running && preview?.complete && preview.naturalWidth === 64 && preview.naturalHeight === 48;
        }""",
        arg=slow_id,
        timeout=RUN_TIMEOUT_MS,
    )
    assert editor.evaluate("(id) => reelgraph.graph.getNodeById(id).run.progress !== null", slow_id)
    editor.page.wait_for_function("document.getElementById('status').textContent === 'done'", timeout=RUN_TIMEOUT_MS)

    seen = editor.evaluate("window.seen")
    urls = [preview["src"] for preview in seen["previews"]]
    assert len(urls) == STEPS and all(url.startswith("blob:") for url in urls) and len(set(urls)) == STEPS
    assert {preview["running"] for preview in seen["previews"]} == {slow_id}
    values = [value for value, _ in seen["progress"]]
    assert values == sorted(values) and values[-1] == STEPS and len(set(values)) > 1
    assert {total for _, total in seen["progress"]} == {STEPS}

    assert editor.errors == []  # checked now: fetching a revoked URL below logs a failed load

    # One preview stays on the node (it has no output to replace it); every earlier URL was revoked.
    assert editor.evaluate("reelgraph.stepPreviews.liveCount") == 1
    assert editor.evaluate("(id) => reelgraph.graph.getNodeById(id).run.preview.src", slow_id) == urls[-1]
    assert editor.evaluate(URL_IS_LIVE, urls[-1])
    assert not any(editor.evaluate(URL_IS_LIVE, url) for url in urls[:-1])

    # A new workflow takes the last preview away with its URL.
    editor.evaluate("reelgraph.loadTemplate('blend_scale_ui.json')")
    assert editor.evaluate("reelgraph.stepPreviews.liveCount") == 0
    assert not editor.evaluate(URL_IS_LIVE, urls[-1])


FIND_SAVER = """(format) => reelgraph.graph._nodes.find(
  (n) => n.type === "SaveVideoAs" && n.widgets.find((w) => w.name === "format").value === format).id"""

VIDEO_PLAYING = """(id) => {
  const video = reelgraph.graph.getNodeById(id).run.images[0];
  return video instanceof HTMLVideoElement && !video.paused && video.readyState >= 2 && video.videoWidth > 0;
}"""

VIDEO_TIME = "(id) => reelgraph.graph.getNodeById(id).run.images[0].currentTime"

# The pixels the canvas shows where the node draws its output (a short digest), read back from the page's canvas.
NODE_PICTURE = """(id) => {
  const { canvas, graph } = reelgraph;
  const node = graph.getNodeById(id);
  const top = node.run.imageTop;
  const [x, y] = canvas.ds.convertOffsetToCanvas([node.pos[0] + 10, node.pos[1] + top + 10]);
  const [x2, y2] = canvas.ds.convertOffsetToCanvas([node.pos[0] + node.size[0] - 10, node.pos[1] + node.size[1] - 10]);
  const data = canvas.canvas.getContext("2d").getImageData(x, y, Math.max(1, x2 - x), Math.max(1, y2 - y)).data;
  let digest = 0;
  for (let i = 0; i < data.length; i += 4) digest = (digest * 31 + data[i] + data[i + 1] * 7 + data[i + 2] * 13) >>> 0;
  return digest;
}"""

ANIMATION_FRAME = """(id) => {
  const canvas = reelgraph.graph.getNodeById(id).run.images[0];
  if (!(canvas instanceof HTMLCanvasElement) || !canvas.width) return null;
  const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let digest = 0;
  for (let i = 0; i < data.length; i += 16) digest = (digest * 31 + data[i] + data[i + 1] * 7) >>> 0;
  return digest;
}"""

COUNT_DRAWS = """() => {
  const canvas = reelgraph.canvas;
  const draw = canvas.drawFrontCanvas.bind(canvas);
  window.draws = 0;
  canvas.drawFrontCanvas = (...args) => { window.draws += 1; return draw(...args); };
}"""

# Where a graph point is on the page (the canvas's offset on the page added).
PAGE_POINT = """([x, y]) => {
  const [cx, cy] = reelgraph.canvas.ds.convertOffsetToCanvas([x, y]);
  const box = reelgraph.canvas.canvas.getBoundingClientRect();
  return [box.left + cx, box.top + cy];
}"""

PAN_BY = """(dx) => { reelgraph.canvas.ds.offset[0] += dx; reelgraph.canvas.setDirty(true, true); }"""


def drag(editor: EditorPage, start: list[float], end: list[float]) -> None:
    """A mouse drag between two graph points (after a frame is drawn: hit tests use the areas a frame computes)."""
    editor.evaluate("reelgraph.canvas.draw(true, true)")
    (x, y), (x2, y2) = editor.evaluate(PAGE_POINT, start), editor.evaluate(PAGE_POINT, end)
    editor.page.mouse.move(x, y)
    editor.page.mouse.down()
    editor.page.mouse.move(x2, y2, steps=10)
    editor.page.mouse.up()


def widen_node(editor: EditorPage, node_id: int, width: float) -> None:
    """Resize a node with the mouse by its bottom-right corner to `width` (keeping the picture's proportions)."""
    corner, target = editor.evaluate(
        """([id, width]) => {
          const node = reelgraph.graph.getNodeById(id);
          const [x, y] = [node.pos[0] + node.size[0], node.pos[1] + node.size[1]];
          return [[x - 3, y - 3], [node.pos[0] + width - 3, y + (width - node.size[0]) / 2 - 3]];
        }""",
        [node_id, width],
    )
    drag(editor, corner, target)


def drag_node_below(editor: EditorPage, node_id: int, above_id: int, gap: float) -> None:
    """Drag a node by its title with the mouse until it sits `gap` below another node."""
    start, end = editor.evaluate(
        """([id, aboveId, gap]) => {
          const { graph, LiteGraph } = reelgraph;
          const node = graph.getNodeById(id);
          const above = graph.getNodeById(aboveId);
          const grip = [node.pos[0] + 30, node.pos[1] - LiteGraph.NODE_TITLE_HEIGHT / 2];
          const target = [above.pos[0] + 30, above.pos[1] + above.size[1] + gap];
          return [grip, target];
        }""",
        [node_id, above_id, gap],
    )
    drag(editor, start, end)


def test_a_video_workflow_plays_its_mp4_and_gif_inside_the_nodes(editor: EditorPage, server: ServerProcess) -> None:
    uploaded = editor.page.request.post(
        f"http://{server.address}/upload/image",
        multipart={"image": {"name": SAMPLE_CLIP.name, "mimeType": "video/mp4", "buffer": SAMPLE_CLIP.read_bytes()}},
    )
    assert uploaded.ok and uploaded.json()["name"] == SAMPLE_CLIP.name
    editor.page.set_viewport_size({"width": 1920, "height": 1080})  # room for the whole graph with readable text
    editor.page.select_option("#templates", "video_frame_ops_api.json")
    editor.page.wait_for_function("reelgraph.graph._nodes.some((n) => n.type === 'SaveVideoAs')")
    mp4_id = editor.evaluate(FIND_SAVER, "mp4 (h264)")
    gif_id = editor.evaluate(FIND_SAVER, "gif")
    editor.page.keyboard.press("Control+Enter")
    editor.page.wait_for_function("document.getElementById('status').textContent === 'done'", timeout=RUN_TIMEOUT_MS)
    # The output nodes grew to show their outputs: move the gif's node off the mp4's, and bring both into view.
    drag_node_below(editor, gif_id, mp4_id, gap=120)
    widen_node(editor, mp4_id, 420)
    assert editor.evaluate("(id) => reelgraph.graph.getNodeById(id).size[0]", mp4_id) > 400
    gif_top = editor.evaluate("(id) => reelgraph.graph.getNodeById(id).pos[1]", gif_id)
    assert gif_top > editor.evaluate(
        "(id) => { const n = reelgraph.graph.getNodeById(id); return n.pos[1] + n.size[1]; }", mp4_id
    )
    editor.evaluate("reelgraph.fitView()")
    editor.page.mouse.click(3, 1070)  # on the canvas's empty edge: nothing selected, no tooltip

    # The mp4 plays in its node: a <video> that is playing, decoded and moving on.
    editor.page.wait_for_function(VIDEO_PLAYING, arg=mp4_id, timeout=30_000)
    video = editor.evaluate(
        """(id) => { const v = reelgraph.graph.getNodeById(id).run.images[0];
          return { src: v.src, width: v.videoWidth, height: v.videoHeight, muted: v.muted, loop: v.loop }; }""",
        mp4_id,
    )
    assert "/view?" in video["src"] and "filename=frame_ops_" in video["src"] and video["src"].endswith("type=output")
    assert (video["width"], video["height"]) == (256, 128) and video["muted"] and video["loop"]
    started = editor.evaluate(VIDEO_TIME, mp4_id)
    editor.page.wait_for_function(f"(id) => ({VIDEO_TIME})(id) !== {started}", arg=mp4_id, timeout=30_000)

    # The canvas itself repaints the node with new frames (nothing else on the page changes).
    first = editor.evaluate(NODE_PICTURE, mp4_id)
    editor.page.wait_for_function(f"(id) => ({NODE_PICTURE})(id) !== {first}", arg=mp4_id, timeout=30_000)

    # The gif animates: its frames are decoded one after another into the canvas the node draws.
    editor.page.wait_for_function(f"(id) => ({ANIMATION_FRAME})(id) !== null", arg=gif_id, timeout=30_000)
    gif_frame = editor.evaluate(ANIMATION_FRAME, gif_id)
    editor.page.wait_for_function(f"(id) => ({ANIMATION_FRAME})(id) !== {gif_frame}", arg=gif_id, timeout=30_000)
    assert editor.evaluate("(id) => reelgraph.graph.getNodeById(id).run.images[0].width", gif_id) == 256

    editor.page.wait_for_function(VIDEO_PLAYING, arg=mp4_id, timeout=30_000)
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    editor.page.screenshot(path=str(SCREENSHOT), full_page=True)

    # Out of view, the video pauses and the canvas stops redrawing; back in view, it plays again.
    editor.evaluate(PAN_BY, -100_000)
    editor.page.wait_for_function(
        "(id) => reelgraph.graph.getNodeById(id).run.images[0].paused", arg=mp4_id, timeout=30_000
    )
    editor.evaluate(COUNT_DRAWS)
    editor.page.wait_for_timeout(1000)
    assert editor.evaluate("window.draws") == 0
    editor.evaluate(PAN_BY, 100_000)
    editor.page.wait_for_function(VIDEO_PLAYING, arg=mp4_id, timeout=30_000)
    resumed = editor.evaluate(VIDEO_TIME, mp4_id)
    editor.page.wait_for_function(f"(id) => ({VIDEO_TIME})(id) !== {resumed}", arg=mp4_id, timeout=30_000)
    assert editor.errors == []


BUILD_ANIMATIONS = """(clip) => {
  const { LiteGraph, graph, loadWorkflow } = reelgraph;
  loadWorkflow({ nodes: [], links: [], version: 0.4 });
  const make = (type, x, y) => {
    const node = LiteGraph.createNode(type);
    node.pos = [x, y];
    graph.add(node);
    return node;
  };
  const set = (node, name, value) => { node.widgets.find((w) => w.name === name).value = value; };
  const frames = make("LoadVideoFrames", 0, 100);
  set(frames, "video", clip);
  set(frames, "frame_load_cap", 6);
  set(frames, "select_every_nth", 6);
  const webp = make("SaveAnimatedWEBP", 400, 50);
  const apng = make("SaveAnimatedPNG", 400, 450);
  frames.connect(0, webp, 0);
  frames.connect(0, apng, 0);
  reelgraph.fitView();
  return [webp.id, apng.id];
}"""

MEDIA_KINDS = """async () => {
  const { mediaKind } = await import("./js/video_preview.js");
  const kind = (filename, output = {}, extra = {}) => mediaKind({ filename, type: "output", ...extra }, output);
  const gif = { filename: "a.gif", format: "image/gif" };
  return [
    kind("a.mp4", { images: [], animated: [true] }),
    kind("a.webm"),
    kind("clip_00001.mp4", {}, { format: "video/h264-mp4" }),
    kind("a.gif"),
    kind("a.webp", { animated: [true] }),
    kind("a.webp", { animated: [false] }),
    kind("a.png", { animated: [true] }),
    kind("a.png"),
    mediaKind(gif, { gifs: [gif] }),
  ];
}"""


def test_animated_webp_and_png_outputs_animate_in_their_nodes(editor: EditorPage, server: ServerProcess) -> None:
    assert editor.evaluate(MEDIA_KINDS) == [
        "video",
        "video",
        "video",
        "animation",
        "animation",
        "image",
        "animation",
        "image",
        "animation",
    ]
    uploaded = editor.page.request.post(
        f"http://{server.address}/upload/image",
        multipart={
            "image": {"name": SAMPLE_CLIP.name, "mimeType": "video/mp4", "buffer": SAMPLE_CLIP.read_bytes()},
            "overwrite": "true",
        },
    )
    assert uploaded.ok and uploaded.json()["name"] == SAMPLE_CLIP.name
    webp_id, apng_id = editor.evaluate(BUILD_ANIMATIONS, SAMPLE_CLIP.name)
    editor.page.mouse.click(5, 300)
    editor.page.keyboard.press("Control+Enter")
    editor.page.wait_for_function("document.getElementById('status').textContent === 'done'", timeout=RUN_TIMEOUT_MS)
    editor.evaluate("reelgraph.fitView()")
    for node_id, extension in ((webp_id, ".webp"), (apng_id, ".png")):
        editor.page.wait_for_function(f"(id) => ({ANIMATION_FRAME})(id) !== null", arg=node_id, timeout=30_000)
        first = editor.evaluate(ANIMATION_FRAME, node_id)
        editor.page.wait_for_function(f"(id) => ({ANIMATION_FRAME})(id) !== {first}", arg=node_id, timeout=30_000)
        source = editor.evaluate("(id) => reelgraph.graph.getNodeById(id).run.images[0].dataset.src", node_id)
        assert "/view?" in source and f"{extension}&" in source
    assert editor.errors == []
