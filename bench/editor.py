"""Editor benchmark: open a 1000-node workflow and pan over it in headless Chromium against a real server.

The page builds the workflow from real node types (rows of EmptyImage -> image ops -> SaveImage, every link typed),
then times what a user's open does: parse the JSON, configure the graph, autosave it and draw it, and what each later
action costs the undo history (a snapshot compared with the last). Panning moves the view a step every animation
frame (turning back every 30 frames, so the graph stays in view), at zoom 1 (a working view) and with the whole graph
in view (every node drawn); each frame's canvas draw time is recorded.
Targets (issue 7): open under 1 s, pan under 16 ms a frame (median).

    python bench/editor.py --nodes 1000 --repeats 5 --frames 120
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import statistics
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402

from bench.api_load import ServerUnderTest, summarize  # noqa: E402
from bench.plot import draw_line_chart, side_by_side  # noqa: E402
from bench.report import format_table, load_average  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
PROBE = Path(__file__).with_name("editor_probe.js")
OPEN_TARGET_MS = 1000.0
PAN_TARGET_MS = 16.0
ROW_LENGTH = 40
PAN_STEP_PX = 12
PAN_TURN_FRAMES = 30
VIEWS = {"zoom 1": 1.0, "whole graph": None}


async def _wait_ready(server: ServerUnderTest) -> None:
    async with aiohttp.ClientSession() as session:
        await server.ready(session)


def measure(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    """Start a server and Chromium, and take the raw timings (milliseconds)."""
    from playwright.sync_api import sync_playwright

    server = ServerUnderTest(folder)
    try:
        asyncio.run(_wait_ready(server))
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(args.chromium), headless=True)
            try:
                page = browser.new_page(viewport={"width": args.width, "height": args.height})
                page.goto(server.base + "/")
                page.wait_for_function("window.reelgraph !== undefined", timeout=30_000)
                page.add_script_tag(content=PROBE.read_text())
                text = page.evaluate("([n, row]) => reelgraphBench.buildWorkflow(n, row)", [args.nodes, ROW_LENGTH])
                opens = [page.evaluate("(text) => reelgraphBench.open(text)", text) for _ in range(args.repeats)]
                checkpoints = page.evaluate("(n) => reelgraphBench.checkpoint(n)", args.repeats)
                pans = {
                    view: page.evaluate(
                        "([frames, scale, step, turn]) => reelgraphBench.pan(frames, scale, step, turn)",
                        [args.frames, scale, PAN_STEP_PX, PAN_TURN_FRAMES],
                    )
                    for view, scale in VIEWS.items()
                }
                if args.screenshot:
                    args.screenshot.parent.mkdir(parents=True, exist_ok=True)
                    page.evaluate("reelgraph.fitView()")
                    page.screenshot(path=str(args.screenshot))
                browser_version = browser.version
            finally:
                browser.close()
    finally:
        server.stop()
    return {
        "opens": opens,
        "checkpoints": checkpoints,
        "pans": pans,
        "workflow_bytes": len(text),
        "browser": browser_version,
    }


def report(args: argparse.Namespace, raw: dict[str, Any]) -> dict[str, Any]:
    """The figures: medians and percentiles per measure, with the targets checked."""
    drawn = [o["drawn_ms"] for o in raw["opens"]]
    next_frame = [o["next_frame_ms"] for o in raw["opens"]]
    pans = {
        view: {
            "scale": pan["scale"],
            "drawn_nodes_median": statistics.median(pan["drawn_nodes"]),
            "draw_ms": summarize(pan["draw_ms"]) | {"median": statistics.median(pan["draw_ms"])},
            "frame_interval_ms": summarize(pan["frame_ms"]) | {"median": statistics.median(pan["frame_ms"])},
        }
        for view, pan in raw["pans"].items()
    }
    checks = {
        f"open_under_{OPEN_TARGET_MS:g}ms": statistics.median(next_frame) < OPEN_TARGET_MS,
        **{
            f"pan_{view.replace(' ', '_')}_under_{PAN_TARGET_MS:g}ms": pan["draw_ms"]["median"] < PAN_TARGET_MS
            for view, pan in pans.items()
        },
    }
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {"browser": raw["browser"], "load_average": load_average()},
        "settings": {
            "nodes": args.nodes,
            "row_length": ROW_LENGTH,
            "repeats": args.repeats,
            "frames": args.frames,
            "viewport": [args.width, args.height],
            "workflow_bytes": raw["workflow_bytes"],
        },
        "open_ms": {
            "to_drawn": {"median": statistics.median(drawn), "all": drawn},
            "to_next_frame": {"median": statistics.median(next_frame), "all": next_frame},
        },
        "undo_checkpoint_ms": {"median": statistics.median(raw["checkpoints"]), "all": raw["checkpoints"]},
        "pan": pans,
        "checks": checks,
        "raw": {view: {"draw_ms": pan["draw_ms"]} for view, pan in raw["pans"].items()},
    }


def summary_text(figures: dict[str, Any]) -> str:
    settings = figures["settings"]
    opened = figures["open_ms"]["to_next_frame"]
    verdict = "ok" if figures["checks"][f"open_under_{OPEN_TARGET_MS:g}ms"] else "MISSED"
    lines = [
        f"Editor, {settings['nodes']} nodes ({settings['workflow_bytes'] / 1e6:.2f} MB of JSON), "
        f"viewport {settings['viewport'][0]}x{settings['viewport'][1]}, {figures['machine']['browser']}",
        f"open (parse, configure, autosave, draw, next frame): median {opened['median']:.0f} ms over "
        f"{len(opened['all'])} opens ({', '.join(f'{v:.0f}' for v in opened['all'])} ms); "
        f"target < {OPEN_TARGET_MS:g} ms: {verdict}",
        f"undo history per user action (snapshot and compare): median {figures['undo_checkpoint_ms']['median']:.1f} ms",
        "",
    ]
    rows = []
    for view, pan in figures["pan"].items():
        check = figures["checks"][f"pan_{view.replace(' ', '_')}_under_{PAN_TARGET_MS:g}ms"]
        draw = pan["draw_ms"]
        rows.append(
            [
                view,
                f"{pan['scale']:.2f}",
                f"{pan['drawn_nodes_median']:g}",
                f"{draw['median']:.2f}",
                f"{draw['p90']:.2f}",
                f"{draw['max']:.2f}",
                f"{pan['frame_interval_ms']['median']:.1f}",
                "ok" if check else "MISSED",
            ]
        )
    headers = ["pan view", "zoom", "drawn nodes", "draw p50 ms", "p90", "max", "frame p50 ms"]
    lines.append(format_table([*headers, f"< {PAN_TARGET_MS:g} ms"], rows))
    return "\n".join(lines)


def plot(path: Path, figures: dict[str, Any]) -> Path:
    """Draw time of each pan frame, per view, against the 16 ms target."""
    series = {
        view: [(index + 1, max(ms, 0.01)) for index, ms in enumerate(raw["draw_ms"])]
        for view, raw in figures["raw"].items()
    }
    frames = max(len(points) for points in series.values())
    series[f"target {PAN_TARGET_MS:g} ms"] = [(1, PAN_TARGET_MS), (frames, PAN_TARGET_MS)]
    chart = draw_line_chart(
        f"Panning a {figures['settings']['nodes']}-node graph",
        "frame",
        "canvas draw (ms)",
        series,
        log_x=False,
    )
    return side_by_side(path, [chart])


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    results = ROOT / "bench" / "results"
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=1000, help="nodes in the workflow")
    parser.add_argument("--repeats", type=int, default=5, help="timed opens")
    parser.add_argument("--frames", type=int, default=120, help="pan frames per view")
    parser.add_argument("--width", type=int, default=1280, help="viewport width")
    parser.add_argument("--height", type=int, default=800, help="viewport height")
    parser.add_argument("--chromium", type=Path, default=CHROMIUM, help="the Chromium executable")
    parser.add_argument("--out", type=Path, default=results / "editor.json")
    parser.add_argument("--plot", type=Path, default=results / "editor_pan.png")
    parser.add_argument("--screenshot", type=Path, default=results / "editor_1000_nodes.png")
    args = parser.parse_args(argv)
    for name in ("nodes", "repeats", "frames", "width", "height"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if not args.chromium.is_file():
        parser.error(f"{args.chromium} is missing: apt-get install -y --no-install-recommends chromium")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="reelgraph-editor-bench-") as temp:
        raw = measure(args, Path(temp))
    figures = report(args, raw)
    print(summary_text(figures))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2))
    print(f"\nwrote {args.out}, {plot(args.plot, figures)} and {args.screenshot}")


if __name__ == "__main__":
    main()
