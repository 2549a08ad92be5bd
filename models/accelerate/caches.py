"""Feature caches for a sampling run, through diffusers' cache hooks (``CacheMixin.enable_cache``): First Block Cache
skips the remaining transformer blocks when the first block's residual has changed less than a threshold since the
last full step (relative mean absolute difference) and reuses their cached residual instead.

A cache holds state between network calls, so it is enabled on the placed network for one sampling run and removed
after it (the MODEL value is shared and stays unchanged). Each batched group of conditioning entries keeps its own
cache (``cache_context``), as diffusers' pipelines keep the conditional and unconditional passes apart. Outside its
start/end percent window a cache computes every block: the first steps set the picture's layout and are kept exact.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from models.sampling.model_sampling import ModelSampling

__all__ = ["CacheRun", "FirstBlockCache", "cache_context"]

_ALWAYS_COMPUTE = -1.0  # a threshold no relative difference (>= 0) stays under


@dataclass(frozen=True)
class FirstBlockCache:
    """First Block Cache settings: skip the other blocks while the first block's residual changes by at most
    ``threshold`` (relative), within ``start_percent`` .. ``end_percent`` of the sampling."""

    threshold: float
    start_percent: float = 0.0
    end_percent: float = 1.0

    def __post_init__(self) -> None:
        if self.threshold < 0:
            raise ValueError(f"threshold ({self.threshold}) must not be negative")
        if not 0.0 <= self.start_percent <= self.end_percent <= 1.0:
            raise ValueError(
                f"start_percent ({self.start_percent}) must not be above end_percent ({self.end_percent}), both "
                "within 0..1"
            )

    def describe(self) -> str:
        return f"First Block Cache (threshold {self.threshold:g}, {self.start_percent:g}-{self.end_percent:g})"

    def check(self, network_class: type, model: str) -> None:
        """Only networks with diffusers' cache hooks (``CacheMixin``) take it."""
        from diffusers.models.cache_utils import CacheMixin

        if not issubclass(network_class, CacheMixin):
            raise ValueError(
                f"ApplyFirstBlockCache: model: {model} has no diffusers cache hooks (transformer models such as Wan "
                "take them)"
            )

    @contextmanager
    def applied(self, network: torch.nn.Module, sampling: ModelSampling) -> Iterator[CacheRun]:
        """Enabled on ``network`` while the block runs, then removed."""
        from diffusers.hooks import FirstBlockCacheConfig

        network.enable_cache(FirstBlockCacheConfig(threshold=self.threshold))
        try:
            yield CacheRun(network, self, sampling)
        finally:
            network.disable_cache()


class CacheRun:
    """First Block Cache enabled on one placed network for one run; ``step(sigma)`` opens each step's window."""

    def __init__(self, network: torch.nn.Module, cache: FirstBlockCache, sampling: ModelSampling) -> None:
        self._cache = cache
        self._head = _head_hook(network)
        self._sigma_start = sampling.percent_to_sigma(cache.start_percent)
        self._sigma_end = sampling.percent_to_sigma(cache.end_percent)

    @contextmanager
    def step(self, sigma: float) -> Iterator[None]:
        """The network calls of the step at ``sigma``: cached inside the window, computed in full outside it."""
        inside = self._sigma_end <= sigma <= self._sigma_start
        self._head.threshold = self._cache.threshold if inside else _ALWAYS_COMPUTE
        yield


@contextmanager
def cache_context(network: torch.nn.Module, name: str) -> Iterator[None]:
    """The network's calls for one batched group of entries (``name``) keep their own cache state; nothing when no
    cache is enabled on the network."""
    if not getattr(network, "is_cache_enabled", False):
        yield
        return
    with network.cache_context(name):
        yield


def _head_hook(network: torch.nn.Module) -> object:
    """The First Block Cache hook on the network's first transformer block (it holds the threshold)."""
    from diffusers.hooks import HookRegistry
    from diffusers.hooks.first_block_cache import _FBC_LEADER_BLOCK_HOOK

    for module in network.modules():
        registry = getattr(module, "_diffusers_hook", None)
        if registry is None:
            continue
        hook = HookRegistry.check_if_exists_or_initialize(module).get_hook(_FBC_LEADER_BLOCK_HOOK)
        if hook is not None and hasattr(hook, "threshold"):
            return hook
    raise RuntimeError("First Block Cache was enabled but its first-block hook is not found (diffusers changed?)")
