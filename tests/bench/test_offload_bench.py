"""The offload benchmark still runs end to end (a tiny transformer, one forward per policy) and writes its figures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TINY = ["--layers", "2", "--heads", "2", "--head-dim", "8", "--ffn-dim", "32", "--text-dim", "16"]
TINY += ["--text-tokens", "4", "--frames", "1", "--height", "4", "--width", "4"]


def test_benchmark_writes_figures(tmp_path: Path) -> None:
    out, plot = tmp_path / "offload.json", tmp_path / "offload.png"
    command = [sys.executable, "bench/offload.py", *TINY, "--device", "cpu", "--repeats", "1", "--rounds", "1"]
    command += ["--out", str(out), "--plot", str(plot)]
    completed = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
    figures = json.loads(out.read_text())
    policies = figures["policies"]
    assert list(policies) == ["resident", "block", "leaf", "disk"]
    assert figures["settings"]["dtype"] == "float32" and figures["machine"]["device"] == "cpu"
    weights = policies["resident"]["weights_bytes"]
    assert weights > 0
    for name, policy in policies.items():
        assert "error" not in policy, policy.get("error")
        assert len(policy["seconds"]) == 1 and policy["median_s"] > 0 and policy["warmup_s"][0] > 0
        assert len(policy["runs"]) == 1
        assert policy["weights_bytes"] == weights
        assert policy["max_abs_diff"] < 1e-4, name
        assert policy["rss_peak_forwards"] > 0 and policy["ru_maxrss"] > 0
    assert policies["resident"]["peak_resident_bytes"] == weights
    for name in ("block", "leaf", "disk"):
        assert 0 < policies[name]["peak_resident_bytes"] <= weights, name
        assert policies[name]["groups"] > 1
    assert policies["leaf"]["peak_resident_bytes"] < policies["block"]["peak_resident_bytes"]
    assert policies["disk"]["disk_bytes"] >= weights
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "x resident" in completed.stdout and "disk" in completed.stdout
