"""ApplySparseAttention on the tiny Wan 2.1 T2V model: a window covering the whole latent equals dense attention, a
one-tile window changes the result, steps before start_percent stay dense (start 1: exactly dense), the shared MODEL
is left as it was, and networks other than Wan's are refused by name."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from nodes.accelerate import ApplySparseAttention
from nodes.animatediff import EmptyAnimateDiffLatent
from nodes.latent import EmptyHunyuanLatentVideo
from nodes.loaders import CheckpointLoaderSimple
from tests.nodes import fidelity
from tests.nodes.node_runner import NodeRunner
from tests.nodes.wan.parts import wan_parts

T2V = "wan2.1_t2v_1.3B_fp16.safetensors"
SIZE, LENGTH, STEPS, CFG = 48, 9, 3, 5.0  # a 3 x 3 x 3 token grid after patching


@pytest.fixture
def parts(runner: NodeRunner) -> tuple[Any, ...]:
    model, _vae, _clip_vision, positive, negative = wan_parts(runner, T2V, "a red car")
    (latent,) = runner.call(EmptyHunyuanLatentVideo, width=SIZE, height=SIZE, length=LENGTH, batch_size=1)
    return model, positive, negative, latent


def _sparse(runner: NodeRunner, model: Any, window: int, start_percent: float = 0.0, **options: Any) -> Any:
    settings = {
        "method": "sliding_tile",
        "tile_frames": 1,
        "tile_height": 1,
        "tile_width": 1,
        "window_frames": window,
        "window_height": window,
        "window_width": window,
        "tolerance": 0.05,
        "start_percent": start_percent,
        "backend": "sdpa",
        **options,
    }
    (sparse,) = runner.call(ApplySparseAttention, model=model, **settings)
    return sparse


def _sampled(runner: NodeRunner, model: Any, positive: Any, negative: Any, latent: Any) -> torch.Tensor:
    return fidelity.ksample(runner, model, positive, negative, latent, seed=3, steps=STEPS, cfg=CFG)["samples"]


def test_windows_covering_the_latent_equal_dense_and_one_tile_windows_do_not(
    runner: NodeRunner, parts: tuple[Any, ...]
) -> None:
    model, positive, negative, latent = parts
    dense = _sampled(runner, model, positive, negative, latent)
    whole = _sampled(runner, _sparse(runner, model, window=3), positive, negative, latent)
    assert (whole - dense).abs().max() < 1e-5
    narrow = _sampled(runner, _sparse(runner, model, window=1), positive, negative, latent)
    assert (narrow - dense).abs().max() > 1e-3
    assert torch.equal(_sampled(runner, model, positive, negative, latent), dense)  # nothing left on the network


def test_steps_before_start_percent_stay_dense(runner: NodeRunner, parts: tuple[Any, ...]) -> None:
    model, positive, negative, latent = parts
    dense = _sampled(runner, model, positive, negative, latent)
    held = _sampled(runner, _sparse(runner, model, window=1, start_percent=1.0), positive, negative, latent)
    assert torch.equal(held, dense)
    late = _sampled(runner, _sparse(runner, model, window=1, start_percent=0.5), positive, negative, latent)
    early = _sampled(runner, _sparse(runner, model, window=1), positive, negative, latent)
    assert not torch.equal(late, dense) and not torch.equal(late, early)


def test_svg_runs_and_bad_settings_or_other_networks_are_refused(runner: NodeRunner, parts: tuple[Any, ...]) -> None:
    model, positive, negative, latent = parts
    svg = _sampled(runner, _sparse(runner, model, window=1, method="svg", tolerance=1.0), positive, negative, latent)
    assert torch.isfinite(svg).all()
    with pytest.raises(ValueError, match=r"ApplySparseAttention: "):
        _sparse(runner, model, window=0)
    sd15, clip, _vae = runner.call(CheckpointLoaderSimple, ckpt_name="v1-5-pruned-emaonly-fp16.safetensors")
    sd_positive, sd_negative = fidelity.encode_prompts(runner, clip, "a", "b")
    (sd_latent,) = runner.call(EmptyAnimateDiffLatent, width=32, height=32, length=1, batch_size=1)
    with pytest.raises(ValueError, match=r"ApplySparseAttention: model: .* is no Wan transformer"):
        _sampled(runner, _sparse(runner, sd15, window=1), sd_positive, sd_negative, sd_latent)
