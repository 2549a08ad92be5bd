"""The sampling benchmark still runs end to end (``--quick``: tiny models on the CPU) and both sides make the same
frames; no timing is asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_benchmark_compares_same_frames_and_writes_figures(tmp_path: Path) -> None:
    out, plot = tmp_path / "sampling.json", tmp_path / "sampling.png"
    command = [sys.executable, "bench/sampling.py", "--quick", "--device", "cpu", "--threads", "1"]
    command += ["--out", str(out), "--plot", str(plot)]
    completed = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-4000:]
    figures = json.loads(out.read_text())
    settings = figures["settings"]
    assert settings["size"] == "tiny" and settings["device"] == "cpu" and settings["quick"] is True
    assert figures["machine"]["torch_threads"] == 1
    repeats, steps = settings["repeats"], settings["steps"]
    for side in ("ours", "diffusers"):
        medians = figures["medians"][side]
        assert medians["total_s"] > 0 and medians["s_per_step"] > 0 and medians["tail_s"] > 0, side
        runs = figures["samples"][side]
        assert len(runs) == repeats
        assert all(len(run["step_intervals_s"]) == steps for run in runs), side
    assert figures["samples"]["order"][:2] == [["ours", "diffusers"], ["diffusers", "ours"]]
    assert len(set(figures["samples"]["seeds"])) == repeats  # a new seed each repeat: sampling really ran
    overhead = figures["overhead"]
    assert set(overhead) >= {"ratio", "min_ratio", "paired_median_ratio", "target", "passed"}
    frames = figures["frames"]
    assert frames["shape"] == [settings["frames"], settings["height"], settings["width"], 3]
    assert frames["std"] > 0.01  # not a constant picture
    assert len(frames["max_abs_diff"]) == repeats and max(frames["max_abs_diff"]) < 1e-4
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "overhead ours/diffusers - 1" in completed.stdout
