"""The editor benchmark opens and pans a generated workflow in Chromium against a real server and writes its figures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.web.conftest import CHROMIUM, LIBRARY

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(not CHROMIUM.is_file() or not LIBRARY.is_file(), reason="needs Chromium and the npm install")
def test_editor_benchmark_writes_figures(tmp_path: Path) -> None:
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed (./test.sh installs it)")
    out, plot, shot = tmp_path / "editor.json", tmp_path / "pan.png", tmp_path / "graph.png"
    command = [sys.executable, "bench/editor.py", "--nodes", "120", "--repeats", "2", "--frames", "12"]
    command += ["--out", str(out), "--plot", str(plot), "--screenshot", str(shot)]
    completed = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr
    figures = json.loads(out.read_text())
    assert figures["settings"]["nodes"] == 120
    assert [len(figures["open_ms"][kind]["all"]) for kind in ("to_drawn", "to_next_frame")] == [2, 2]
    assert all(0 < ms for ms in figures["open_ms"]["to_next_frame"]["all"])
    assert len(figures["undo_checkpoint_ms"]["all"]) == 2
    assert set(figures["pan"]) == {"zoom 1", "whole graph"}
    assert figures["pan"]["whole graph"]["drawn_nodes_median"] == 120  # every node stays in view while panning
    assert all(len(raw["draw_ms"]) >= 12 for raw in figures["raw"].values())
    assert set(figures["checks"]) == {"open_under_1000ms", "pan_zoom_1_under_16ms", "pan_whole_graph_under_16ms"}
    assert plot.read_bytes()[:8] == shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "open (parse, configure, autosave, draw, next frame)" in completed.stdout
