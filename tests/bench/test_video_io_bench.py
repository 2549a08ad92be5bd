"""The video I/O benchmark still runs end to end (a tiny clip) and writes its JSON and plot."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_benchmark_writes_figures(tmp_path: Path) -> None:
    out, plot = tmp_path / "video_io.json", tmp_path / "video_io.png"
    command = [sys.executable, "bench/video_io.py", "--frames", "12", "--size", "64", "--repeats", "2"]
    command += ["--memory-frames", "30", "--out", str(out), "--plot", str(plot)]
    completed = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr
    figures = json.loads(out.read_text())
    assert set(figures["speed"]["median_fps"]) == {"decode_ours", "decode_raw", "encode_ours", "encode_raw"}
    assert all(len(values) == 2 for values in figures["speed"]["fps"].values())
    memory = figures["memory"]
    assert memory["frames_in_file"] == 30 and memory["frames_bytes"] == 30 * 64 * 64 * 3 * 4
    assert memory["peak_rss"] > memory["frames_bytes"]
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "decode: ours" in completed.stdout and "peak RSS" in completed.stdout
