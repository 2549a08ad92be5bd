"""SkyReels-V2 diffusion forcing as a sampler node of Reelgraph's own (ComfyUI core has none):
``SkyReelsDiffusionForcingSampler`` samples a SkyReels-V2 model with per-frame timesteps, long videos in overlapping
chunks, synchronously or with an asynchronous step gap between causal blocks (``models.families.skyreels.forcing``);
diffusion-forcing image-to-video from a start (and end) image's ``VAEEncode`` latent. The plain text-to-video and
image-to-video SkyReels-V2 models sample through the generic samplers, conditioned as Wan 2.1."""

from __future__ import annotations

from typing import Any

import torch

from graph.context import current_context
from models.diffusion_model import DiffusionModel
from models.families.skyreels.adapter import DEFAULT_FPS
from models.families.skyreels.forcing import ForcingSettings, sample_diffusion_forcing
from models.guidance import Conditioning
from models.latent_preview import LATENT_PREVIEWS_SERVICE, pca_projection
from models.memory import MODELS_SERVICE
from nodes.latent import MAX_SIZE, latent_samples
from nodes.sampling import MAX_STEPS, cfg_input, seed_input

CATEGORY = "sampling/skyreels"


class SkyReelsDiffusionForcingSampler:
    """Diffusion-forcing sampling of a SkyReels-V2 DF model, as ``SkyReelsV2DiffusionForcingPipeline``."""

    FUNCTION = "sample"
    CATEGORY = CATEGORY
    RETURN_TYPES = ("LATENT",)
    DESCRIPTION = (
        "Samples a SkyReels-V2 diffusion-forcing model: each latent frame at its own timestep, long videos in chunks "
        "of base_num_frames that repeat overlap_history frames of the video so far; ar_step > 0 lets each causal "
        "block lag that many steps behind the one before it (asynchronous). Image-to-video: connect the VAEEncode "
        "latent of the start image (scaled to the video's size) to start_latent, and optionally an end image's to "
        "end_latent (videos made in one pass)."
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "model": ("MODEL", {}),
                "positive": ("CONDITIONING", {}),
                "negative": ("CONDITIONING", {}),
                "latent_image": ("LATENT", {"tooltip": "An empty video latent: its size and length are made."}),
                "seed": seed_input(),
                "steps": ("INT", {"default": 30, "min": 1, "max": MAX_STEPS}),
                "cfg": ("FLOAT", {**cfg_input()[1], "default": 6.0}),
                "shift": ("FLOAT", {"default": 8.0, "min": 0.0, "max": 100.0, "step": 0.01}),
                "base_num_frames": (
                    "INT",
                    {"default": 97, "min": 1, "max": MAX_SIZE, "step": 4, "tooltip": "Video frames per chunk."},
                ),
                "overlap_history": (
                    "INT",
                    {
                        "default": 17,
                        "min": 0,
                        "max": MAX_SIZE,
                        "step": 4,
                        "tooltip": "Video frames each chunk repeats from the video so far (0: one pass, no chunks).",
                    },
                ),
                "ar_step": (
                    "INT",
                    {"default": 0, "min": 0, "max": MAX_STEPS, "tooltip": "Steps each block lags (0: synchronous)."},
                ),
                "causal_block_size": (
                    "INT",
                    {"default": 1, "min": 1, "max": MAX_SIZE, "tooltip": "Latent frames per causal block."},
                ),
                "addnoise_condition": (
                    "FLOAT",
                    {
                        "default": 0.0,
                        "min": 0.0,
                        "max": 1000.0,
                        "step": 1.0,
                        "tooltip": "Noise on the repeated frames, as a timestep (about 20 smooths long videos).",
                    },
                ),
                "fps": ("INT", {"default": DEFAULT_FPS, "min": 1, "max": 240}),
            },
            "optional": {
                "start_latent": (
                    "LATENT",
                    {"tooltip": "The video's first frames, kept clean: the VAEEncode latent of the start image."},
                ),
                "end_latent": (
                    "LATENT",
                    {"tooltip": "Frames the video leads to (not part of it): the VAEEncode latent of an end image."},
                ),
            },
        }

    def sample(
        self,
        model: DiffusionModel,
        positive: Conditioning,
        negative: Conditioning,
        latent_image: dict[str, Any],
        seed: int,
        steps: int,
        cfg: float,
        shift: float,
        base_num_frames: int,
        overlap_history: int,
        ar_step: int,
        causal_block_size: int,
        addnoise_condition: float,
        fps: int,
        start_latent: dict[str, Any] | None = None,
        end_latent: dict[str, Any] | None = None,
    ) -> tuple[dict[str, Any]]:
        samples = latent_samples(latent_image, "latent_image")
        start = latent_samples(start_latent, "start_latent") if start_latent is not None else None
        end = latent_samples(end_latent, "end_latent") if end_latent is not None else None
        ratio = model.adapter.latent_format.temporal_ratio
        settings = ForcingSettings(
            steps=steps,
            shift=shift,
            cfg=cfg,
            base_frames=(base_num_frames - 1) // ratio + 1,
            overlap=(overlap_history - 1) // ratio + 1 if overlap_history > 0 else None,
            ar_step=ar_step,
            causal_block_size=causal_block_size,
            addnoise_condition=addnoise_condition,
            fps=fps,
        )
        context = current_context()
        previews = context.services.get(LATENT_PREVIEWS_SERVICE)
        known = previews.projection(model.adapter.latent_format) if previews is not None else None

        def on_progress(done: int, total: int, state: torch.Tensor) -> None:
            projection = known if known is not None else pca_projection(state)
            context.report_progress(done, total, projection.image(state))

        manager = context.service(MODELS_SERVICE)
        result = sample_diffusion_forcing(
            manager, model, positive, negative, samples, seed, settings, on_progress, start=start, end=end
        )
        return ({"samples": result},)


NODE_CLASS_MAPPINGS = {"SkyReelsDiffusionForcingSampler": SkyReelsDiffusionForcingSampler}
NODE_DISPLAY_NAME_MAPPINGS = {"SkyReelsDiffusionForcingSampler": "SkyReels-V2 Diffusion Forcing Sampler"}
