"""Sparse self-attention for diffusers' Wan transformer: a processor for ``attn1`` of the chosen blocks that does
what ``WanAttnProcessor`` does (projections, q/k norms, rotary embedding, output projection) with the attention
itself computed by :mod:`models.accelerate.sparse_attention`.

A forward pre-hook on the transformer reads the latent shape [B, C, T, H, W] and ``config.patch_size`` to set the
token grid, and counts forward calls: the first ``dense_steps`` calls stay dense, as STA and Sparse VideoGen keep
the early, layout-forming steps dense. ``apply_sparse_attention`` returns a handle whose ``remove()`` (or the end of
a ``with`` block) puts the original processors back and drops the hook.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

import torch
import torch.nn.functional as F

from models.accelerate.sparse_attention import (
    Backend,
    SparseAttention,
    SparsePattern,
    TokenGrid,
    classify_heads,
    sliding_tile_mask,
    spatial_mask,
    temporal_mask,
)

if TYPE_CHECKING:
    from diffusers.models.transformers.transformer_wan import WanAttention

__all__ = ["SparseAttentionConfig", "SparseAttentionHandle", "SparseWanAttnProcessor", "apply_sparse_attention"]

Method = Literal["sliding_tile", "svg"]


@dataclass(frozen=True)
class SparseAttentionConfig:
    """How to sparsify Wan self-attention.

    ``sliding_tile``: every head uses ``tile`` (latent frames, rows, columns) tiles and a ``window`` in tiles.
    ``svg``: on every sparse call each layer profiles ``sample_rows`` query rows and gives each head the spatial or
    temporal mask (``frame_width``, ``radius``, ``sink_frames``) whose relative error is smallest, or dense attention
    when that error exceeds ``tolerance``. ``dense_steps`` counts transformer forward calls (a step whose guidance
    runs the transformer twice counts twice); blocks ``layer_start`` up to ``layer_stop`` (exclusive, None: the
    last) are sparsified.
    """

    method: Method = "sliding_tile"
    tile: tuple[int, int, int] = (4, 8, 8)
    window: tuple[int, int, int] = (3, 3, 3)
    sample_rows: int = 64
    tolerance: float = 0.05
    frame_width: int = 0
    radius: int = 0
    sink_frames: int = 0
    dense_steps: int = 0
    layer_start: int = 0
    layer_stop: int | None = None
    backend: Backend = "auto"

    def __post_init__(self) -> None:
        if self.method not in ("sliding_tile", "svg"):
            raise ValueError(f"sparse attention: method {self.method!r} must be 'sliding_tile' or 'svg'")
        for name, sizes in (("tile", self.tile), ("window", self.window)):
            if len(sizes) != 3 or min(sizes) < 1:
                raise ValueError(f"sparse attention: {name} {tuple(sizes)} must be three integers >= 1")
        if self.dense_steps < 0 or self.layer_start < 0:
            raise ValueError(
                f"sparse attention: dense_steps ({self.dense_steps}) and layer_start ({self.layer_start}) must be >= 0"
            )
        if self.layer_stop is not None and self.layer_stop <= self.layer_start:
            raise ValueError(
                f"sparse attention: layer_stop ({self.layer_stop}) must be above layer_start ({self.layer_start})"
            )

    def patterns(self, grid: TokenGrid) -> tuple[SparsePattern, ...]:
        """The sliding-tile pattern, or the SVG candidates (spatial, temporal), for one grid."""
        if self.method == "sliding_tile":
            return (sliding_tile_mask(grid, self.tile, self.window),)
        return (
            spatial_mask(grid, self.frame_width, self.sink_frames),
            temporal_mask(grid, self.radius, self.sink_frames),
        )


class _SparseRun:
    """What the processors of one installation share: the config, the current grid and its patterns, the forward
    call count, and the attention kernel (whose mask cache belongs to the current grid)."""

    def __init__(self, config: SparseAttentionConfig) -> None:
        self.config = config
        self.calls = 0
        self.held_dense = False  # set between steps by a sampling run that keeps a step dense
        self.grid: TokenGrid | None = None
        self.patterns: tuple[SparsePattern, ...] = ()
        self.kernel = SparseAttention(config.backend)

    def start_call(self, latent_shape: torch.Size, patch_size: tuple[int, int, int]) -> None:
        """Counts a transformer forward and sets the grid of its latent [B, C, T, H, W]."""
        self.calls += 1
        frames, height, width = (size // patch for size, patch in zip(latent_shape[2:], patch_size, strict=True))
        grid = TokenGrid(frames, height, width)
        if grid != self.grid:
            self.grid = grid
            self.patterns = self.config.patterns(grid)
            self.kernel = SparseAttention(self.config.backend)

    @property
    def sparse_now(self) -> bool:
        return self.grid is not None and not self.held_dense and self.calls > self.config.dense_steps

    def head_patterns(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> tuple[SparsePattern | None, ...]:
        """Each head's pattern for this call; q, k, v: [batch, heads, tokens, head_dim]."""
        if self.config.method == "sliding_tile":
            return self.patterns * q.shape[1]
        assert self.grid is not None
        return classify_heads(
            q, k, v, self.grid, self.config.sample_rows, self.patterns, self.config.tolerance
        ).patterns


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Wan's rotary embedding: channel pairs (2i, 2i+1) rotated by the pair's angle (cos/sin repeat per pair)."""
    real, imag = x.unflatten(-1, (-1, 2)).unbind(-1)
    cos, sin = cos[..., 0::2], sin[..., 0::2]
    return torch.stack((real * cos - imag * sin, real * sin + imag * cos), dim=-1).flatten(-2).type_as(x)


class SparseWanAttnProcessor:
    """Processor for a Wan self-attention (``attn1``): Wan's projections, norms and rotary embedding, then sparse
    attention once the run is past its dense calls."""

    def __init__(self, run: _SparseRun) -> None:
        self.run = run

    def __call__(
        self,
        attn: WanAttention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        rotary_emb: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        if encoder_hidden_states is not None or attention_mask is not None:
            raise ValueError("SparseWanAttnProcessor: serves self-attention without a mask only")
        if getattr(attn, "fused_projections", False):
            query, key, value = attn.to_qkv(hidden_states).chunk(3, dim=-1)
        else:
            query, key, value = attn.to_q(hidden_states), attn.to_k(hidden_states), attn.to_v(hidden_states)
        query, key = attn.norm_q(query), attn.norm_k(key)
        query, key, value = (tensor.unflatten(2, (attn.heads, -1)) for tensor in (query, key, value))
        if rotary_emb is not None:
            query, key = _rotate(query, *rotary_emb), _rotate(key, *rotary_emb)
        # [batch, tokens, heads, dim] -> [batch, heads, tokens, dim] for the attention kernels
        query, key, value = (tensor.transpose(1, 2) for tensor in (query, key, value))
        if self.run.sparse_now:
            out = self.run.kernel(query, key, value, self.run.head_patterns(query, key, value))
        else:
            out = F.scaled_dot_product_attention(query, key, value)
        out = out.transpose(1, 2).flatten(2, 3).type_as(query)
        return attn.to_out[1](attn.to_out[0](out))


class SparseAttentionHandle:
    """Undoes :func:`apply_sparse_attention`: ``remove()`` restores the original processors and drops the hook; also
    a context manager. ``run`` exposes the shared state (grid, call count) for inspection."""

    def __init__(
        self,
        originals: dict[WanAttention, Any],
        hook: torch.utils.hooks.RemovableHandle,
        run: _SparseRun,
    ) -> None:
        self._originals = originals
        self._hook = hook
        self.run = run

    def remove(self) -> None:
        for attention, processor in self._originals.items():
            attention.set_processor(processor)
        self._originals = {}
        self._hook.remove()

    def __enter__(self) -> SparseAttentionHandle:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.remove()


def apply_sparse_attention(transformer: torch.nn.Module, config: SparseAttentionConfig) -> SparseAttentionHandle:
    """Installs sparse self-attention on ``transformer.blocks[layer_start:layer_stop]`` (a diffusers Wan transformer)
    and a pre-hook that sets the token grid from each forward's latent."""
    blocks = transformer.blocks
    stop = len(blocks) if config.layer_stop is None else config.layer_stop
    if stop > len(blocks):
        raise ValueError(f"sparse attention: layer_stop ({stop}) exceeds the transformer's {len(blocks)} blocks")
    run = _SparseRun(config)
    patch_size = tuple(transformer.config.patch_size)

    def set_grid(module: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        latent = args[0] if args else kwargs["hidden_states"]
        run.start_call(latent.shape, patch_size)

    originals = {}
    for block in blocks[config.layer_start : stop]:
        originals[block.attn1] = block.attn1.processor
        block.attn1.set_processor(SparseWanAttnProcessor(run))
    hook = transformer.register_forward_pre_hook(set_grid, with_kwargs=True)
    return SparseAttentionHandle(originals, hook, run)
