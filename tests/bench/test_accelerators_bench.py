"""The accelerator benchmark runs end to end on the tiny Wan model (one prompt, a few steps, one round) and writes
its figures and plot; its PSNR and SSIM give the analytic values on flat and shifted frames."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from bench.accelerators import PSNR_CAP_DB, REFERENCE, main, psnr_per_frame, ssim_per_frame, variants_for

TINY = ["--steps", "6", "--frames", "5", "--width", "32", "--height", "32", "--prompts", "1", "--repeats", "1"]


def test_benchmark_writes_every_variants_figures(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "accelerators.json"
    assert main([*TINY, "--out", str(out)]) == 0
    results = json.loads(out.read_text())
    variants = results["variants"]
    assert list(variants) == [variant.name for variant in variants_for("tiny")]
    for name, figures in variants.items():
        numbers = [value for value in figures.values() if isinstance(value, int | float)]
        assert numbers and all(math.isfinite(value) for value in numbers), name
        assert figures["sample_s"] > 0 and figures["peak_rss_bytes"] > 0 and figures["block_evaluations"] > 0
        assert len(figures["psnr_db_per_prompt"][0]) == len(figures["ssim_per_prompt"][0]) == 5  # one per frame
    baseline = variants[REFERENCE]
    assert baseline["psnr_db_mean"] == baseline["psnr_db_worst"] == PSNR_CAP_DB
    assert baseline["ssim_worst"] == pytest.approx(1.0) and baseline["speedup"] == 1.0
    assert baseline["block_evaluations"] == 6 * 2  # every step runs both tiny blocks (cfg batched: one call)
    assert min(figures["block_evaluations"] for figures in variants.values()) < baseline["block_evaluations"]
    assert out.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "fbc_0.2" in capsys.readouterr().out


def test_psnr_of_a_uniform_shift_and_of_identical_frames() -> None:
    frames = torch.rand(3, 16, 16, 3, generator=torch.Generator().manual_seed(0)) * 0.8
    assert psnr_per_frame(frames + 0.1, frames) == pytest.approx([20.0] * 3)  # 10 log10(1 / 0.1^2)
    assert psnr_per_frame(frames, frames) == [PSNR_CAP_DB] * 3


def test_ssim_of_flat_frames_is_the_luminance_term_and_one_for_identical_frames() -> None:
    dark, light = torch.full((2, 16, 16, 3), 0.2), torch.full((2, 16, 16, 3), 0.6)
    c1 = 0.01**2
    expected = (2 * 0.2 * 0.6 + c1) / (0.2**2 + 0.6**2 + c1)  # no variance: only the luminance term is left
    assert ssim_per_frame(dark, light) == pytest.approx([expected] * 2)
    generator = torch.Generator().manual_seed(0)
    noise, other = torch.rand(2, 16, 16, 3, generator=generator), torch.rand(2, 16, 16, 3, generator=generator)
    assert ssim_per_frame(noise, noise) == pytest.approx([1.0, 1.0])
    assert max(ssim_per_frame(noise, other)) < 0.2  # independent noise: nearly no structure in common
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim_per_frame(torch.rand(1, 8, 8, 3), torch.rand(1, 8, 8, 3))
