"""The sampling benchmark still runs end to end (``--quick``: tiny models on the CPU) for every family and both sides
make the same frames; ``--families`` picks some; no timing is asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.sampling import FAMILIES, parse_args

REPO = Path(__file__).resolve().parents[2]


def _run(tmp_path: Path, *options: str) -> tuple[dict[str, Any], Path, str]:
    out, plot = tmp_path / "sampling.json", tmp_path / "sampling.png"
    command = [sys.executable, "bench/sampling.py", "--quick", "--device", "cpu", "--threads", "1", *options]
    command += ["--out", str(out), "--plot", str(plot)]
    completed = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-4000:]
    return json.loads(out.read_text()), plot, completed.stdout


def _check_entry(entry: dict[str, Any]) -> None:
    """One family's figures: both sides timed every repeat and step, the same frames."""
    settings = entry["settings"]
    assert settings["size"] == "tiny" and settings["device"] == "cpu" and settings["quick"] is True
    repeats, steps = settings["repeats"], settings["steps"]
    for side in ("ours", "diffusers"):
        medians = entry["medians"][side]
        assert medians["total_s"] > 0 and medians["s_per_step"] > 0 and medians["tail_s"] > 0, side
        runs = entry["samples"][side]
        assert len(runs) == repeats
        assert all(len(run["step_intervals_s"]) == steps for run in runs), side
    assert entry["samples"]["order"][:2] == [["ours", "diffusers"], ["diffusers", "ours"]][:repeats]
    assert len(set(entry["samples"]["seeds"])) == repeats  # a new seed each repeat: sampling really ran
    overhead = entry["overhead"]
    assert set(overhead) >= {"ratio", "min_ratio", "paired_median_ratio", "target", "passed"}
    frames = entry["frames"]
    assert frames["shape"] == [settings["frames"], settings["height"], settings["width"], 3]
    assert frames["std"] > 0.01  # not a constant picture
    assert len(frames["max_abs_diff"]) == repeats and max(frames["max_abs_diff"]) < 1e-4, settings["family"]


def test_benchmark_compares_same_frames_and_writes_figures(tmp_path: Path) -> None:
    figures, plot, stdout = _run(tmp_path)
    assert figures["machine"]["torch_threads"] == 1
    assert list(figures["families"]) == list(FAMILIES)  # every family by default
    for entry in figures["families"].values():
        _check_entry(entry)
    _check_entry(figures)  # Wan's figures stay at the top level, as before families
    assert figures["settings"]["family"] == figures["top_level_family"] == "wan"
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert stdout.count("overhead ours/diffusers - 1") == len(FAMILIES)


def test_families_option_runs_only_those(tmp_path: Path) -> None:
    figures, _, stdout = _run(tmp_path, "--families", "mochi,ltxv", "--repeats", "1")
    assert list(figures["families"]) == ["mochi", "ltxv"]
    for entry in figures["families"].values():
        _check_entry(entry)
    assert figures["top_level_family"] == "mochi" and figures["settings"]["family"] == "mochi"
    assert "WanPipeline" not in stdout


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--families", "wan,sd15"], "unknown families"),
        (["--size", "480p", "--families", "ltxv"], "no 480p models for ltxv"),
        (["--families", "ltxv", "--width", "48"], "multiples of 32 for ltxv"),
        (["--families", "mochi", "--frames", "9"], "1 + a multiple of 6 for mochi"),
        (["--families", "cogvideox", "--frames", "5"], "1 + a multiple of 8 for cogvideox"),
    ],
)
def test_families_option_rejects_what_it_cannot_run(
    options: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--device", "cpu", *options])
    assert message in capsys.readouterr().err


def test_default_families_follow_the_size() -> None:
    assert parse_args(["--device", "cpu", "--size", "tiny"]).families == tuple(FAMILIES)
    assert parse_args(["--device", "cpu", "--size", "480p"]).families == ("wan",)
