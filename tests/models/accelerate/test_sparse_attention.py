"""Sparse attention masks (sliding tile, Sparse VideoGen spatial/temporal), head classification and the Wan
processor: full windows equal dense attention, densities match their analytic fractions, removal restores."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from models.accelerate.sparse_attention import (
    SparsePattern,
    TokenGrid,
    classify_heads,
    mask_density,
    sliding_tile_mask,
    sparse_attention,
    spatial_mask,
    temporal_mask,
)
from models.accelerate.wan_sparse import SparseAttentionConfig, SparseWanAttnProcessor, apply_sparse_attention
from models.tiny.wan import tiny_wan_transformer

GRID = TokenGrid(4, 8, 8)
pytestmark = pytest.mark.filterwarnings("ignore:flex_attention called without torch.compile")


def _qkv(grid: TokenGrid, heads: int = 2, dim: int = 16, seed: int = 0) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(1, heads, grid.tokens, dim, generator=generator) for _ in range(3))


def _patterns(grid: TokenGrid) -> list[SparsePattern]:
    return [
        sliding_tile_mask(grid, (2, 4, 4), (1, 2, 1)),
        spatial_mask(grid, frame_width=1, sink_frames=1),
        temporal_mask(grid, radius=1),
    ]


@pytest.mark.parametrize("backend", ["sdpa", "flex"])
def test_full_window_sliding_tile_is_dense(backend: str) -> None:
    q, k, v = _qkv(GRID)
    pattern = sliding_tile_mask(GRID, (2, 4, 4), (2, 2, 2))
    assert mask_density(pattern) == 1.0
    out = sparse_attention(q, k, v, [pattern, pattern], backend)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v), atol=1e-5, rtol=0)


@pytest.mark.parametrize("grid", [GRID, TokenGrid(3, 5, 6, extra_tokens=3)])
def test_flex_and_sdpa_keep_the_same_pairs(grid: TokenGrid) -> None:
    """The reordered flex path and the boolean-mask SDPA path agree for every pattern (with a dense head mixed in)."""
    q, k, v = _qkv(grid, heads=3)
    for pattern in _patterns(grid):
        heads = [pattern, None, pattern]
        flex = sparse_attention(q, k, v, heads, "flex")
        torch.testing.assert_close(flex, sparse_attention(q, k, v, heads, "sdpa"), atol=1e-5, rtol=0)
        torch.testing.assert_close(flex[:, 1], F.scaled_dot_product_attention(q, k, v)[:, 1], atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("grid", "tile", "window", "density"),
    [
        (GRID, (2, 4, 4), (1, 1, 1), 1 / 8),
        (GRID, (2, 4, 4), (2, 1, 2), 1 / 2),
        (GRID, (1, 2, 2), (3, 3, 1), (3 / 4) * (3 / 4) * (1 / 4)),
        (TokenGrid(5, 4, 4), (1, 4, 4), (3, 1, 1), 3 / 5),  # border windows shift inward: every query keeps 3 frames
    ],
)
def test_sliding_tile_density(grid: TokenGrid, tile: tuple, window: tuple, density: float) -> None:
    assert mask_density(sliding_tile_mask(grid, tile, window)) == pytest.approx(density, abs=1e-12)


def test_spatial_and_temporal_densities() -> None:
    assert mask_density(spatial_mask(GRID)) == pytest.approx(1 / 4)
    assert mask_density(spatial_mask(GRID, frame_width=1)) == pytest.approx((2 + 3 + 3 + 2) / 16)
    assert mask_density(spatial_mask(GRID, sink_frames=1)) == pytest.approx((1 + 2 + 2 + 2) / 16)
    assert mask_density(temporal_mask(GRID)) == pytest.approx(1 / 64)
    assert mask_density(temporal_mask(GRID, radius=1)) == pytest.approx((22 / 64) ** 2)


def test_extra_tokens_attend_and_are_attended() -> None:
    grid = TokenGrid(4, 8, 8, extra_tokens=3)
    video, extra = grid.video_tokens, grid.extra_tokens
    expected = (video * video / 4 + 2 * video * extra + extra * extra) / grid.tokens**2
    assert mask_density(spatial_mask(grid)) == pytest.approx(expected)


def test_token_order_makes_kept_pairs_whole_blocks() -> None:
    """Reordered into tiles (STA) or positions (temporal), the kept pairs fill whole 128-token blocks, so flex
    skips exactly the pruned fraction."""
    grid = TokenGrid(4, 16, 8)
    assert sliding_tile_mask(grid, (2, 8, 8), (1, 1, 1)).block_mask().sparsity() == pytest.approx(75.0)
    assert temporal_mask(grid).block_mask().sparsity() == pytest.approx(75.0)
    assert spatial_mask(grid).block_mask().sparsity() == pytest.approx(75.0)


def test_narrow_window_changes_the_output() -> None:
    q, k, v = _qkv(GRID)
    pattern = sliding_tile_mask(GRID, (2, 4, 4), (1, 1, 1))
    out = sparse_attention(q, k, v, [pattern, pattern], "sdpa")
    assert (out - F.scaled_dot_product_attention(q, k, v)).abs().max() > 0.1


def _one_hot_heads(grid: TokenGrid, dim: int = 32, sharpness: float = 12.0) -> tuple[torch.Tensor, ...]:
    """Head 0 matches tokens of the same frame, head 1 tokens of the same position, head 2 attends uniformly."""
    frame, row, column = grid.coords(torch.arange(grid.tokens))
    position = row * grid.width + column
    qk = torch.zeros(1, 3, grid.tokens, dim)
    qk[0, 0] = F.one_hot(frame, dim).float()
    qk[0, 1] = F.one_hot(position, dim).float()
    query = qk * sharpness * math.sqrt(math.sqrt(dim))
    query[0, 2] = 0
    key = qk * sharpness * math.sqrt(math.sqrt(dim))
    value = torch.randn(1, 3, grid.tokens, dim, generator=torch.Generator().manual_seed(1))
    return query, key, value


def test_classify_heads_finds_spatial_temporal_and_dense_heads() -> None:
    grid = TokenGrid(4, 4, 4)
    q, k, v = _one_hot_heads(grid)
    classification = classify_heads(q, k, v, grid, sample_rows=16, tolerance=0.05)
    assert classification.names == ("spatial", "temporal", "dense")
    assert classification.errors.shape == (3, 2)
    assert float(classification.errors[0, 0]) < 1e-6 and float(classification.errors[1, 1]) < 1e-6


def test_bad_arguments_name_the_problem() -> None:
    q, k, v = _qkv(GRID)
    with pytest.raises(ValueError, match="window"):
        sliding_tile_mask(GRID, (2, 4, 4), (0, 1, 1))
    with pytest.raises(ValueError, match="1 head patterns for 2 heads"):
        sparse_attention(q, k, v, [None], "sdpa")
    with pytest.raises(ValueError, match="layer_stop"):
        SparseAttentionConfig(layer_start=2, layer_stop=1)
    with pytest.raises(ValueError, match="tile"):
        SparseAttentionConfig(tile=(0, 8, 8))


@pytest.fixture(scope="module")
def wan() -> torch.nn.Module:
    return tiny_wan_transformer("wan2.1_t2v_1.3B_fp16", rounded=False)


def _run(model: torch.nn.Module) -> torch.Tensor:
    generator = torch.Generator().manual_seed(2)
    latent = torch.randn(1, 16, 3, 8, 8, generator=generator)  # patch (1, 2, 2): a 3 x 4 x 4 token grid
    text = torch.randn(1, 5, 64, generator=generator)
    with torch.no_grad():
        return model(hidden_states=latent, timestep=torch.tensor([500]), encoder_hidden_states=text)[0]


def test_wan_full_window_matches_and_removal_restores(wan: torch.nn.Module) -> None:
    dense = _run(wan)
    full = SparseAttentionConfig(tile=(1, 2, 2), window=(3, 2, 2), backend="sdpa")
    with apply_sparse_attention(wan, full) as handle:
        torch.testing.assert_close(_run(wan), dense, atol=1e-5, rtol=0)
        assert handle.run.grid == TokenGrid(3, 4, 4)
    narrow = apply_sparse_attention(wan, SparseAttentionConfig(tile=(1, 2, 2), window=(1, 1, 1), backend="sdpa"))
    assert (_run(wan) - dense).abs().max() > 1e-3
    narrow.remove()
    assert torch.equal(_run(wan), dense)


def test_wan_dense_steps_and_layer_range(wan: torch.nn.Module) -> None:
    dense = _run(wan)
    config = SparseAttentionConfig(tile=(1, 2, 2), window=(1, 1, 1), dense_steps=1, layer_start=1, backend="sdpa")
    original = wan.blocks[0].attn1.processor
    with apply_sparse_attention(wan, config):
        assert torch.equal(_run(wan), dense)
        assert (_run(wan) - dense).abs().max() > 1e-3
        assert wan.blocks[0].attn1.processor is original
        assert isinstance(wan.blocks[1].attn1.processor, SparseWanAttnProcessor)
    with pytest.raises(ValueError, match="layer_stop"):
        apply_sparse_attention(wan, SparseAttentionConfig(layer_stop=3))


def test_wan_svg_runs_and_restores(wan: torch.nn.Module) -> None:
    dense = _run(wan)
    with apply_sparse_attention(wan, SparseAttentionConfig(method="svg", sample_rows=8, tolerance=1e9)):
        assert (_run(wan) - dense).abs().max() > 1e-4
    assert torch.equal(_run(wan), dense)
