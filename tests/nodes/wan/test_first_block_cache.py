"""ApplyFirstBlockCache on the tiny Wan 2.1 T2V model: exact at threshold 0; with a threshold no change stays above,
every step after the first full one runs the first block only (and within a start/end window, only the steps inside
it skip); the cache leaves the shared MODEL and its network as they were; models without diffusers' cache hooks are
refused by name. Block evaluations are counted on the blocks' feed-forward layers, which only run when a block
computes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import torch

from nodes.accelerate import ApplyFirstBlockCache
from nodes.animatediff import EmptyAnimateDiffLatent
from nodes.latent import EmptyHunyuanLatentVideo
from nodes.loaders import CheckpointLoaderSimple
from nodes.sampling_parts import BasicScheduler
from tests.nodes import fidelity
from tests.nodes.node_runner import NodeRunner
from tests.nodes.wan.parts import wan_parts

T2V = "wan2.1_t2v_1.3B_fp16.safetensors"
SIZE, LENGTH, STEPS, CFG = 32, 5, 6, 5.0
NEVER_COMPUTE = 1e6  # a threshold no relative change of the first block's residual reaches


@pytest.fixture
def parts(runner: NodeRunner) -> tuple[Any, ...]:
    model, _vae, _clip_vision, positive, negative = wan_parts(runner, T2V, "a red car")
    (latent,) = runner.call(EmptyHunyuanLatentVideo, width=SIZE, height=SIZE, length=LENGTH, batch_size=1)
    return model, positive, negative, latent


@contextmanager
def _counted_blocks(model: Any) -> Iterator[list[int]]:
    """Per transformer block, how many times it computed while the block runs."""
    with model.handle.use() as network:
        counts = [0] * len(network.blocks)
        handles = [
            block.ffn.register_forward_hook(lambda *_args, index=index: counts.__setitem__(index, counts[index] + 1))
            for index, block in enumerate(network.blocks)
        ]
    try:
        yield counts
    finally:
        for handle in handles:
            handle.remove()


def _sampled(runner: NodeRunner, model: Any, positive: Any, negative: Any, latent: Any) -> torch.Tensor:
    return fidelity.ksample(runner, model, positive, negative, latent, seed=7, steps=STEPS, cfg=CFG)["samples"]


def _cached(runner: NodeRunner, model: Any, threshold: float, window: tuple[float, float] = (0.0, 1.0)) -> Any:
    (cached,) = runner.call(
        ApplyFirstBlockCache, model=model, threshold=threshold, start_percent=window[0], end_percent=window[1]
    )
    return cached


def test_threshold_zero_is_exact_and_computes_every_block(runner: NodeRunner, parts: tuple[Any, ...]) -> None:
    model, positive, negative, latent = parts
    with _counted_blocks(model) as plain_counts:
        plain = _sampled(runner, model, positive, negative, latent)
    with _counted_blocks(model) as cached_counts:
        cached = _sampled(runner, _cached(runner, model, 0.0), positive, negative, latent)
    assert torch.equal(cached, plain)
    assert cached_counts == plain_counts == [STEPS] * len(plain_counts)  # positive and negative batched: one call


def test_a_high_threshold_runs_only_the_first_block_after_the_first_step(
    runner: NodeRunner, parts: tuple[Any, ...]
) -> None:
    model, positive, negative, latent = parts
    plain = _sampled(runner, model, positive, negative, latent)
    with _counted_blocks(model) as counts:
        cached = _sampled(runner, _cached(runner, model, NEVER_COMPUTE), positive, negative, latent)
    assert counts == [STEPS] + [1] * (len(counts) - 1)
    assert not torch.equal(cached, plain) and torch.isfinite(cached).all()
    again = _sampled(runner, model, positive, negative, latent)  # the MODEL without the node: no cache left behind
    assert torch.equal(again, plain)


def test_outside_its_window_every_block_computes(runner: NodeRunner, parts: tuple[Any, ...]) -> None:
    model, positive, negative, latent = parts
    (sigmas,) = runner.call(BasicScheduler, model=model, scheduler="simple", steps=STEPS, denoise=1.0)
    start = model.sampling.percent_to_sigma(0.5)
    inside = sum(1 for sigma in sigmas[:-1] if float(sigma) <= start)
    assert 0 < inside < STEPS
    with _counted_blocks(model) as counts:
        _sampled(runner, _cached(runner, model, NEVER_COMPUTE, (0.5, 1.0)), positive, negative, latent)
    assert counts == [STEPS] + [STEPS - inside] * (len(counts) - 1)


def test_bad_settings_and_models_without_cache_hooks_are_refused(runner: NodeRunner, parts: tuple[Any, ...]) -> None:
    model, *_ = parts
    with pytest.raises(ValueError, match=r"ApplyFirstBlockCache: start_percent \(0.8\) must not be above"):
        _cached(runner, model, 0.1, (0.8, 0.2))
    sd15, clip, _vae = runner.call(CheckpointLoaderSimple, ckpt_name="v1-5-pruned-emaonly-fp16.safetensors")
    positive, negative = fidelity.encode_prompts(runner, clip, "a", "b")
    (latent,) = runner.call(EmptyAnimateDiffLatent, width=32, height=32, length=1, batch_size=1)
    with pytest.raises(ValueError, match=r"ApplyFirstBlockCache: model: .* has no diffusers cache hooks"):
        _sampled(runner, _cached(runner, sd15, 0.1), positive, negative, latent)


def test_applying_again_replaces_the_cache_settings(runner: NodeRunner, parts: tuple[Any, ...]) -> None:
    model, *_ = parts
    twice = _cached(runner, _cached(runner, model, 0.3), 0.05)
    assert [acceleration.describe() for acceleration in twice.accelerations] == [
        "First Block Cache (threshold 0.05, 0-1)"
    ]
    assert model.accelerations == ()
