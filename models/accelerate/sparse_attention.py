"""Training-free sparse attention for video DiTs: sliding tile windows (STA) and per-head spatial/temporal masks
(Sparse VideoGen), written as flex_attention mask functions.

A pattern is one ``mask_mod(batch, head, q_idx, kv_idx) -> bool`` over tokens in the transformer's own order
(frame-major, as Wan flattens its patches), plus a token order that gathers the kept pairs into contiguous blocks
(tiles for STA, spatial positions for temporal heads): flex_attention skips whole blocks, so the reorder is what
turns the mask into saved work. The same function builds the dense boolean mask of the SDPA path, so both backends
keep exactly the same pairs.

Backends: ``"flex_compiled"`` (torch.compile'd flex_attention: the fast one, CUDA and CPU), ``"flex"`` (eager
flex_attention: correct but materialises every score, for checking), ``"sdpa"`` (a boolean mask per head group:
no speed-up, the CPU fallback), ``"auto"`` (compiled flex on CUDA, SDPA elsewhere).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch.nn.attention.flex_attention import BlockMask, create_block_mask, flex_attention

__all__ = [
    "Backend",
    "HeadClassification",
    "MaskMod",
    "SparseAttention",
    "SparsePattern",
    "TokenGrid",
    "classify_heads",
    "mask_density",
    "sliding_tile_mask",
    "sparse_attention",
    "spatial_mask",
    "temporal_mask",
]

MaskMod = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
"""flex_attention's mask function: (batch, head, q_idx, kv_idx) -> True where the pair is kept."""
Backend = Literal["auto", "sdpa", "flex", "flex_compiled"]
DENSITY_CHUNK_ROWS = 1024
"""Query rows evaluated at once when counting kept pairs, so large grids never hold the whole mask."""
DENSE_NAME = "dense"


@dataclass(frozen=True)
class TokenGrid:
    """The latent token grid after patching: ``frames x height x width`` video tokens in frame-major order
    (index = (t * height + h) * width + w), then ``extra_tokens`` (e.g. text) that every pattern keeps both ways."""

    frames: int
    height: int
    width: int
    extra_tokens: int = 0

    def __post_init__(self) -> None:
        if min(self.frames, self.height, self.width) < 1 or self.extra_tokens < 0:
            raise ValueError(f"TokenGrid: sizes must be positive, got {self}")

    @property
    def video_tokens(self) -> int:
        return self.frames * self.height * self.width

    @property
    def tokens(self) -> int:
        return self.video_tokens + self.extra_tokens

    def coords(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(frame, row, column) of video token indices (meaningless for extra tokens)."""
        return index // (self.height * self.width), (index // self.width) % self.height, index % self.width

    def is_extra(self, index: torch.Tensor) -> torch.Tensor:
        return index >= self.video_tokens


@dataclass(frozen=True, eq=False)
class SparsePattern:
    """A named mask over a grid's tokens and the token order that makes its kept pairs block-contiguous
    (``None``: the grid's own order already does). Compared and hashed by identity, so it can key mask caches."""

    name: str
    grid: TokenGrid
    mask_mod: MaskMod
    order: torch.Tensor | None = None

    def dense_mask(self, rows: torch.Tensor | None = None, device: torch.device | str = "cpu") -> torch.Tensor:
        """The boolean [rows, tokens] mask (all rows when ``rows`` is None)."""
        keys = torch.arange(self.grid.tokens, device=device)
        queries = keys if rows is None else rows.to(device)
        zero = torch.zeros((), dtype=torch.long, device=device)
        return self.mask_mod(zero, zero, queries[:, None], keys[None, :])

    def reordered_mask_mod(self, device: torch.device | str = "cpu") -> MaskMod:
        """The mask over tokens in ``order`` (position i holds original token order[i]), indexing on ``device``."""
        if self.order is None:
            return self.mask_mod
        order, mask_mod = self.order.to(device), self.mask_mod

        def reordered(b: torch.Tensor, h: torch.Tensor, q_idx: torch.Tensor, kv_idx: torch.Tensor) -> torch.Tensor:
            return mask_mod(b, h, order[q_idx], order[kv_idx])

        return reordered

    def block_mask(self, device: torch.device | str = "cpu") -> BlockMask:
        """flex_attention's block mask over the reordered tokens (the blocks it skips are the saved work)."""
        tokens = self.grid.tokens
        return create_block_mask(self.reordered_mask_mod(device), None, None, tokens, tokens, device=device)


def _check_triple(name: str, values: Sequence[int], minimum: int) -> tuple[int, int, int]:
    if len(values) != 3 or any(int(v) < minimum for v in values):
        raise ValueError(f"sparse attention: {name} {tuple(values)} must be three integers >= {minimum}")
    return int(values[0]), int(values[1]), int(values[2])


def _with_extra(grid: TokenGrid, video_mask: MaskMod) -> MaskMod:
    """Keeps every pair that involves an extra token, ``video_mask`` decides the rest."""
    if grid.extra_tokens == 0:
        return video_mask

    def mask_mod(b: torch.Tensor, h: torch.Tensor, q_idx: torch.Tensor, kv_idx: torch.Tensor) -> torch.Tensor:
        return grid.is_extra(q_idx) | grid.is_extra(kv_idx) | video_mask(b, h, q_idx, kv_idx)

    return mask_mod


def _order_by(grid: TokenGrid, video_key: torch.Tensor) -> torch.Tensor:
    """Token order sorting video tokens by ``video_key`` (stable), extra tokens kept last."""
    video_order = torch.argsort(video_key, stable=True)
    return torch.cat([video_order, torch.arange(grid.video_tokens, grid.tokens)])


def _window_start(tile_index: torch.Tensor, tiles: int, window: int) -> torch.Tensor:
    """First tile of the window around ``tile_index``: centred, shifted inward at the borders so that every query
    tile sees ``min(window, tiles)`` tiles along the axis."""
    span = min(window, tiles)
    return torch.clamp(tile_index - span // 2, 0, tiles - span)


def sliding_tile_mask(grid: TokenGrid, tile: Sequence[int], window: Sequence[int]) -> SparsePattern:
    """Sliding tile attention: tokens are grouped into ``tile`` (frames, rows, columns) tiles; a query tile keeps the
    key tiles of a ``window`` (in tiles per axis) centred on it, shifted inward at the grid's borders. A window at
    least as large as the grid in tiles is dense attention."""
    tile = _check_triple("tile", tile, 1)
    window = _check_triple("window", window, 1)
    sizes = (grid.frames, grid.height, grid.width)
    tiles = tuple(math.ceil(size / edge) for size, edge in zip(sizes, tile, strict=True))

    def video_mask(b: torch.Tensor, h: torch.Tensor, q_idx: torch.Tensor, kv_idx: torch.Tensor) -> torch.Tensor:
        keep = torch.ones_like(q_idx == kv_idx)
        for q_coord, k_coord, edge, count, span in zip(
            grid.coords(q_idx), grid.coords(kv_idx), tile, tiles, window, strict=True
        ):
            start = _window_start(q_coord // edge, count, span)
            k_tile = k_coord // edge
            keep = keep & (k_tile >= start) & (k_tile < start + min(span, count))
        return keep

    t, y, x = grid.coords(torch.arange(grid.video_tokens))
    tile_id = ((t // tile[0]) * tiles[1] + y // tile[1]) * tiles[2] + x // tile[2]
    return SparsePattern("sliding_tile", grid, _with_extra(grid, video_mask), _order_by(grid, tile_id))


def spatial_mask(grid: TokenGrid, frame_width: int = 0, sink_frames: int = 0) -> SparsePattern:
    """Sparse VideoGen's spatial head: a query keeps the keys of its own frame and of frames up to ``frame_width``
    away, plus every key of the first ``sink_frames`` frames (an attention sink)."""
    if frame_width < 0 or sink_frames < 0:
        raise ValueError(f"spatial_mask: frame_width ({frame_width}) and sink_frames ({sink_frames}) must be >= 0")

    def video_mask(b: torch.Tensor, h: torch.Tensor, q_idx: torch.Tensor, kv_idx: torch.Tensor) -> torch.Tensor:
        q_frame, k_frame = grid.coords(q_idx)[0], grid.coords(kv_idx)[0]
        return ((q_frame - k_frame).abs() <= frame_width) | (k_frame < sink_frames)

    return SparsePattern("spatial", grid, _with_extra(grid, video_mask))


def temporal_mask(grid: TokenGrid, radius: int = 0, sink_frames: int = 0) -> SparsePattern:
    """Sparse VideoGen's temporal head: a query keeps, in every frame, the keys within ``radius`` rows and columns
    of its own position (0: the same position only), plus every key of the first ``sink_frames`` frames."""
    if radius < 0 or sink_frames < 0:
        raise ValueError(f"temporal_mask: radius ({radius}) and sink_frames ({sink_frames}) must be >= 0")

    def video_mask(b: torch.Tensor, h: torch.Tensor, q_idx: torch.Tensor, kv_idx: torch.Tensor) -> torch.Tensor:
        _, q_row, q_col = grid.coords(q_idx)
        k_frame, k_row, k_col = grid.coords(kv_idx)
        near = ((q_row - k_row).abs() <= radius) & ((q_col - k_col).abs() <= radius)
        return near | (k_frame < sink_frames)

    t, y, x = grid.coords(torch.arange(grid.video_tokens))
    position_major = (y * grid.width + x) * grid.frames + t
    return SparsePattern("temporal", grid, _with_extra(grid, video_mask), _order_by(grid, position_major))


def mask_density(pattern: SparsePattern) -> float:
    """Fraction of (query, key) pairs the pattern keeps, counted row chunk by row chunk."""
    kept = 0
    for start in range(0, pattern.grid.tokens, DENSITY_CHUNK_ROWS):
        rows = torch.arange(start, min(start + DENSITY_CHUNK_ROWS, pattern.grid.tokens))
        kept += int(pattern.dense_mask(rows).sum())
    return kept / pattern.grid.tokens**2


class SparseAttention:
    """Attention where each head follows its own pattern (``None``: dense). Heads sharing a pattern run together;
    built masks are cached per pattern, backend and device, so one instance should serve one token grid's run."""

    def __init__(self, backend: Backend = "auto") -> None:
        self.backend = backend
        self._masks: dict[tuple[SparsePattern, str, str], torch.Tensor | BlockMask] = {}
        self._compiled_flex: Callable[..., torch.Tensor] | None = None

    def __call__(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, head_patterns: Sequence[SparsePattern | None]
    ) -> torch.Tensor:
        """q, k, v: [batch, heads, tokens, head_dim]; one pattern (or None) per head."""
        if len(head_patterns) != q.shape[1]:
            raise ValueError(f"sparse_attention: {len(head_patterns)} head patterns for {q.shape[1]} heads")
        groups = _group_heads(head_patterns)
        if len(groups) == 1:
            return self._attend(q, k, v, head_patterns[0])
        out = torch.empty_like(q)
        for pattern, heads in groups.items():
            index = torch.tensor(heads, device=q.device)
            out[:, index] = self._attend(q[:, index], k[:, index], v[:, index], pattern)
        return out

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, pattern: SparsePattern | None) -> torch.Tensor:
        if pattern is None:
            return F.scaled_dot_product_attention(q, k, v)
        if pattern.grid.tokens != q.shape[2]:
            raise ValueError(f"sparse_attention: {q.shape[2]} tokens, but the pattern's grid has {pattern.grid.tokens}")
        backend = self._resolve(q.device)
        if backend == "sdpa":
            return F.scaled_dot_product_attention(q, k, v, attn_mask=self._mask(pattern, backend, q.device))
        block_mask = self._mask(pattern, backend, q.device)
        flex = self._flex(backend)
        if pattern.order is None:
            return flex(q, k, v, block_mask=block_mask)
        order = pattern.order.to(q.device)
        reordered = flex(q[:, :, order], k[:, :, order], v[:, :, order], block_mask=block_mask)
        return reordered[:, :, torch.argsort(order)]

    def _resolve(self, device: torch.device) -> str:
        if self.backend == "auto":
            return "flex_compiled" if device.type == "cuda" else "sdpa"
        return self.backend

    def _flex(self, backend: str) -> Callable[..., torch.Tensor]:
        if backend == "flex":
            return flex_attention
        if self._compiled_flex is None:
            self._compiled_flex = torch.compile(flex_attention)
        return self._compiled_flex

    def _mask(self, pattern: SparsePattern, backend: str, device: torch.device) -> torch.Tensor | BlockMask:
        key = (pattern, backend, str(device))
        if key not in self._masks:
            if backend == "sdpa":
                self._masks[key] = pattern.dense_mask(device=device)
            else:
                self._masks[key] = pattern.block_mask(device)
        return self._masks[key]


def _group_heads(head_patterns: Sequence[SparsePattern | None]) -> dict[SparsePattern | None, list[int]]:
    groups: dict[SparsePattern | None, list[int]] = {}
    for head, pattern in enumerate(head_patterns):
        groups.setdefault(pattern, []).append(head)
    return groups


def sparse_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    head_patterns: Sequence[SparsePattern | None],
    backend: Backend = "auto",
) -> torch.Tensor:
    """One-off :class:`SparseAttention` call (masks are rebuilt each time: keep an instance for repeated calls)."""
    return SparseAttention(backend)(q, k, v, head_patterns)


@dataclass(frozen=True)
class HeadClassification:
    """Each head's chosen pattern (None: dense) and its relative error per candidate, [heads, candidates]."""

    patterns: tuple[SparsePattern | None, ...]
    errors: torch.Tensor

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(DENSE_NAME if pattern is None else pattern.name for pattern in self.patterns)


def classify_heads(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    grid: TokenGrid,
    sample_rows: int = 64,
    candidates: Sequence[SparsePattern] | None = None,
    tolerance: float = 0.05,
    seed: int = 0,
) -> HeadClassification:
    """Sparse VideoGen's online profile: on ``sample_rows`` random query rows, each candidate's masked output is
    compared with dense attention; a head takes the candidate with the smallest relative squared error, or stays
    dense when even that exceeds ``tolerance``. Candidates default to ``spatial_mask`` and ``temporal_mask``."""
    if candidates is None:
        candidates = (spatial_mask(grid), temporal_mask(grid))
    if not candidates or sample_rows < 1 or tolerance < 0:
        raise ValueError(
            f"classify_heads: need candidates, sample_rows >= 1 ({sample_rows}) and tolerance >= 0 ({tolerance})"
        )
    generator = torch.Generator().manual_seed(seed)
    rows = torch.randperm(grid.tokens, generator=generator)[: min(sample_rows, grid.tokens)]
    scores = (q[:, :, rows.to(q.device)].float() @ k.float().transpose(-1, -2)) / math.sqrt(q.shape[-1])
    values = v.float()
    dense = torch.softmax(scores, dim=-1) @ values
    dense_energy = dense.square().sum(dim=(0, 2, 3)).clamp_min(torch.finfo(torch.float32).tiny)
    errors = []
    for candidate in candidates:
        keep = candidate.dense_mask(rows, device=q.device)
        masked = torch.softmax(scores.masked_fill(~keep, float("-inf")), dim=-1) @ values
        errors.append((masked - dense).square().sum(dim=(0, 2, 3)) / dense_energy)
    error_table = torch.stack(errors, dim=1).cpu()
    best_error, best = error_table.min(dim=1)
    patterns = tuple(
        candidates[int(choice)] if float(error) <= tolerance else None
        for choice, error in zip(best, best_error, strict=True)
    )
    return HeadClassification(patterns, error_table)
