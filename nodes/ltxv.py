"""LTX-Video latent and conditioning nodes in ComfyUI's vocabulary: the empty latent, the frame rate, a start image
kept in the latent (``LTXVImgToVideo``, ``LTXVImgToVideoInplace``), guide frames appended to the latent
(``LTXVAddGuide``, ``LTXVCropGuides``) and the H.264 round trip of conditioning images (``LTXVPreprocess``).

An LTX-Video ``LATENT`` is the VAE-normalised latent ``[B, 128, (N - 1) / 8 + 1, H / 32, W / 32]`` the LTX VAE's
encode gives. Its ``noise_mask`` (``[B, 1, T, h, w]``, 1 = generate) marks kept frames, which the LTX adapter
samples with per-token timesteps. Guides are latent frames appended after the video's; the conditionings'
``keyframe_idxs`` list them as ``(latent_start, latent_frames, pixel_frame_idx)`` so the adapter gives them the
positions of the video frames they stand for. ``LTXVCropGuides`` removes them after sampling.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import torch

from graph.context import current_context
from models.families.ltx.adapter import Keyframe
from models.families.ltx.latents import LTXV_LATENT
from models.guidance import Conditioning, conditioning_entries, with_extras
from models.memory import MODELS_SERVICE
from models.noise_mask import latent_noise_mask
from models.video_vae import VideoVAE
from nodes.image import fit_frames
from nodes.latent import MAX_SIZE, latent_samples

CATEGORY = "conditioning/video_models"
KEYFRAMES = "keyframe_idxs"
FRAME_RATE = "frame_rate"
CHANNELS = LTXV_LATENT.channels
SPATIAL = LTXV_LATENT.spatial_ratio
TEMPORAL = LTXV_LATENT.temporal_ratio
CONDITIONINGS = ("CONDITIONING", "CONDITIONING", "LATENT")
CONDITIONING_NAMES = ("positive", "negative", "latent")


def _size_inputs(length_min: int) -> dict[str, Any]:
    return {
        "width": ("INT", {"default": 768, "min": 64, "max": MAX_SIZE, "step": 32}),
        "height": ("INT", {"default": 512, "min": 64, "max": MAX_SIZE, "step": 32}),
        "length": ("INT", {"default": 97, "min": length_min, "max": MAX_SIZE, "step": 8, "tooltip": "Video frames."}),
        "batch_size": ("INT", {"default": 1, "min": 1, "max": 4096}),
    }


def _strength_input(**step: float) -> tuple[str, dict[str, Any]]:
    tooltip = "How strongly the frames are kept: 1 keeps them as encoded, 0 regenerates them."
    return ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, **step, "tooltip": tooltip})


class EmptyLTXVLatentVideo:
    """Zeros in the LTX-Video latent: the start of text-to-video."""

    FUNCTION = "generate"
    CATEGORY = "latent/video/ltxv"
    RETURN_TYPES = ("LATENT",)
    DESCRIPTION = "An empty LTX-Video latent: width/32 x height/32, (length - 1)/8 + 1 latent frames, 128 channels."

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": _size_inputs(length_min=1)}

    def generate(self, width: int, height: int, length: int, batch_size: int) -> tuple[dict[str, torch.Tensor]]:
        return ({"samples": torch.zeros(batch_size, *_latent_size(width, height, length))},)


class LTXVConditioning:
    """The video's frame rate in both conditionings (LTX-Video places frames in time by it)."""

    FUNCTION = "append"
    CATEGORY = CATEGORY
    RETURN_TYPES = ("CONDITIONING", "CONDITIONING")
    RETURN_NAMES = ("positive", "negative")
    DESCRIPTION = "Sets the frame rate LTX-Video generates for (its positions in time are in seconds)."

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "positive": ("CONDITIONING", {}),
                "negative": ("CONDITIONING", {}),
                "frame_rate": (
                    "FLOAT",
                    {"default": 25.0, "min": 0.0, "max": 1000.0, "step": 0.01, "tooltip": "Frames per second."},
                ),
            }
        }

    def append(
        self, positive: Conditioning, negative: Conditioning, frame_rate: float
    ) -> tuple[list[list[Any]], list[list[Any]]]:
        if not frame_rate > 0:
            raise ValueError(f"frame_rate: {frame_rate} must be above 0")
        extras = {FRAME_RATE: float(frame_rate)}
        return (with_extras(positive, "positive", extras), with_extras(negative, "negative", extras))


class LTXVImgToVideo:
    """An empty latent whose first frame holds the encoded image, kept by a noise mask (image-to-video)."""

    FUNCTION = "generate"
    CATEGORY = CATEGORY
    RETURN_TYPES = CONDITIONINGS
    RETURN_NAMES = CONDITIONING_NAMES
    DESCRIPTION = (
        "Encodes a start image into the first latent frame of an empty LTX-Video latent; a noise mask keeps it "
        "(by strength) while the rest is generated. The conditionings pass through."
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "positive": ("CONDITIONING", {}),
                "negative": ("CONDITIONING", {}),
                "vae": ("VAE", {}),
                "image": ("IMAGE", {"tooltip": "The start image (resized and center-cropped to the video size)."}),
                **_size_inputs(length_min=9),
                "strength": _strength_input(),
            }
        }

    def generate(
        self,
        positive: Conditioning,
        negative: Conditioning,
        vae: VideoVAE,
        image: torch.Tensor,
        width: int,
        height: int,
        length: int,
        batch_size: int,
        strength: float,
    ) -> tuple[Conditioning, Conditioning, dict[str, torch.Tensor]]:
        _check_vae(vae)
        shape = _latent_size(width, height, length)
        conditioning_entries(positive, "positive")
        conditioning_entries(negative, "negative")
        encoded = _encode(vae, _fit(image, width, height, length, "image"))
        latent = torch.zeros(batch_size, *shape)
        latent[:, :, : encoded.shape[2]] = encoded
        mask = torch.ones(batch_size, 1, *shape[1:])
        mask[:, :, : encoded.shape[2]] = 1.0 - strength
        return (positive, negative, {"samples": latent, "noise_mask": mask})


class LTXVImgToVideoInplace:
    """A given latent's first frame replaced by the encoded image, kept by its noise mask."""

    FUNCTION = "generate"
    CATEGORY = CATEGORY
    RETURN_TYPES = ("LATENT",)
    RETURN_NAMES = ("latent",)
    DESCRIPTION = (
        "Encodes an image into the first frame of an LTX-Video latent (at the latent's size) and keeps it by the "
        "noise mask, as LTXVImgToVideo does for an empty latent."
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "vae": ("VAE", {}),
                "image": ("IMAGE", {"tooltip": "The start image (resized and center-cropped to the latent's size)."}),
                "latent": ("LATENT", {}),
                "strength": _strength_input(),
                "bypass": ("BOOLEAN", {"default": False, "tooltip": "Pass the latent through unchanged."}),
            }
        }

    def generate(
        self, vae: VideoVAE, image: torch.Tensor, latent: dict[str, Any], strength: float, bypass: bool = False
    ) -> tuple[dict[str, Any]]:
        if bypass:
            return (latent,)
        _check_vae(vae)
        samples = _ltx_samples(latent, "latent")
        _, _, frames, height, width = samples.shape
        pixel_frames = (frames - 1) * TEMPORAL + 1
        encoded = _encode(vae, _fit(image, width * SPATIAL, height * SPATIAL, pixel_frames, "image"))
        samples = samples.clone()
        samples[:, :, : encoded.shape[2]] = encoded
        mask = _noise_mask(latent, samples)
        mask[:, :, : encoded.shape[2]] = 1.0 - strength
        return ({**latent, "samples": samples, "noise_mask": mask},)


class LTXVAddGuide:
    """An image or video appended to the latent as guide frames, placed in time at ``frame_idx``."""

    FUNCTION = "generate"
    CATEGORY = CATEGORY
    RETURN_TYPES = CONDITIONINGS
    RETURN_NAMES = CONDITIONING_NAMES
    DESCRIPTION = (
        "Guides the video with an image or clip at a frame: its latent frames are appended to the latent (kept by "
        "strength) and the conditionings record where they belong. Remove them after sampling with LTXVCropGuides."
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "positive": ("CONDITIONING", {}),
                "negative": ("CONDITIONING", {}),
                "vae": ("VAE", {}),
                "latent": ("LATENT", {}),
                "image": (
                    "IMAGE",
                    {
                        "tooltip": "An image or a clip of 8n + 1 frames (longer clips are cut to the nearest 8n + 1), "
                        "resized to the latent's size."
                    },
                ),
                "frame_idx": (
                    "INT",
                    {
                        "default": 0,
                        "min": -9999,
                        "max": 9999,
                        "tooltip": "The video frame the guide starts at; negative counts from the end (-1: the "
                        "last frame). A clip of 9+ frames away from the start snaps to a frame 8n + 1.",
                    },
                ),
                "strength": _strength_input(step=0.01),
            }
        }

    def generate(
        self,
        positive: Conditioning,
        negative: Conditioning,
        vae: VideoVAE,
        latent: dict[str, Any],
        image: torch.Tensor,
        frame_idx: int,
        strength: float,
    ) -> tuple[list[list[Any]], list[list[Any]], dict[str, Any]]:
        _check_vae(vae)
        samples = _ltx_samples(latent, "latent")
        batch, _, frames, height, width = samples.shape
        _check_image(image, "image")
        video_frames = frames - _guided_frames(positive, "positive")
        if frame_idx < 0:
            frame_idx = max((video_frames - 1) * TEMPORAL + 1 + frame_idx, 0)
        kept = (image.shape[0] - 1) // TEMPORAL * TEMPORAL + 1
        # A clip away from the start: prepend a throwaway frame so that the VAE's lone first latent frame codes
        # it, and keep the latent frames of 8 whole frames each.
        causal = frame_idx == 0 or kept == 1
        clip = image if causal else torch.cat([image[:1], image])
        clip = clip[: (clip.shape[0] - 1) // TEMPORAL * TEMPORAL + 1]
        encoded = _encode(vae, _fit(clip, width * SPATIAL, height * SPATIAL, clip.shape[0], "image"))
        if not causal:
            encoded = encoded[:, :, 1:]
            frame_idx = (frame_idx - 1) // TEMPORAL * TEMPORAL + 1
        latent_idx = (frame_idx + TEMPORAL - 1) // TEMPORAL
        count = encoded.shape[2]
        if latent_idx + count > frames:
            raise ValueError(
                f"frame_idx: a guide of {count} latent frame(s) at frame {frame_idx} (latent frame {latent_idx}) "
                f"does not fit the latent's {frames} frames; use a smaller frame_idx or a shorter guide"
            )
        # Positions follow the adapter's grid, where latent frame k sits at pixel frame 8k: a single frame at its
        # own frame, a clip's latent frames at those of the video frames they code.
        pixel = frame_idx if causal else latent_idx * TEMPORAL
        keyframe: Keyframe = (frames, count, pixel)
        guided = torch.cat([samples, encoded.expand(batch, -1, -1, -1, -1)], dim=2)
        mask = _noise_mask(latent, samples)
        mask = torch.cat([mask, torch.full((batch, 1, count, height, width), 1.0 - strength)], dim=2)
        return (
            _with_keyframe(positive, "positive", keyframe),
            _with_keyframe(negative, "negative", keyframe),
            {**latent, "samples": guided, "noise_mask": mask},
        )


class LTXVCropGuides:
    """The latent without the guide frames ``LTXVAddGuide`` appended, and conditionings without their record."""

    FUNCTION = "crop"
    CATEGORY = CATEGORY
    RETURN_TYPES = CONDITIONINGS
    RETURN_NAMES = CONDITIONING_NAMES
    DESCRIPTION = (
        "Removes the guide frames appended by LTXVAddGuide from a sampled latent (before decoding or upscaling) "
        "and their keyframe record from the conditionings."
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "positive": ("CONDITIONING", {}),
                "negative": ("CONDITIONING", {}),
                "latent": ("LATENT", {}),
            }
        }

    def crop(
        self, positive: Conditioning, negative: Conditioning, latent: dict[str, Any]
    ) -> tuple[Conditioning, Conditioning, dict[str, Any]]:
        samples = _ltx_samples(latent, "latent")
        guided = _guided_frames(positive, "positive")
        conditioning_entries(negative, "negative")
        if guided == 0:
            return (positive, negative, latent)
        frames = samples.shape[2]
        if guided >= frames:
            raise ValueError(
                f"latent: the conditionings record {guided} guide frame(s), but the latent has only {frames}; was "
                "it already cropped, or made without these conditionings?"
            )
        cropped = {**latent, "samples": samples[:, :, : frames - guided].clone()}
        if latent.get("noise_mask") is not None:
            cropped["noise_mask"] = _noise_mask(latent, samples)[:, :, : frames - guided].clone()
        return (_without_keyframes(positive, "positive"), _without_keyframes(negative, "negative"), cropped)


class LTXVPreprocess:
    """Each image through an H.264 encode and decode, so that conditioning frames look like the video frames
    LTX-Video was trained on."""

    FUNCTION = "preprocess"
    CATEGORY = "image"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("output_image",)
    DESCRIPTION = (
        "Compresses each image as one H.264 frame (crf = img_compression; 0 leaves the images unchanged) and "
        "decodes it back; odd widths and heights lose their last pixel row or column (4:2:0 video)."
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "image": ("IMAGE", {}),
                "img_compression": (
                    "INT",
                    {"default": 35, "min": 0, "max": 100, "tooltip": "Amount of compression to apply on image."},
                ),
            }
        }

    def preprocess(self, image: torch.Tensor, img_compression: int) -> tuple[torch.Tensor]:
        _check_image(image, "image")
        if not 0 <= img_compression <= 100:
            raise ValueError(f"img_compression: {img_compression} is not in 0..100")
        if img_compression == 0:
            return (image,)
        height, width = image.shape[1] // 2 * 2, image.shape[2] // 2 * 2
        if height == 0 or width == 0:
            raise ValueError(f"image: {image.shape[2]}x{image.shape[1]} is too small to encode as H.264")
        frames = (image[:, :height, :width].clamp(0.0, 1.0) * 255.0).to(torch.uint8).cpu().numpy()
        decoded = [_h264_round_trip(frame, img_compression) for frame in frames]
        return (torch.from_numpy(np.stack(decoded)).to(image.dtype).div(255.0),)


def _h264_round_trip(frame: np.ndarray, crf: int) -> np.ndarray:
    """``frame`` (``[H, W, 3]`` uint8, even sizes) encoded as a one-frame H.264 mp4 at ``crf`` and decoded."""
    import av  # PyAV: the media nodes' dependency, imported when a node runs

    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=1, options={"crf": str(crf), "preset": "veryfast"})
        stream.height, stream.width = frame.shape[:2]
        picture = av.VideoFrame.from_ndarray(frame, format="rgb24").reformat(format="yuv420p")
        for packet in (*stream.encode(picture), *stream.encode()):
            container.mux(packet)
    buffer.seek(0)
    with av.open(buffer) as container:
        decoded = next(container.decode(video=0))
    return decoded.to_ndarray(format="rgb24")


def _latent_size(width: int, height: int, length: int) -> tuple[int, int, int, int]:
    """``(channels, frames, h, w)`` of the latent of a ``width`` x ``height`` video of ``length`` frames;
    ``ValueError`` naming the input the LTX-Video VAE cannot code."""
    for name, value in (("width", width), ("height", height)):
        if value < SPATIAL or value % SPATIAL:
            raise ValueError(
                f"{name}: {value} is not a multiple of {SPATIAL} (the LTX-Video latent is 1/{SPATIAL} the size); "
                f"use {max(value - value % SPATIAL, SPATIAL)}"
            )
    if length < 1 or (length - 1) % TEMPORAL:
        raise ValueError(
            f"length: the LTX-Video VAE codes 1 + {TEMPORAL}k frames, not {length} (e.g. "
            f"{max(length - (length - 1) % TEMPORAL, 1)})"
        )
    return (CHANNELS, (length - 1) // TEMPORAL + 1, height // SPATIAL, width // SPATIAL)


def _check_vae(vae: VideoVAE) -> None:
    fmt = getattr(vae, "latent_format", None)
    if fmt != LTXV_LATENT:
        described = fmt.name if fmt is not None else type(vae).__name__
        raise ValueError(f"vae: an LTX-Video VAE is needed, got {described} ({getattr(vae, 'name', vae)!r})")


def _ltx_samples(latent: Any, name: str) -> torch.Tensor:
    samples = latent_samples(latent, name)
    LTXV_LATENT.check(samples, name)
    return samples


def _check_image(image: Any, name: str) -> None:
    if not isinstance(image, torch.Tensor) or image.dim() != 4 or image.shape[-1] != 3 or image.shape[0] < 1:
        shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise ValueError(f"{name}: expected IMAGE frames [N, H, W, 3], got {shape}")


def _fit(image: torch.Tensor, width: int, height: int, length: int, name: str) -> torch.Tensor:
    """The first 1 + 8k frames of ``image`` (at most ``length``) resized to ``width`` x ``height`` (bilinear,
    center crop)."""
    _check_image(image, name)
    count = min(image.shape[0], length)
    return fit_frames(image, width, height, (count - 1) // TEMPORAL * TEMPORAL + 1, name)


def _encode(vae: VideoVAE, frames: torch.Tensor) -> torch.Tensor:
    """The normalised LTX-Video latent ``[1, 128, t, h, w]`` of ``frames`` as one video."""
    return vae.encode(current_context().service(MODELS_SERVICE), frames)


def _noise_mask(latent: dict[str, Any], samples: torch.Tensor) -> torch.Tensor:
    """A copy of the latent's noise mask as ``[B, 1, T, h, w]`` (ones when it has none)."""
    mask = latent.get("noise_mask")
    if mask is None:
        return torch.ones(samples.shape[0], 1, *samples.shape[2:])
    try:
        return latent_noise_mask(mask, samples.shape, LTXV_LATENT).clone()
    except ValueError as exc:
        raise ValueError(f"latent: {exc}") from exc


def _keyframes(conditioning: Conditioning, name: str) -> list[Keyframe]:
    """The guides recorded in ``conditioning`` (its first entry that has a record), as ComfyUI reads them."""
    for _, extras in conditioning_entries(conditioning, name):
        if extras.get(KEYFRAMES) is not None:
            try:
                return [_keyframe(item) for item in extras[KEYFRAMES]]
            except (TypeError, ValueError):
                raise ValueError(
                    f"{name}: keyframe_idxs is not a list of (latent_start, latent_frames, pixel_frame_idx); was "
                    "it set by another node pack's LTXVAddGuide?"
                ) from None
    return []


def _keyframe(item: Any) -> Keyframe:
    start, count, pixel = (int(value) for value in item)
    return start, count, pixel


def _guided_frames(conditioning: Conditioning, name: str) -> int:
    return sum(count for _, count, _ in _keyframes(conditioning, name))


def _with_keyframe(conditioning: Conditioning, name: str, keyframe: Keyframe) -> list[list[Any]]:
    return with_extras(conditioning, name, {KEYFRAMES: [*_keyframes(conditioning, name), keyframe]})


def _without_keyframes(conditioning: Conditioning, name: str) -> list[list[Any]]:
    entries = conditioning_entries(conditioning, name)
    return [[tensor, {key: value for key, value in extras.items() if key != KEYFRAMES}] for tensor, extras in entries]


NODE_CLASS_MAPPINGS = {
    "EmptyLTXVLatentVideo": EmptyLTXVLatentVideo,
    "LTXVConditioning": LTXVConditioning,
    "LTXVImgToVideo": LTXVImgToVideo,
    "LTXVImgToVideoInplace": LTXVImgToVideoInplace,
    "LTXVAddGuide": LTXVAddGuide,
    "LTXVCropGuides": LTXVCropGuides,
    "LTXVPreprocess": LTXVPreprocess,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "EmptyLTXVLatentVideo": "EmptyLTXVLatentVideo",
    "LTXVConditioning": "LTXVConditioning",
    "LTXVImgToVideo": "LTXVImgToVideo",
    "LTXVImgToVideoInplace": "LTXVImgToVideoInplace",
    "LTXVAddGuide": "LTXVAddGuide",
    "LTXVCropGuides": "LTXVCropGuides",
    "LTXVPreprocess": "LTXV Preprocess",
}
