"""Accelerator nodes: training-free speed-ups set on a MODEL for the sampler that uses it. ``ApplyFirstBlockCache``
skips the later transformer blocks while the first block's output barely changes between steps (diffusers' First
Block Cache, the dynamic caching of TeaCache's family)."""

from __future__ import annotations

from typing import Any

from models.accelerate.caches import FirstBlockCache
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


NODE_CLASS_MAPPINGS = {"ApplyFirstBlockCache": ApplyFirstBlockCache}
NODE_DISPLAY_NAME_MAPPINGS = {"ApplyFirstBlockCache": "First Block Cache"}
