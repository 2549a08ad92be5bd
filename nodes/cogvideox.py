"""CogVideoX nodes of our own (ComfyUI core has none): the empty latent, image-to-video conditioning from a start
image, and CogVideoX-Fun control conditioning from a control video. All take the MODEL, since CogVideoX 1.5 patches
two latent frames at once and its pipelines pad the latent with frames in front; the ``padding_frames`` output is what
``TrimVideoLatent`` cuts off before ``VAEDecode``, as the pipelines discard them."""

from __future__ import annotations

from typing import Any

import torch

from graph.context import current_context
from models.diffusion_model import DiffusionModel
from models.families.cogvideox.adapter import CONTROL_LATENTS, IMAGE_LATENTS, CogVideoXAdapter
from models.families.cogvideox.latents import CogVideoXLatentFormat
from models.guidance import Conditioning, with_extras
from models.memory import MODELS_SERVICE
from models.pixels import resize_images
from models.video_vae import VideoVAE
from nodes.image import fit_frames
from nodes.latent import MAX_SIZE, check_video_size

PADDING_TOOLTIP = "Latent frames put in front for CogVideoX 1.5 (0 for 1.0): feed TrimVideoLatent's trim_amount."
MODEL_TOOLTIP = "The CogVideoX model the latent is for (1.5 models need an even number of latent frames)."


def _size_inputs(length: int) -> dict[str, Any]:
    return {
        "width": ("INT", {"default": 720, "min": 16, "max": MAX_SIZE, "step": 16}),
        "height": ("INT", {"default": 480, "min": 16, "max": MAX_SIZE, "step": 16}),
        "length": ("INT", {"default": length, "min": 1, "max": MAX_SIZE, "step": 4, "tooltip": "Video frames."}),
        "batch_size": ("INT", {"default": 1, "min": 1, "max": 4096}),
    }


def _adapter(model: DiffusionModel) -> CogVideoXAdapter:
    """The model's CogVideoX adapter; ``ValueError`` naming the input for another family."""
    adapter = getattr(model, "adapter", None)
    if not isinstance(adapter, CogVideoXAdapter):
        described = adapter.describe() if adapter is not None else type(model).__name__
        raise ValueError(f"model: {described} is not a CogVideoX model; load a CogVideoX pipeline folder")
    return adapter


def _latent_format(vae: VideoVAE) -> CogVideoXLatentFormat:
    """The VAE's CogVideoX latent format; ``ValueError`` naming the input for another family's VAE."""
    fmt = vae.latent_format
    if not isinstance(fmt, CogVideoXLatentFormat):
        raise ValueError(f"vae: {vae.name} codes the {fmt.name} latent, not CogVideoX's")
    return fmt


def resample_control_video(video: torch.Tensor, width: int, height: int, length: int) -> torch.Tensor:
    """``video`` as exactly ``length`` frames of ``width`` x ``height``: frames picked evenly over its span (dropped
    when it has more, repeated when fewer), then stretched to the size with Lanczos as the pipeline's
    ``VideoProcessor`` resizes (no crop); unchanged when it already fits."""
    frames = video.shape[0]
    if frames != length:
        picks = torch.linspace(0, frames - 1, length).round().long()
        video = video[picks]
    return resize_images(video, width, height, "lanczos")


def _empty(adapter: CogVideoXAdapter, width: int, height: int, length: int, batch_size: int) -> tuple[Any, int]:
    """Zeros of the model's latent for the video size, with the 1.5 padding in front, and that padding."""
    fmt = adapter.latent_format
    check_video_size(width, height, length, fmt.spatial_ratio)
    frames = fmt.latent_frames(length)
    padding = adapter.padding_frames(frames)
    size = (height // fmt.spatial_ratio, width // fmt.spatial_ratio)
    return torch.zeros(batch_size, fmt.channels, padding + frames, *size), padding


class EmptyCogVideoXLatentVideo:
    """Zeros in CogVideoX's 16-channel latent (8x spatial, 4x temporal), padded for 1.5 models."""

    FUNCTION = "generate"
    CATEGORY = "latent/video"
    RETURN_TYPES = ("LATENT", "INT")
    RETURN_NAMES = ("LATENT", "padding_frames")
    OUTPUT_TOOLTIPS = ("The empty latent.", PADDING_TOOLTIP)
    DESCRIPTION = (
        "An empty CogVideoX video latent: width/8 x height/8, (length - 1)/4 + 1 latent frames (CogVideoX 1.5: one "
        "more in front when that is odd, as its pipelines pad it)."
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"model": ("MODEL", {"tooltip": MODEL_TOOLTIP}), **_size_inputs(49)}}

    def generate(
        self, model: DiffusionModel, width: int, height: int, length: int, batch_size: int
    ) -> tuple[dict[str, torch.Tensor], int]:
        latent, padding = _empty(_adapter(model), width, height, length, batch_size)
        return {"samples": latent}, padding


class CogVideoXImageToVideo:
    """Image-to-video conditioning of a CogVideoX I2V model from a start image, and its empty latent."""

    FUNCTION = "encode"
    CATEGORY = "conditioning/video_models"
    RETURN_TYPES = ("CONDITIONING", "CONDITIONING", "LATENT", "INT")
    RETURN_NAMES = ("positive", "negative", "latent", "padding_frames")
    OUTPUT_TOOLTIPS = (
        "The positive conditioning with the start image.",
        "The negative conditioning with the start image.",
        "The empty latent.",
        PADDING_TOOLTIP,
    )
    DESCRIPTION = (
        "Encodes a start image with the VAE into the image latents a CogVideoX image-to-video model takes beside "
        "the noise (the image's latent frame first, zeros after, scaled as CogVideoXImageToVideoPipeline scales "
        "them), and gives the empty latent."
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "positive": ("CONDITIONING", {}),
                "negative": ("CONDITIONING", {}),
                "vae": ("VAE", {}),
                "model": ("MODEL", {"tooltip": MODEL_TOOLTIP}),
                "start_image": ("IMAGE", {"tooltip": "The first frame; resized and center-cropped to the size."}),
                **_size_inputs(49),
            }
        }

    def encode(
        self,
        positive: Conditioning,
        negative: Conditioning,
        vae: VideoVAE,
        model: DiffusionModel,
        start_image: torch.Tensor,
        width: int,
        height: int,
        length: int,
        batch_size: int,
    ) -> tuple[list[list[Any]], list[list[Any]], dict[str, torch.Tensor], int]:
        adapter = _adapter(model)
        if adapter.spec.control:
            raise ValueError(f"model: {adapter.describe()} is a CogVideoX-Fun control model; use CogVideoXFunControl")
        if not adapter.spec.image_to_video:
            raise ValueError(f"model: {adapter.describe()} is a text-to-video model; use EmptyCogVideoXLatentVideo")
        fmt = _latent_format(vae)
        latent, padding = _empty(adapter, width, height, length, batch_size)
        start = fit_frames(start_image, width, height, 1, "start_image")
        raw = vae.encode(current_context().service(MODELS_SERVICE), start)  # [1, C, 1, h, w]
        image = torch.zeros(1, *latent.shape[1:])
        image[:, :, :1] = raw * fmt.image_scale
        extras = {IMAGE_LATENTS: image}
        return (
            with_extras(positive, "positive", extras),
            with_extras(negative, "negative", extras),
            {"samples": latent},
            padding,
        )


class CogVideoXFunControl:
    """Structure control of a CogVideoX-Fun control model from a control video (pose, depth, edges...), and its
    empty latent."""

    FUNCTION = "encode"
    CATEGORY = "conditioning/video_models"
    RETURN_TYPES = ("CONDITIONING", "CONDITIONING", "LATENT", "INT")
    RETURN_NAMES = ("positive", "negative", "latent", "padding_frames")
    OUTPUT_TOOLTIPS = (
        "The positive conditioning with the control video.",
        "The negative conditioning with the control video.",
        "The empty latent.",
        PADDING_TOOLTIP,
    )
    DESCRIPTION = (
        "Encodes a control video with the VAE into the control latents a CogVideoX-Fun control model "
        "(CogVideoX-Fun-V1.1 Control / Pose) takes beside the noise, scaled by the VAE's scaling factor as "
        "CogVideoXFunControlPipeline scales them, and gives the empty latent. A control video of another length is "
        "resampled to `length` frames (frames picked evenly over it: dropped when longer, repeated when shorter); "
        "one of another size is stretched to width x height (Lanczos, no crop, as the pipeline resizes)."
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "positive": ("CONDITIONING", {}),
                "negative": ("CONDITIONING", {}),
                "vae": ("VAE", {}),
                "model": ("MODEL", {"tooltip": "The CogVideoX-Fun control model the conditioning is for."}),
                "control_video": (
                    "IMAGE",
                    {"tooltip": "The control frames (pose, depth, edges...); resampled to length and size."},
                ),
                **_size_inputs(49),
            }
        }

    def encode(
        self,
        positive: Conditioning,
        negative: Conditioning,
        vae: VideoVAE,
        model: DiffusionModel,
        control_video: torch.Tensor,
        width: int,
        height: int,
        length: int,
        batch_size: int,
    ) -> tuple[list[list[Any]], list[list[Any]], dict[str, torch.Tensor], int]:
        adapter = _adapter(model)
        if not adapter.spec.control:
            raise ValueError(
                f"CogVideoXFunControl: model: {adapter.describe()} is not a CogVideoX-Fun control model; load a "
                "CogVideoX-Fun-V1.1 Control or Pose pipeline folder"
            )
        if not isinstance(control_video, torch.Tensor) or control_video.dim() != 4 or control_video.shape[-1] != 3:
            shape = tuple(control_video.shape) if isinstance(control_video, torch.Tensor) else type(control_video)
            raise ValueError(f"CogVideoXFunControl: control_video: expected IMAGE frames [N, H, W, 3], got {shape}")
        fmt = _latent_format(vae)
        latent, padding = _empty(adapter, width, height, length, batch_size)
        if padding:
            raise ValueError(
                f"CogVideoXFunControl: length: {length} frames make {fmt.latent_frames(length)} latent frames; "
                f"{adapter.describe()} patches {adapter.spec.patch_size_t} at once and its pipeline does not pad "
                f"control videos: use {length + fmt.temporal_ratio}"
            )
        frames = resample_control_video(control_video, width, height, length)
        raw = vae.encode(current_context().service(MODELS_SERVICE), frames)  # [1, C, T, h, w]
        extras = {CONTROL_LATENTS: fmt.process_in(raw)}
        return (
            with_extras(positive, "positive", extras),
            with_extras(negative, "negative", extras),
            {"samples": latent},
            padding,
        )


NODE_CLASS_MAPPINGS = {
    "EmptyCogVideoXLatentVideo": EmptyCogVideoXLatentVideo,
    "CogVideoXImageToVideo": CogVideoXImageToVideo,
    "CogVideoXFunControl": CogVideoXFunControl,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "EmptyCogVideoXLatentVideo": "Empty CogVideoX Latent Video",
    "CogVideoXImageToVideo": "CogVideoX Image to Video",
    "CogVideoXFunControl": "CogVideoX Fun Control",
}
