"""HunyuanVideo conditioning nodes: ``HunyuanImageToVideo`` encodes a start image with the VAE and attaches it as
the image-to-video model variant takes it ("v1 (concat)": ComfyUI's ``concat_latent_image`` / ``concat_mask`` extras
for the 33-channel model; "v2 (replace)": the image latent in the sampled latent's first frames, kept by a noise
mask, and ``guiding_frame_index`` for the token-replace model). The HunyuanVideo adapter reads those extras."""

from __future__ import annotations

from typing import Any

import torch

from graph.context import current_context
from models.families.base import LatentFormat
from models.families.hunyuan.latents import HUNYUAN_LATENT
from models.guidance import Conditioning, with_extras
from models.memory import MODELS_SERVICE
from models.video_vae import VideoVAE
from nodes.image import fit_frames
from nodes.latent import MAX_SIZE, check_video_size

CATEGORY = "conditioning/video_models"
CONCAT, REPLACE, CUSTOM = "v1 (concat)", "v2 (replace)", "custom"
GUIDANCE_TYPES = (CONCAT, REPLACE, CUSTOM)


class HunyuanImageToVideo:
    """Image-to-video conditioning for HunyuanVideo from a start image; gives the latent to sample."""

    FUNCTION = "encode"
    CATEGORY = CATEGORY
    RETURN_TYPES = ("CONDITIONING", "LATENT")
    RETURN_NAMES = ("positive", "latent")
    DESCRIPTION = (
        "Encodes a start image for a HunyuanVideo image-to-video model: v1 (concat) for the image_to_video model, "
        "v2 (replace) for the v2 replace model. Without a start image: the positive unchanged and an empty latent."
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "positive": ("CONDITIONING", {}),
                "vae": ("VAE", {}),
                "width": ("INT", {"default": 848, "min": 16, "max": MAX_SIZE, "step": 16}),
                "height": ("INT", {"default": 480, "min": 16, "max": MAX_SIZE, "step": 16}),
                "length": ("INT", {"default": 53, "min": 1, "max": MAX_SIZE, "step": 4}),
                "batch_size": ("INT", {"default": 1, "min": 1, "max": 4096}),
                "guidance_type": (
                    list(GUIDANCE_TYPES),
                    {
                        "tooltip": "v1 (concat): hunyuan_video_image_to_video_720p; v2 (replace): "
                        "hunyuan_video_v2_replace_image_to_video_720p; custom (ref_latent) is not supported yet."
                    },
                ),
            },
            "optional": {"start_image": ("IMAGE", {})},
        }

    def encode(
        self,
        positive: Conditioning,
        vae: VideoVAE,
        width: int,
        height: int,
        length: int,
        batch_size: int,
        guidance_type: str,
        start_image: torch.Tensor | None = None,
    ) -> tuple[list[list[Any]], dict[str, torch.Tensor]]:
        fmt = _hunyuan_format(vae)
        check_video_size(width, height, length, fmt.spatial_ratio)
        if guidance_type not in GUIDANCE_TYPES:
            raise ValueError(f"guidance_type: {guidance_type!r} is not one of {', '.join(GUIDANCE_TYPES)}")
        shape = (
            batch_size,
            fmt.channels,
            fmt.latent_frames(length),
            height // fmt.spatial_ratio,
            width // fmt.spatial_ratio,
        )
        latent = torch.zeros(shape)
        if start_image is None:
            return with_extras(positive, "positive", {}), {"samples": latent}
        if guidance_type == CUSTOM:
            raise ValueError(
                'guidance_type: "custom" (a reference latent, for HunyuanCustom-style models) is not supported yet; '
                'use "v1 (concat)" with the image_to_video model or "v2 (replace)" with the v2 replace model'
            )
        start = fit_frames(start_image, width, height, length, "start_image")
        vae.check_frames(start, "start_image")
        image_latent = vae.encode(current_context().service(MODELS_SERVICE), start)
        # 1 = generate; the latent frames that code the start image are 0
        mask = torch.ones(1, 1, *shape[2:])
        mask[:, :, : fmt.latent_frames(start.shape[0])] = 0.0
        if guidance_type == CONCAT:
            extras = {"concat_latent_image": image_latent, "concat_mask": mask}
            return with_extras(positive, "positive", extras), {"samples": latent}
        latent[:, :, : image_latent.shape[2]] = image_latent
        samples = {"samples": latent, "noise_mask": mask.repeat(batch_size, 1, 1, 1, 1)}
        return with_extras(positive, "positive", {"guiding_frame_index": 0}), samples


def _hunyuan_format(vae: VideoVAE) -> LatentFormat:
    """The VAE's latent format; ``ValueError`` naming the input unless it has HunyuanVideo's geometry."""
    fmt = vae.latent_format
    geometry = (fmt.channels, fmt.spatial_ratio, fmt.temporal_ratio)
    expected = (HUNYUAN_LATENT.channels, HUNYUAN_LATENT.spatial_ratio, HUNYUAN_LATENT.temporal_ratio)
    if geometry != expected:
        raise ValueError(
            f"vae: {vae.name} codes a {fmt.name} latent ({fmt.channels} channels, {fmt.spatial_ratio}x spatial, "
            f"{fmt.temporal_ratio}x temporal); HunyuanImageToVideo needs the HunyuanVideo VAE "
            f"({expected[0]} channels, {expected[1]}x, {expected[2]}x)"
        )
    return fmt


NODE_CLASS_MAPPINGS = {"HunyuanImageToVideo": HunyuanImageToVideo}
NODE_DISPLAY_NAME_MAPPINGS = {"HunyuanImageToVideo": "Hunyuan Image To Video"}
