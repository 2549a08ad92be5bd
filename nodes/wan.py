"""Wan conditioning nodes: a start (and end) frame for image-to-video (``WanImageToVideo``,
``WanFirstLastFrameToVideo``); a control video, masks and a reference image for VACE models (``WanVaceToVideo``);
a control video and a start image for Fun control models (``WanFunControlToVideo``).
They encode the frames with the VAE and attach ComfyUI's conditioning extras
(``concat_latent_image``, ``concat_mask``, ``clip_vision_output``) that the Wan adapter reads.
``Wan22ImageToVideoLatent`` instead puts the start frame into the latent itself, with a noise mask that keeps it
(the Wan 2.2 TI2V 5B model)."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
import torch.nn.functional as F

from graph.context import current_context
from models.clip_vision import ClipVisionOutput
from models.families.wan.adapter import VACE_CONTROL
from models.guidance import Conditioning, conditioning_entries, with_extras
from models.memory import MODELS_SERVICE
from models.video_vae import VideoVAE
from nodes.image import fit_frames, resize_images
from nodes.latent import MAX_SIZE, check_video_size

CATEGORY = "conditioning/video_models"
GRAY = 0.5  # frames to generate are encoded as mid-gray, as the Wan pipelines do (zero in -1..1)


def video_inputs(length_default: int = 81) -> dict[str, Any]:
    """The inputs Wan conditioning nodes share, in ComfyUI's order: the prompts, the VAE and the video's size."""
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
            "required": video_inputs(),
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
            "required": video_inputs(),
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


def encoded_over_zero(
    vae: VideoVAE, frames: torch.Tensor | None, width: int, height: int, length: int, name: str
) -> torch.Tensor:
    """The raw latent ``[1, C, T, h, w]`` of a ``length``-frame video: ``frames`` (input ``name``, fitted to the
    size, at most ``length``) encoded into its first latent frames, the latent space's zero after them (and
    everywhere without ``frames``), as ComfyUI's Fun nodes build it."""
    fmt = vae.latent_format
    shape = (1, fmt.channels, fmt.latent_frames(length), height // fmt.spatial_ratio, width // fmt.spatial_ratio)
    latent = fmt.process_out(torch.zeros(shape))  # the latent space's zero, as raw values
    if frames is not None:
        manager = current_context().service(MODELS_SERVICE)
        encoded = vae.encode(manager, fit_frames(frames, width, height, length, name))
        latent[:, :, : encoded.shape[2]] = encoded[:, :, : shape[2]]
    return latent


class WanFunControlToVideo:
    """Fun control conditioning: a control video (depth, pose, edges...) and an optional start image, for Wan Fun
    control models."""

    FUNCTION = "encode"
    CATEGORY = CATEGORY
    RETURN_TYPES = ("CONDITIONING", "CONDITIONING", "LATENT")
    RETURN_NAMES = ("positive", "negative", "latent")
    DESCRIPTION = (
        "Encodes a control video and a start image into the conditioning of a Wan Fun control model (48 input "
        "channels): the control video's latent, then the start image's, each left at the latent space's zero where "
        "nothing is given. Both are resized to width x height and cut to length."
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": video_inputs(),
            "optional": {
                "clip_vision_output": ("CLIP_VISION_OUTPUT", {}),
                "start_image": ("IMAGE", {}),
                "control_video": ("IMAGE", {}),
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
        clip_vision_output: ClipVisionOutput | None = None,
        start_image: torch.Tensor | None = None,
        control_video: torch.Tensor | None = None,
    ) -> tuple[list[list[Any]], list[list[Any]], dict[str, torch.Tensor]]:
        check_video_size(width, height, length, vae.latent_format.spatial_ratio)
        parts = [
            encoded_over_zero(vae, frames, width, height, length, name)
            for frames, name in ((control_video, "control_video"), (start_image, "start_image"))
        ]
        extras: dict[str, Any] = {"concat_latent_image": torch.cat(parts, dim=1)}
        if clip_vision_output is not None:
            extras["clip_vision_output"] = clip_vision_output
        latent = torch.zeros(batch_size, *parts[0].shape[1:])
        return (
            with_extras(positive, "positive", extras),
            with_extras(negative, "negative", extras),
            {"samples": latent},
        )


class WanVaceToVideo:
    """VACE conditioning: a control video (depth, pose, edges, or frames to keep), masks of what to generate, and a
    reference image, for Wan VACE models."""

    FUNCTION = "encode"
    CATEGORY = CATEGORY
    RETURN_TYPES = ("CONDITIONING", "CONDITIONING", "LATENT", "INT")
    RETURN_NAMES = ("positive", "negative", "latent", "trim_latent")
    DESCRIPTION = (
        "Encodes a control video, its masks (white = generate) and a reference image into the conditioning of a Wan "
        "VACE model. The control video and masks are resized to width x height and cut or padded (gray, generate) "
        "to length; the reference image is fitted inside the frame on white. With a reference image the latent has "
        "one frame more in front: trim it after sampling with TrimVideoLatent (trim_latent)."
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                **video_inputs(),
                "strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1000.0, "step": 0.01}),
            },
            "optional": {
                "control_video": ("IMAGE", {"tooltip": "Frames that steer the video (gray where nothing steers)."}),
                "control_masks": (
                    "MASK",
                    {"tooltip": "1 where the video is generated, 0 where control_video is kept."},
                ),
                "reference_image": ("IMAGE", {"tooltip": "An image whose subject or style the video takes on."}),
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
        strength: float,
        control_video: torch.Tensor | None = None,
        control_masks: torch.Tensor | None = None,
        reference_image: torch.Tensor | None = None,
    ) -> tuple[list[list[Any]], list[list[Any]], dict[str, torch.Tensor], int]:
        for name, conditioning in (("positive", positive), ("negative", negative)):
            if any(VACE_CONTROL in extras for _, extras in conditioning_entries(conditioning, name)):
                raise ValueError(
                    f"WanVaceToVideo: {name}: already carries a VACE control from another WanVaceToVideo; several "
                    "VACE controls on one conditioning are not supported yet (the second would replace the first): "
                    "combine them into one control video and mask"
                )
        fmt = vae.latent_format
        check_video_size(width, height, length, fmt.spatial_ratio)
        manager = current_context().service(MODELS_SERVICE)
        video = torch.zeros(length, height, width, 3)  # -1..1: zero is gray
        if control_video is not None:
            frames = fit_frames(control_video, width, height, length, "control_video")
            video[: frames.shape[0]] = frames * 2.0 - 1.0
        generate = _vace_masks(control_masks, width, height, length)
        inactive = vae.encode(manager, (video * (1.0 - generate) + 1.0) / 2.0)
        reactive = vae.encode(manager, (video * generate + 1.0) / 2.0)
        control = torch.cat([fmt.process_in(inactive), fmt.process_in(reactive)], dim=1)
        mask = _unshuffled_mask(generate, fmt.spatial_ratio, control.shape[2])
        trim = 0
        if reference_image is not None:
            reference = fmt.process_in(vae.encode(manager, _letterboxed(reference_image, width, height)))
            control = torch.cat([torch.cat([reference, torch.zeros_like(reference)], dim=1), control], dim=2)
            mask = torch.cat([torch.zeros_like(mask[:, :, :1]), mask], dim=2)
            trim = reference.shape[2]
        extras = {VACE_CONTROL: torch.cat([control, mask], dim=1), "vace_strength": float(strength)}
        frames = control.shape[2]
        latent = torch.zeros(batch_size, fmt.channels, frames, height // fmt.spatial_ratio, width // fmt.spatial_ratio)
        return (
            with_extras(positive, "positive", extras),
            with_extras(negative, "negative", extras),
            {"samples": latent},
            trim,
        )


def _vace_masks(masks: torch.Tensor | None, width: int, height: int, length: int) -> torch.Tensor:
    """``[length, H, W, 1]``: 1 where frames are generated, binarised at 0.5; frames past the masks given are
    generated."""
    generate = torch.ones(length, height, width, 1)
    if masks is None:
        return generate
    if not isinstance(masks, torch.Tensor) or masks.dim() not in (2, 3):
        shape = tuple(masks.shape) if isinstance(masks, torch.Tensor) else type(masks).__name__
        raise ValueError(f"control_masks: expected a MASK [frames, height, width], got {shape}")
    frames = masks.reshape(-1, *masks.shape[-2:])[:length]
    if frames.shape[1:] != (height, width):
        frames = resize_images(frames.unsqueeze(-1).expand(-1, -1, -1, 3), width, height, "bilinear")[..., :1]
    else:
        frames = frames.unsqueeze(-1)
    generate[: frames.shape[0]] = (frames > 0.5).float()
    return generate


def _unshuffled_mask(generate: torch.Tensor, ratio: int, latent_frames: int) -> torch.Tensor:
    """``[1, ratio^2, T, h, w]``: each latent pixel's ``ratio x ratio`` block of mask pixels as channels, nearest in
    time to the latent frames (as VACE was trained)."""
    length, height, width = generate.shape[:3]
    blocks = generate[..., 0].reshape(length, height // ratio, ratio, width // ratio, ratio)
    channels = blocks.permute(2, 4, 0, 1, 3).reshape(ratio * ratio, length, height // ratio, width // ratio)
    size = (latent_frames, height // ratio, width // ratio)
    return F.interpolate(channels.unsqueeze(0), size=size, mode="nearest-exact")


def _letterboxed(image: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """The first frame of ``image`` fitted inside ``width`` x ``height`` (aspect kept, centred) on white, as VACE
    takes reference images."""
    if not isinstance(image, torch.Tensor) or image.dim() != 4 or image.shape[-1] != 3:
        shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise ValueError(f"reference_image: expected IMAGE frames [N, H, W, 3], got {shape}")
    frame = image[:1]
    source_height, source_width = frame.shape[1:3]
    scale = min(height / source_height, width / source_width)
    fitted_height, fitted_width = int(source_height * scale), int(source_width * scale)
    if (fitted_width, fitted_height) != (source_width, source_height):
        frame = resize_images(frame, fitted_width, fitted_height, "bilinear")
    canvas = torch.ones(1, height, width, 3)
    top, left = (height - fitted_height) // 2, (width - fitted_width) // 2
    canvas[:, top : top + fitted_height, left : left + fitted_width] = frame
    return canvas


NODE_CLASS_MAPPINGS = {
    "WanImageToVideo": WanImageToVideo,
    "WanFirstLastFrameToVideo": WanFirstLastFrameToVideo,
    "Wan22ImageToVideoLatent": Wan22ImageToVideoLatent,
    "WanVaceToVideo": WanVaceToVideo,
    "WanFunControlToVideo": WanFunControlToVideo,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "WanImageToVideo": "Wan Image To Video",
    "WanFirstLastFrameToVideo": "Wan First Last Frame To Video",
    "Wan22ImageToVideoLatent": "Wan22 Image To Video Latent",
    "WanVaceToVideo": "Wan Vace To Video",
    "WanFunControlToVideo": "Wan Fun Control To Video",
}
