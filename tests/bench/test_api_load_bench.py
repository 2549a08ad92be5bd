"""The API load benchmark runs end to end against a real server (small settings) and writes its figures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_api_load_benchmark_writes_figures(tmp_path: Path) -> None:
    out, plot = tmp_path / "api.json", tmp_path / "api.png"
    command = [sys.executable, "bench/api_load.py", "--clients", "5", "--samples", "8", "--chain", "20"]
    command += ["--repeats", "2", "--out", str(out), "--plot", str(plot)]
    completed = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr
    figures = json.loads(out.read_text())
    assert set(figures["latency_ms"]) == {"post_prompt", "get_queue", "get_system_stats"}
    assert all(len(values) == 8 for values in figures["raw_latencies_ms"].values())
    assert len(figures["chain_to_success_s"]["all"]) == 2 and figures["ws_messages_received"] > 0
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "POST /prompt -> execution_success" in completed.stdout
