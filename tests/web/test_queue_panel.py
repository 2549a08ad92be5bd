"""The queue and history panel against the real server: live queue, history statuses, open a past run, 300 runs."""

from __future__ import annotations

import time
from typing import Any

from tests.server.process import ServerProcess
from tests.web.conftest import EditorPage

PANEL = "#queue-panel"
HISTORY_ROWS = f"{PANEL} .qp-history-list .qp-row"
MANY_RUNS = 300
SCROLL_TOP = "document.querySelector('.qp-history-list').scrollTop"
AT_BOTTOM = (
    "(({scrollTop, clientHeight, scrollHeight}) => scrollTop + clientHeight >= scrollHeight - 1)"
    "(document.querySelector('.qp-history-list'))"
)


def tiny_prompt(color: int, size: int = 8) -> dict[str, Any]:
    """An 8x8 image of one colour, previewed: a run that takes milliseconds and leaves one image."""
    return {
        "1": {"class_type": "EmptyImage", "inputs": {"width": size, "height": size, "batch_size": 1, "color": color}},
        "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
    }


def through(node: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """A tiny prompt with `node` between the image and its preview."""
    prompt = tiny_prompt(0x336699)
    prompt["3"] = {"class_type": node, "inputs": {"image": ["1", 0], **inputs}}
    prompt["2"]["inputs"]["images"] = ["3", 0]
    return prompt


def queue(server: ServerProcess, prompt: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return server.post("/prompt", {"prompt": prompt, **extra})


def start_clean(server: ServerProcess) -> None:
    """No pending prompts and no history, whatever the tests before left."""
    server.post("/queue", {"clear": True})
    server.wait_for(lambda: not server.get("/queue")["queue_running"])
    server.post("/history", {"clear": True})


def history_status(editor: EditorPage, prompt_id: str) -> str | None:
    return editor.evaluate(
        "(id) => document.querySelector(`.qp-row[data-prompt-id='${id}'] .qp-status`)?.textContent ?? null", prompt_id
    )


def wait_for_history_status(editor: EditorPage, prompt_id: str, status: str) -> None:
    editor.page.wait_for_function(
        """([id, status]) => document.querySelector(`.qp-row[data-prompt-id='${id}'] .qp-status`)
             ?.textContent === status""",
        arg=[prompt_id, status],
        timeout=60_000,
    )


def test_the_queue_and_history_update_live(editor: EditorPage, server: ServerProcess) -> None:
    start_clean(server)
    editor.page.click("#queue-panel-toggle")
    editor.page.wait_for_selector(f"{PANEL} .qp-empty")  # an empty queue says so
    slow = queue(server, through("SlowPass", {"steps": 100000, "seconds": 0.05}))
    server.wait_for(lambda: [item[1] for item in server.get("/queue")["queue_running"]] == [slow["prompt_id"]])
    fine = queue(server, tiny_prompt(0xFF0000))
    failing = queue(server, through("FailWith", {"message": "the panel test fails here"}))
    dropped = queue(server, tiny_prompt(0x00FF00))

    # The WebSocket's status messages bring the running and pending prompts into the panel without a click.
    editor.page.wait_for_function(
        """(ids) => ids.every((id) => document.querySelector(`.qp-queue-row[data-prompt-id='${id}']`))""",
        arg=[slow["prompt_id"], fine["prompt_id"], failing["prompt_id"], dropped["prompt_id"]],
        timeout=30_000,
    )
    running = editor.page.locator(f".qp-queue-row.running[data-prompt-id='{slow['prompt_id']}']")
    assert running.locator(".qp-number").text_content() == f"#{slow['number']}"
    assert running.locator("button").count() == 0  # only pending prompts can be deleted
    assert editor.page.locator(".qp-queue-row.pending").count() == 3

    editor.page.locator(f".qp-queue-row[data-prompt-id='{dropped['prompt_id']}'] button").click()
    server.wait_for(lambda: dropped["prompt_id"] not in {item[1] for item in server.get("/queue")["queue_pending"]})
    editor.page.wait_for_selector(f".qp-queue-row[data-prompt-id='{dropped['prompt_id']}']", state="detached")
    assert editor.page.locator(".qp-queue-row.pending").count() == 2

    server.post("/interrupt", {})
    wait_for_history_status(editor, slow["prompt_id"], "interrupted")
    wait_for_history_status(editor, fine["prompt_id"], "success")
    wait_for_history_status(editor, failing["prompt_id"], "error")
    editor.page.wait_for_selector(f"{PANEL} .qp-empty")
    assert history_status(editor, dropped["prompt_id"]) is None
    failed_row = editor.page.locator(f".qp-row[data-prompt-id='{failing['prompt_id']}']")
    assert "the panel test fails here" in failed_row.get_attribute("title")

    # Newest first, with the run's duration and a small re-encoded thumbnail of its first image.
    ids = editor.evaluate(f"[...document.querySelectorAll('{HISTORY_ROWS}')].map((row) => row.dataset.promptId)")
    order = editor.evaluate(
        f"""[...document.querySelectorAll('{HISTORY_ROWS}')]
              .sort((a, b) => a.dataset.index - b.dataset.index).map((row) => row.dataset.promptId)"""
    )
    assert sorted(ids) == sorted([slow["prompt_id"], fine["prompt_id"], failing["prompt_id"]])
    assert order == [failing["prompt_id"], fine["prompt_id"], slow["prompt_id"]]
    fine_row = f".qp-row[data-prompt-id='{fine['prompt_id']}']"
    assert editor.page.locator(f"{fine_row} .qp-duration").text_content().endswith(("ms", " s"))
    editor.page.wait_for_function(
        "(row) => document.querySelector(`${row} .qp-thumb img`)?.naturalWidth > 0", arg=fine_row, timeout=30_000
    )
    thumbnail = editor.page.locator(f"{fine_row} .qp-thumb img").get_attribute("src")
    assert "preview=webp%3B50" in thumbnail and "type=temp" in thumbnail

    editor.page.locator(f"{fine_row} button", has_text="Delete").click()
    server.wait_for(lambda: server.get(f"/history/{fine['prompt_id']}") == {})
    editor.page.wait_for_selector(fine_row, state="detached")
    assert editor.page.locator(HISTORY_ROWS).count() == 2

    editor.page.locator(f"{PANEL} .qp-head", has_text="History").locator("button", has_text="Clear").click()
    server.wait_for(lambda: server.get("/history") == {})
    editor.page.wait_for_function(f"!document.querySelector('{HISTORY_ROWS}')")
    assert editor.errors == []


def test_open_restores_a_past_run_with_its_outputs(editor: EditorPage, server: ServerProcess) -> None:
    start_clean(server)
    editor.evaluate("reelgraph.loadTemplate('blend_scale_ui.json')")
    template_types = editor.evaluate("reelgraph.graph._nodes.map((n) => n.type).sort()")
    answer = editor.evaluate("reelgraph.queue()")
    server.wait_for(lambda: server.get(f"/history/{answer['prompt_id']}") != {})
    api_only = queue(server, tiny_prompt(0x123456))  # queued by API: no workflow kept with it
    server.wait_for(lambda: server.get(f"/history/{api_only['prompt_id']}") != {})

    # Something else in the editor now: one empty image node.
    editor.evaluate(
        """() => {
      reelgraph.graph.clear();
      reelgraph.graph.add(reelgraph.LiteGraph.createNode("EmptyImage"));
    }"""
    )
    editor.page.click("#queue-panel-toggle")
    row = f".qp-row[data-prompt-id='{answer['prompt_id']}']"
    editor.page.wait_for_selector(row, timeout=30_000)

    editor.page.locator(f".qp-row[data-prompt-id='{api_only['prompt_id']}'] button", has_text="Open").click()
    editor.page.wait_for_function("document.getElementById('status').textContent.includes('no workflow')")
    assert editor.evaluate("reelgraph.graph._nodes.map((n) => n.type)") == ["EmptyImage"]

    editor.page.locator(f"{row} button", has_text="Open").click()
    editor.page.wait_for_function(
        "(count) => reelgraph.graph._nodes.length === count", arg=len(template_types), timeout=30_000
    )
    assert editor.evaluate("reelgraph.graph._nodes.map((n) => n.type).sort()") == template_types
    output = server.get(f"/history/{answer['prompt_id']}")[answer["prompt_id"]]["outputs"]
    (output_id, shown), *_ = output.items()
    editor.page.wait_for_function(
        "(id) => reelgraph.graph.getNodeById(id).run.images.some((i) => i.complete && i.naturalWidth > 0)",
        arg=int(output_id),
        timeout=30_000,
    )
    src = editor.evaluate("(id) => reelgraph.graph.getNodeById(id).run.images[0].src", int(output_id))
    assert shown["images"][0]["filename"] in src and "preview" not in src
    assert editor.errors == []


def test_hundreds_of_runs_page_in_and_only_visible_rows_exist(editor: EditorPage, server: ServerProcess) -> None:
    start_clean(server)
    started = time.monotonic()
    answers = [queue(server, tiny_prompt(index * 4099 % 0xFFFFFF)) for index in range(MANY_RUNS)]
    server.wait_for(lambda: server.get(f"/history/{answers[-1]['prompt_id']}") != {}, timeout=300)
    print(f"\n{MANY_RUNS} tiny runs queued and finished in {time.monotonic() - started:.1f} s")
    oldest, newest = answers[0], answers[-1]

    opened = editor.evaluate(
        """async () => {
      const start = performance.now();
      await reelgraph.queuePanel.open();
      return performance.now() - start;
    }"""
    )
    print(f"queue panel opened on {MANY_RUNS} history entries in {opened:.0f} ms")
    rows = editor.page.locator(HISTORY_ROWS)
    first = editor.page.locator(f"{HISTORY_ROWS}[data-index='0'] .qp-number")
    assert first.text_content() == f"#{newest['number']}"
    assert editor.page.locator(f"{PANEL} .qp-head b").nth(1).text_content() == f"History ({MANY_RUNS})"
    assert 0 < rows.count() <= 40

    # Scroll with the wheel to the bottom: pages of older runs load on the way, the oldest run is the last row.
    box = editor.page.locator(f"{PANEL} .qp-history-list").bounding_box()
    editor.page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    oldest_row = f".qp-row[data-prompt-id='{oldest['prompt_id']}']"
    while not editor.evaluate(AT_BOTTOM):
        before = editor.evaluate(SCROLL_TOP)
        editor.page.mouse.wheel(0, 2000)
        editor.page.wait_for_function(f"{SCROLL_TOP} !== {before}", timeout=10_000)
    editor.page.wait_for_selector(f"{oldest_row} .qp-number", timeout=30_000)
    assert editor.page.locator(f"{oldest_row} .qp-number").text_content() == f"#{oldest['number']}"
    assert editor.page.locator(oldest_row).get_attribute("data-index") == str(MANY_RUNS - 1)
    assert 0 < rows.count() <= 40

    # A run finishing while the view is scrolled down adds a row on top without moving the rows in view.
    top_before = editor.evaluate(f'document.querySelector("{oldest_row}").getBoundingClientRect().top')
    newer = queue(server, tiny_prompt(0xABCDEF))
    editor.page.wait_for_function(
        "(id) => document.getElementById('queue-panel').textContent.includes(`History (${id})`)", arg=MANY_RUNS + 1
    )
    editor.page.wait_for_selector(f"{oldest_row}[data-index='{MANY_RUNS}']")
    assert editor.evaluate(f'document.querySelector("{oldest_row}").getBoundingClientRect().top') == top_before
    assert server.get(f"/history/{newer['prompt_id']}") != {}
    sources = editor.evaluate("[...document.querySelectorAll('.qp-thumb img')].map((img) => img.getAttribute('src'))")
    assert sources and all("preview=webp" in src for src in sources)
    assert editor.errors == []
