"""Wan conditioning nodes: a start (and end) frame for image-to-video (``WanImageToVideo``,
``WanFirstLastFrameToVideo``). They encode the frames with the VAE and attach ComfyUI's conditioning extras
(``concat_latent_image``, ``concat_mask``, ``clip_vision_output``) that the Wan adapter reads.
``Wan22ImageToVideoLatent`` instead puts the start frame into the latent itself, with a noise mask that keeps it
(the Wan 2.2 TI2V 5B model)."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from graph.context import current_context
from models.clip_vision import ClipVisionOutput
from models.guidance import Conditioning, with_extras
from models.memory import MODELS_SERVICE
from models.video_vae import VideoVAE
from nodes.image import fit_frames
from nodes.latent import MAX_SIZE, check_video_size

CATEGORY = "conditioning/video_models"
GRAY = 0.5  # frames to generate are encoded as mid-gray, as the Wan pipelines do (zero in -1..1)


def _video_inputs(length_default: int = 81) -> dict[str, Any]:
    return {
        "positive": ("CONDITIONING", {}),
        "negative": ("CONDITIONING", {}),
        "vae": ("VAE", {}),
        "width": ("INT", {"default": 832, "min": 16, "max": MAX_SIZE, "step": 16}),
        "height": ("INT", {"default": 480, "min": 16, "max": MAX_SIZE, "step": 16}),
        "length": ("INT", {"default": length_default, "min": 1, "max": MAX_SIZE, "step": 4}),
        "batch_size": ("INT", {"default": 1, "min": 1, "max": 4096}),
    }


class WanImageToVideo:
    """Image-to-video conditioning from a start image (and its CLIP vision features for Wan 2.1 i2v)."""

    FUNCTION = "encode"
    CATEGORY = CATEGORY
    RETURN_TYPES = ("CONDITIONING", "CONDITIONING", "LATENT")
    RETURN_NAMES = ("positive", "negative", "latent")
    DESCRIPTION = "Encodes a start image into the conditioning of a Wan image-to-video model; gives an empty latent."

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": _video_inputs(),
            "optional": {"clip_vision_output": ("CLIP_VISION_OUTPUT", {}), "start_image": ("IMAGE", {})},
        }

    def encode(
        self,
        positive: Conditioning,
        negative: Conditioning,
        vae: VideoVAE,
        width: int,
        height: int,
        length: int,
        batch_size: int,
        clip_vision_output: ClipVisionOutput | None = None,
        start_image: torch.Tensor | None = None,
    ) -> tuple[list[list[Any]], list[list[Any]], dict[str, torch.Tensor]]:
        check_video_size(width, height, length, vae.latent_format.spatial_ratio)
        fmt = vae.latent_format
        latent = torch.zeros(
            batch_size, fmt.channels, fmt.latent_frames(length), height // fmt.spatial_ratio, width // fmt.spatial_ratio
        )
        extras: dict[str, Any] = {}
        if start_image is not None:
            start = fit_frames(start_image, width, height, length, "start_image")
            video = torch.full((length, height, width, 3), GRAY)
            video[: start.shape[0]] = start
            extras["concat_latent_image"] = vae.encode(current_context().service(MODELS_SERVICE), video)
            mask = torch.ones(1, 1, *latent.shape[2:])
            mask[:, :, : fmt.latent_frames(start.shape[0])] = 0.0
            extras["concat_mask"] = mask
        if clip_vision_output is not None:
            extras["clip_vision_output"] = clip_vision_output
        return (
            with_extras(positive, "positive", extras),
            with_extras(negative, "negative", extras),
            {"samples": latent},
        )


class WanFirstLastFrameToVideo:
    """First-last-frame conditioning: the video starts at one image and ends at another."""

    FUNCTION = "encode"
    CATEGORY = CATEGORY
    RETURN_TYPES = ("CONDITIONING", "CONDITIONING", "LATENT")
    RETURN_NAMES = ("positive", "negative", "latent")
    DESCRIPTION = "Encodes start and end images for a Wan first-last-frame model; gives an empty latent."

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": _video_inputs(),
            "optional": {
                "clip_vision_start_image": ("CLIP_VISION_OUTPUT", {}),
                "clip_vision_end_image": ("CLIP_VISION_OUTPUT", {}),
                "start_image": ("IMAGE", {}),
                "end_image": ("IMAGE", {}),
            },
        }

    def encode(
        self,
        positive: Conditioning,
        negative: Conditioning,
        vae: VideoVAE,
        width: int,
        height: int,
        length: int,
        batch_size: int,
        clip_vision_start_image: ClipVisionOutput | None = None,
        clip_vision_end_image: ClipVisionOutput | None = None,
        start_image: torch.Tensor | None = None,
        end_image: torch.Tensor | None = None,
    ) -> tuple[list[list[Any]], list[list[Any]], dict[str, torch.Tensor]]:
        check_video_size(width, height, length, vae.latent_format.spatial_ratio)
        fmt = vae.latent_format
        frames = fmt.latent_frames(length)
        latent = torch.zeros(batch_size, fmt.channels, frames, height // fmt.spatial_ratio, width // fmt.spatial_ratio)
        video = torch.full((length, height, width, 3), GRAY)
        # frame-rate mask (1 = generate), the first frame counted four times as the VAE codes it alone
        mask = torch.ones(1, 1, frames * fmt.temporal_ratio, *latent.shape[3:])
        if start_image is not None:
            start = fit_frames(start_image, width, height, length, "start_image")
            video[: start.shape[0]] = start
            mask[:, :, : start.shape[0] + fmt.temporal_ratio - 1] = 0.0
        if end_image is not None:
            end = fit_frames(end_image, width, height, length, "end_image")
            video[-end.shape[0] :] = end
            mask[:, :, -end.shape[0] :] = 0.0
        extras: dict[str, Any] = {}
        if start_image is not None or end_image is not None:
            extras["concat_latent_image"] = vae.encode(current_context().service(MODELS_SERVICE), video)
            extras["concat_mask"] = mask
        vision = [output for output in (clip_vision_start_image, clip_vision_end_image) if output is not None]
        if vision:
            extras["clip_vision_output"] = _joined(vision)
        return (
            with_extras(positive, "positive", extras),
            with_extras(negative, "negative", extras),
            {"samples": latent},
        )


def _joined(outputs: list[ClipVisionOutput]) -> ClipVisionOutput:
    """CLIP vision outputs of several images as one sequence (first-last-frame models read both in a row)."""
    if len(outputs) == 1:
        return outputs[0]
    return dataclasses.replace(
        outputs[0],
        penultimate_hidden_states=torch.cat([o.penultimate_hidden_states for o in outputs], dim=-2),
        last_hidden_state=torch.cat([o.last_hidden_state for o in outputs], dim=-2),
    )


class Wan22ImageToVideoLatent:
    """The latent for Wan 2.2 TI2V 5B: empty, or starting with the encoded start frames kept by a noise mask."""

    FUNCTION = "encode"
    CATEGORY = "conditioning/inpaint"
    RETURN_TYPES = ("LATENT",)
    DESCRIPTION = (
        "An empty Wan 2.2 video latent; with a start image, its first latent frames hold the encoded image and a "
        "noise mask keeps them while the rest is generated."
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "vae": ("VAE", {}),
                "width": ("INT", {"default": 1280, "min": 32, "max": MAX_SIZE, "step": 32}),
                "height": ("INT", {"default": 704, "min": 32, "max": MAX_SIZE, "step": 32}),
                "length": ("INT", {"default": 49, "min": 1, "max": MAX_SIZE, "step": 4}),
                "batch_size": ("INT", {"default": 1, "min": 1, "max": 4096}),
            },
            "optional": {"start_image": ("IMAGE", {})},
        }

    def encode(
        self,
        vae: VideoVAE,
        width: int,
        height: int,
        length: int,
        batch_size: int,
        start_image: torch.Tensor | None = None,
    ) -> tuple[dict[str, torch.Tensor]]:
        fmt = vae.latent_format
        check_video_size(width, height, length, fmt.spatial_ratio)
        shape = (1, fmt.channels, fmt.latent_frames(length), height // fmt.spatial_ratio, width // fmt.spatial_ratio)
        latent = torch.zeros(shape)
        if start_image is None:
            return ({"samples": latent.repeat(batch_size, 1, 1, 1, 1)},)
        start = fit_frames(start_image, width, height, length, "start_image")
        encoded = vae.encode(current_context().service(MODELS_SERVICE), start)
        kept = encoded.shape[2]
        mask = torch.ones(1, 1, *shape[2:])
        mask[:, :, :kept] = 0.0
        # generated frames start at the latent space's zero (its mean in raw values), kept ones hold the image
        latent = fmt.process_out(latent) * mask
        latent[:, :, :kept] = encoded
        return (
            {
                "samples": latent.repeat(batch_size, 1, 1, 1, 1),
                "noise_mask": mask.repeat(batch_size, 1, 1, 1, 1),
            },
        )


NODE_CLASS_MAPPINGS = {
    "WanImageToVideo": WanImageToVideo,
    "WanFirstLastFrameToVideo": WanFirstLastFrameToVideo,
    "Wan22ImageToVideoLatent": Wan22ImageToVideoLatent,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "WanImageToVideo": "Wan Image To Video",
    "WanFirstLastFrameToVideo": "Wan First Last Frame To Video",
    "Wan22ImageToVideoLatent": "Wan22 Image To Video Latent",
}
