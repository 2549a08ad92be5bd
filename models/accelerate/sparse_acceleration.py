"""Sparse attention as an acceleration a MODEL carries (``ApplySparseAttention``): installed on the placed Wan
network for one sampling run (``apply_sparse_attention``), kept dense before ``start_percent`` of the sampling (the
first steps set the layout, as STA and Sparse VideoGen keep their early steps dense), removed after the run."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from models.accelerate.wan_sparse import SparseAttentionConfig, SparseAttentionHandle, apply_sparse_attention
from models.sampling.model_sampling import ModelSampling

__all__ = ["SparseAttentionAcceleration"]


@dataclass(frozen=True)
class SparseAttentionAcceleration:
    """Sparse self-attention of ``config`` from ``start_percent`` of the sampling on."""

    config: SparseAttentionConfig
    start_percent: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.start_percent <= 1.0:
            raise ValueError(f"start_percent ({self.start_percent}) must be within 0..1")

    def describe(self) -> str:
        config = self.config
        if config.method == "sliding_tile":
            shape = f"tile {'x'.join(map(str, config.tile))}, window {'x'.join(map(str, config.window))}"
        else:
            shape = f"tolerance {config.tolerance:g}"
        return f"sparse attention ({config.method}, {shape}, from {self.start_percent:g})"

    def check(self, network_class: type, model: str) -> None:
        """Only diffusers' Wan transformers (and their subclasses) take it."""
        from diffusers import WanTransformer3DModel

        if not issubclass(network_class, WanTransformer3DModel):
            raise ValueError(f"ApplySparseAttention: model: {model} is no Wan transformer; sparse attention is Wan's")

    @contextmanager
    def applied(self, network: torch.nn.Module, sampling: ModelSampling) -> Iterator[_SparseStep]:
        with apply_sparse_attention(network, self.config) as handle:
            yield _SparseStep(handle, sampling.percent_to_sigma(self.start_percent))


class _SparseStep:
    """Holds the attention dense for steps above the start sigma."""

    def __init__(self, handle: SparseAttentionHandle, sigma_start: float) -> None:
        self._handle = handle
        self._sigma_start = sigma_start

    @contextmanager
    def step(self, sigma: float) -> Iterator[None]:
        self._handle.run.held_dense = sigma > self._sigma_start
        yield
