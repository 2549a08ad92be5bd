"""The track editor of TracksFromJSON nodes, in Chromium against the real server: drawn tracks are written into
tracks_json, queued, and drawn over the output by DrawTracksOnVideo."""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
from PIL import Image

from models.control.tracks import track_colours
from tests.server.process import ServerProcess
from tests.web.conftest import EditorPage

WIDTH, HEIGHT, FRAMES = 160, 96, 5
BACKGROUND = 0x303030
WAIT_S = 60

BUILD_GRAPH = """([width, height, frames, background]) => {
  const { LiteGraph, graph, canvas, loadWorkflow } = reelgraph;
  loadWorkflow({ nodes: [], links: [], version: 0.4 });
  canvas.ds.offset = [0, 0];
  canvas.ds.scale = 1;
  const add = (type, x, y, values = {}) => {
    const node = LiteGraph.createNode(type);
    node.pos = [x, y];
    graph.add(node);
    for (const [name, value] of Object.entries(values)) node.widgets.find((w) => w.name === name).value = value;
    return node;
  };
  const image = add("EmptyImage", 40, 60, { width, height, batch_size: frames, color: background });
  const tracks = add("TracksFromJSON", 40, 300, { width, height, frames });
  const draw = add("DrawTracksOnVideo", 420, 60);
  const save = add("SaveImage", 760, 60);
  image.connect(0, draw, 0);
  tracks.connect(0, draw, 1);
  draw.connect(0, save, 0);
  canvas.draw(true, true);
  return { tracks: tracks.id, save: save.id };
}"""

# The page position of a widget's centre (the canvas is at scale 1, offset 0).
WIDGET_CENTRE = """([id, name]) => {
  const { graph, canvas, LiteGraph } = reelgraph;
  canvas.draw(true, true);
  const node = graph.getNodeById(id);
  const widget = node.widgets.find((w) => w.name === name);
  const rect = canvas.canvas.getBoundingClientRect();
  const y = node.pos[1] + widget.y + LiteGraph.NODE_WIDGET_HEIGHT / 2;
  return [rect.left + node.pos[0] + node.size[0] / 2, rect.top + y];
}"""

WIDGET_VALUE = "([id, name]) => reelgraph.graph.getNodeById(id).widgets.find((w) => w.name === name).value"


def open_track_editor(editor: EditorPage, node_id: int) -> None:
    """Click the node's "Edit tracks" button, as a user does."""
    editor.page.mouse.click(*editor.evaluate(WIDGET_CENTRE, [node_id, "Edit tracks"]))
    editor.page.locator(".te-dialog[open]").wait_for()


def canvas_to_page(editor: EditorPage, point: tuple[float, float]) -> tuple[float, float]:
    """The page position of a point in the tracks' canvas pixels, on the editor's (scaled) drawing canvas."""
    box = editor.page.locator(".te-canvas").bounding_box()
    assert box is not None
    return box["x"] + point[0] * box["width"] / WIDTH, box["y"] + point[1] * box["height"] / HEIGHT


DOUBLE_CLICK_GAP_MS = 600
"""Longer than the canvas's double-click interval, so two clicks on the same button are two clicks."""


def click_points(editor: EditorPage, points: list[tuple[float, float]]) -> None:
    for point in points:
        editor.page.mouse.click(*canvas_to_page(editor, point))


def button(editor: EditorPage, name: str) -> Any:
    return editor.page.locator(".te-dialog").get_by_role("button", name=name, exact=True)


def written_tracks(editor: EditorPage, node_id: int) -> list[list[dict[str, float]]]:
    return json.loads(str(editor.evaluate(WIDGET_VALUE, [node_id, "tracks_json"])))


def assert_near(point: dict[str, float], expected: tuple[float, float], tolerance: float = 1.0) -> None:
    assert abs(point["x"] - expected[0]) <= tolerance and abs(point["y"] - expected[1]) <= tolerance, (point, expected)


def output_frames(editor: EditorPage, server: ServerProcess, prompt_id: str, save_id: int) -> list[np.ndarray]:
    """The saved frames of a finished prompt, fetched through the /view URL the editor builds."""
    server.wait_for(lambda: prompt_id in server.get(f"/history/{prompt_id}"), timeout=WAIT_S)
    entry = server.get(f"/history/{prompt_id}")[prompt_id]
    assert entry["status"]["status_str"] == "success", entry["status"]
    frames = []
    for image in entry["outputs"][str(save_id)]["images"]:
        url = editor.evaluate("(entry) => reelgraph.api.viewUrl(entry)", image)
        response = editor.page.request.get(f"http://{server.address}/{url}")
        assert response.ok, response.status
        frames.append(np.asarray(Image.open(io.BytesIO(response.body())).convert("RGB")))
    return frames


def test_two_drawn_tracks_are_written_queued_and_drawn_over_the_output(
    editor: EditorPage, server: ServerProcess
) -> None:
    ids = editor.evaluate(BUILD_GRAPH, [WIDTH, HEIGHT, FRAMES, BACKGROUND])
    open_track_editor(editor, ids["tracks"])
    straight = [(20.0, 20.0), (100.0, 20.0)]
    corner = [(30.0, 80.0), (30.0, 50.0), (60.0, 50.0)]  # two legs of 30 pixels: the middle sample is the corner
    click_points(editor, straight)
    button(editor, "New track").click()
    click_points(editor, corner)
    button(editor, "Done").click()
    assert editor.page.locator(".te-dialog[open]").count() == 0

    tracks = written_tracks(editor, ids["tracks"])
    assert [len(track) for track in tracks] == [FRAMES, FRAMES]
    for k, point in enumerate(tracks[0]):  # evenly along the line, ends at the clicks
        assert_near(point, (20 + 80 * k / (FRAMES - 1), 20))
    assert_near(tracks[1][0], corner[0])
    assert_near(tracks[1][2], corner[1])
    assert_near(tracks[1][4], corner[2])

    open_track_editor(editor, ids["tracks"])  # reopening edits the clicked points, not the samples
    state = editor.page.locator(".te-state").text_content()
    assert state == f"track 2 of 2 (3 points); 2 drawn, {FRAMES} samples each"
    button(editor, "Done").click()
    saved = editor.evaluate("(id) => reelgraph.graph.getNodeById(id).serialize()", ids["tracks"])
    assert len(saved["widgets_values"]) == 4  # the button is not saved
    assert json.loads(saved["widgets_values"][0]) == tracks and saved["widgets_values"][1:] == [WIDTH, HEIGHT, FRAMES]
    kept = saved["properties"]["trackEditor"]["tracks"]  # the clicked points, for editing again
    assert [len(track) for track in kept] == [2, 3]
    np.testing.assert_allclose(kept[0], straight, atol=1)
    np.testing.assert_allclose(kept[1], corner, atol=1)

    answer = editor.evaluate("reelgraph.queue()")
    assert answer["node_errors"] == {}
    frames = output_frames(editor, server, answer["prompt_id"], ids["save"])
    assert len(frames) == FRAMES and frames[0].shape == (HEIGHT, WIDTH, 3)
    colours = [tuple(round(c * 255) for c in colour) for colour in track_colours(2).tolist()]
    background = ((BACKGROUND >> 16) & 0xFF, (BACKGROUND >> 8) & 0xFF, BACKGROUND & 0xFF)
    last = frames[-1]
    assert tuple(last[20, 100]) == colours[0]  # track 0's dot at its last point
    assert tuple(last[50, 60]) == colours[1]  # track 1's dot at its last point
    assert tuple(last[50, 30]) == colours[1]  # track 1's path through its corner
    assert tuple(last[90, 150]) == background  # far from both tracks
    assert tuple(frames[0][20, 20]) == colours[0]  # the first frame: track 0 at its first point...
    assert tuple(frames[0][20, 100]) == background  # ...not yet at its last
    assert editor.errors == []


def test_unreadable_json_is_reported_and_kept_until_drawn_over_and_points_drag(editor: EditorPage) -> None:
    ids = editor.evaluate(BUILD_GRAPH, [WIDTH, HEIGHT, FRAMES, BACKGROUND])
    editor.evaluate(
        "(id) => { reelgraph.graph.getNodeById(id).widgets.find((w) => w.name === 'tracks_json').value = '[{oops'; }",
        ids["tracks"],
    )
    open_track_editor(editor, ids["tracks"])
    message = editor.page.locator(".te-message")
    assert message.is_visible() and "tracks_json cannot be read" in str(message.text_content())
    button(editor, "Done").click()
    assert editor.evaluate(WIDGET_VALUE, [ids["tracks"], "tracks_json"]) == "[{oops"

    editor.page.wait_for_timeout(DOUBLE_CLICK_GAP_MS)  # a second click on the button this soon is a double click
    open_track_editor(editor, ids["tracks"])
    click_points(editor, [(40.0, 30.0), (120.0, 30.0)])
    message.wait_for(state="hidden", timeout=5000)  # drawing writes the tracks, which clears the message
    mouse = editor.page.mouse
    mouse.move(*canvas_to_page(editor, (40.0, 30.0)))
    mouse.down()
    mouse.move(*canvas_to_page(editor, (40.0, 70.0)), steps=8)
    mouse.up()
    [track] = written_tracks(editor, ids["tracks"])
    assert len(track) == FRAMES
    assert_near(track[0], (40, 70))
    assert_near(track[-1], (120, 30))
    assert_near(track[2], (80, 50))  # the middle of the dragged line

    button(editor, "Clear").click()
    assert written_tracks(editor, ids["tracks"]) == []
    button(editor, "Done").click()
    assert editor.errors == []
