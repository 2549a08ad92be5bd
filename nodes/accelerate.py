"""Accelerator nodes: training-free speed-ups set on a MODEL for the sampler that uses it. ``ApplyFirstBlockCache``
skips the later transformer blocks while the first block's output barely changes between steps (diffusers' First
Block Cache, the dynamic caching of TeaCache's family); ``ApplySparseAttention`` gives Wan's self-attention a
sparse pattern (Sliding Tile Attention windows, or Sparse VideoGen's per-head spatial / temporal choice)."""

from __future__ import annotations

from typing import Any

from models.accelerate.caches import FirstBlockCache
from models.accelerate.sparse_acceleration import SparseAttentionAcceleration
from models.accelerate.wan_sparse import SparseAttentionConfig
from models.diffusion_model import DiffusionModel


class ApplyFirstBlockCache:
    """First Block Cache on a model: faster sampling for a bounded change of the result."""

    FUNCTION = "apply"
    CATEGORY = "model_patches/accelerate"
    RETURN_TYPES = ("MODEL",)
    OUTPUT_TOOLTIPS = ("The model, sampling with the cache.",)
    DESCRIPTION = (
        "Runs only the first transformer block while its output changes by at most `threshold` (relative mean "
        "absolute difference) since the last full step, and reuses the other blocks' cached result. Higher is "
        "faster and further from the uncached result; 0 is exact. Outside start_percent..end_percent every block "
        "runs (the first steps set the layout). For diffusers transformer models (Wan, CogVideoX, HunyuanVideo, "
        "LTX-Video, Mochi)."
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        percent = {"min": 0.0, "max": 1.0, "step": 0.001}
        return {
            "required": {
                "model": ("MODEL",),
                "threshold": (
                    "FLOAT",
                    {"default": 0.1, "min": 0.0, "max": 1.0, "step": 0.001, "tooltip": "Higher skips more steps."},
                ),
                "start_percent": ("FLOAT", {"default": 0.1, **percent, "tooltip": "Where caching may begin."}),
                "end_percent": ("FLOAT", {"default": 1.0, **percent, "tooltip": "Where caching stops."}),
            }
        }

    def apply(
        self, model: DiffusionModel, threshold: float, start_percent: float, end_percent: float
    ) -> tuple[DiffusionModel]:
        node = "ApplyFirstBlockCache"
        if not isinstance(model, DiffusionModel):
            raise ValueError(f"{node}: model: expected a MODEL, got {type(model).__name__}")
        try:
            cache = FirstBlockCache(threshold, start_percent, end_percent)
        except ValueError as error:
            raise ValueError(f"{node}: {error}") from error
        return (model.with_acceleration(cache),)


def _size_input(default: int, tooltip: str) -> tuple[str, dict[str, Any]]:
    return ("INT", {"default": default, "min": 1, "max": 256, "tooltip": tooltip})


class ApplySparseAttention:
    """Sparse self-attention on a Wan model: faster attention on long videos for a bounded change of the result."""

    FUNCTION = "apply"
    CATEGORY = "model_patches/accelerate"
    RETURN_TYPES = ("MODEL",)
    OUTPUT_TOOLTIPS = ("The model, sampling with sparse attention.",)
    DESCRIPTION = (
        "sliding_tile: each tile of latent tokens (tile_* frames x rows x columns, after patching) attends only to "
        "the window_* tiles around it (Sliding Tile Attention). svg: each head is profiled on a sample of rows and "
        "attends within its frame (spatial) or along its position over time (temporal), or stays dense when neither "
        "is within `tolerance` (Sparse VideoGen). Steps before start_percent stay dense. backend auto uses compiled "
        "flex attention on CUDA (the speed-up) and a masked SDPA elsewhere (same result, no speed-up)."
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "model": ("MODEL",),
                "method": (["sliding_tile", "svg"], {"default": "sliding_tile"}),
                "tile_frames": _size_input(4, "Latent frames per tile (sliding_tile)."),
                "tile_height": _size_input(8, "Token rows per tile (sliding_tile)."),
                "tile_width": _size_input(8, "Token columns per tile (sliding_tile)."),
                "window_frames": _size_input(3, "Tiles attended along time (sliding_tile)."),
                "window_height": _size_input(3, "Tiles attended down (sliding_tile)."),
                "window_width": _size_input(3, "Tiles attended across (sliding_tile)."),
                "tolerance": (
                    "FLOAT",
                    {"default": 0.05, "min": 0.0, "max": 1.0, "step": 0.001, "tooltip": "svg: largest error kept."},
                ),
                "start_percent": (
                    "FLOAT",
                    {"default": 0.2, "min": 0.0, "max": 1.0, "step": 0.001, "tooltip": "Dense before this."},
                ),
                "backend": (["auto", "flex_compiled", "sdpa"], {"default": "auto"}),
            }
        }

    def apply(
        self,
        model: DiffusionModel,
        method: str,
        tile_frames: int,
        tile_height: int,
        tile_width: int,
        window_frames: int,
        window_height: int,
        window_width: int,
        tolerance: float,
        start_percent: float,
        backend: str,
    ) -> tuple[DiffusionModel]:
        node = "ApplySparseAttention"
        if not isinstance(model, DiffusionModel):
            raise ValueError(f"{node}: model: expected a MODEL, got {type(model).__name__}")
        try:
            config = SparseAttentionConfig(
                method=method,
                tile=(tile_frames, tile_height, tile_width),
                window=(window_frames, window_height, window_width),
                tolerance=tolerance,
                backend=backend,
            )
            acceleration = SparseAttentionAcceleration(config, start_percent)
        except ValueError as error:
            raise ValueError(f"{node}: {error}") from error
        return (model.with_acceleration(acceleration),)


NODE_CLASS_MAPPINGS = {"ApplyFirstBlockCache": ApplyFirstBlockCache, "ApplySparseAttention": ApplySparseAttention}
NODE_DISPLAY_NAME_MAPPINGS = {"ApplyFirstBlockCache": "First Block Cache", "ApplySparseAttention": "Sparse Attention"}
