"""What AnimateDiff contributes to the generic loaders: diffusers ``AnimateDiffPipeline`` folders (a
``UNetMotionModel`` under ``unet/``, SD1.5's VAE and CLIP-L) next to SD1.5's ``StableDiffusionPipeline`` folders.
Motion modules on their own load through the AnimateDiff nodes (``animatediff_models`` folder)."""

from __future__ import annotations

import dataclasses

from models.families.animatediff.adapter import adapter_from_motion_config
from models.families.kinds import PipelineLayout
from models.families.sd15.family import SD15_UNETS, SD15_VAES
from models.text_encoders.kinds import STABLE_DIFFUSION_TEXT

__all__ = ["ANIMATEDIFF_UNETS", "SD15_PIPELINES"]

ANIMATEDIFF_UNETS = dataclasses.replace(
    SD15_UNETS,
    name="animatediff",
    label="an AnimateDiff UNet (SD1.5 with motion modules)",
    adapter_from_config=adapter_from_motion_config,
    diffusers_classes=("UNetMotionModel",),
)
"""The ``unet`` of ``AnimateDiffPipeline`` folders (single files are SD1.5 UNets: ``SD15_UNETS``)."""

SD15_PIPELINES = (
    PipelineLayout(("StableDiffusionPipeline",), SD15_UNETS, SD15_VAES, STABLE_DIFFUSION_TEXT, network="unet"),
    PipelineLayout(
        ("AnimateDiffPipeline",),
        ANIMATEDIFF_UNETS,
        SD15_VAES,
        STABLE_DIFFUSION_TEXT,
        extra={"motion_adapter": ("MotionAdapter",)},
        network="unet",
    ),
)
