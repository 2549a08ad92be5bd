"""The executor benchmark still runs end to end (a small size) and writes its JSON and plot."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_benchmark_writes_figures(tmp_path: Path) -> None:
    out, plot = tmp_path / "executor.json", tmp_path / "executor.png"
    command = [sys.executable, "bench/executor.py", "--sizes", "10,20", "--repeats", "1", "--out", str(out)]
    completed = subprocess.run([*command, "--plot", str(plot)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr
    figures = json.loads(out.read_text())
    assert figures["sizes"] == [10, 20]
    assert set(figures["medians"]) == {"10", "20"}
    assert plot.stat().st_size > 10_000 and plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "cached 500-node re-run" in completed.stdout
