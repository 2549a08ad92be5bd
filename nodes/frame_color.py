"""Colour matching of video frames to a reference frame: mean/std transfer in LAB or RGB, or histogram matching.

RGB (3 channels) and RGBA (4: alpha is kept) are supported. Frames are processed in chunks so memory stays bounded
whatever the clip length.
"""

from __future__ import annotations

from typing import Any

import torch

from graph.context import ProgressBar
from nodes.frames import MAX_FRAMES, check_frames

METHODS = ("mean_std_lab", "mean_std_rgb", "histogram")
_CHUNK_ELEMENTS = 1 << 22  # pixel values per step; histogram matching holds ~4 int64 temporaries of this size
_STD_EPSILON = 1e-5  # a channel flatter than this is only shifted, not scaled

# sRGB (D65) primaries to CIE XYZ, and the D65 white point (IEC 61966-2-1 / CIE constants).
_RGB_TO_XYZ = (
    (0.4124564, 0.3575761, 0.1804375),
    (0.2126729, 0.7151522, 0.0721750),
    (0.0193339, 0.1191920, 0.9503041),
)
_WHITE = (0.95047, 1.0, 1.08883)
_LAB_EPSILON = 216 / 24389
_LAB_KAPPA = 24389 / 27


def _linear_from_srgb(rgb: torch.Tensor) -> torch.Tensor:
    rgb = rgb.clamp(0.0, 1.0)
    return torch.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)


def _srgb_from_linear(linear: torch.Tensor) -> torch.Tensor:
    linear = linear.clamp(0.0, 1.0)
    return torch.where(linear <= 0.0031308, linear * 12.92, 1.055 * linear ** (1 / 2.4) - 0.055)


def _xyz_matrix(like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(_RGB_TO_XYZ, dtype=like.dtype, device=like.device)


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB in 0..1 (last dimension 3) to CIE L*a*b* (D65): L in 0..100, a and b roughly -128..127."""
    xyz = _linear_from_srgb(rgb) @ _xyz_matrix(rgb).T
    xyz = xyz / torch.tensor(_WHITE, dtype=rgb.dtype, device=rgb.device)
    f = torch.where(xyz > _LAB_EPSILON, xyz.clamp(min=_LAB_EPSILON) ** (1 / 3), (_LAB_KAPPA * xyz + 16) / 116)
    fx, fy, fz = f.unbind(-1)
    return torch.stack((116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)), dim=-1)


def lab_to_rgb(lab: torch.Tensor) -> torch.Tensor:
    """CIE L*a*b* (D65) back to sRGB, clamped to 0..1."""
    lightness, a, b = lab.unbind(-1)
    fy = (lightness + 16) / 116
    f = torch.stack((fy + a / 500, fy, fy - b / 200), dim=-1)
    cubed = f**3
    xyz = torch.where(cubed > _LAB_EPSILON, cubed, (116 * f - 16) / _LAB_KAPPA)
    xyz = xyz * torch.tensor(_WHITE, dtype=lab.dtype, device=lab.device)
    return _srgb_from_linear(xyz @ torch.linalg.inv(_xyz_matrix(lab)).T)


def _std_mean(pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-frame, per-channel std and mean of ``[B, H, W, C]``, shaped ``[B, 1, 1, C]``."""
    return torch.std_mean(pixels, dim=(1, 2), correction=0, keepdim=True)


def _transfer_mean_std(frames: torch.Tensor, ref_std: torch.Tensor, ref_mean: torch.Tensor, lab: bool) -> torch.Tensor:
    """``frames`` (RGB) shifted and scaled per channel to the reference's mean and std (in LAB or RGB)."""
    values = rgb_to_lab(frames) if lab else frames
    std, mean = _std_mean(values)
    scale = torch.where(std > _STD_EPSILON, ref_std / std.clamp(min=_STD_EPSILON), torch.ones_like(std))
    matched = (values - mean) * scale + ref_mean
    return lab_to_rgb(matched) if lab else matched.clamp_(0.0, 1.0)


def _tie_rank_sums(ordered: torch.Tensor) -> torch.Tensor:
    """For each element of ``ordered`` (sorted along the last dimension): values below it plus values at or below it.

    Equal values form one group sharing the group's mid-rank; this is linear time after the sort.
    """
    n = ordered.shape[-1]
    positions = torch.arange(n, device=ordered.device).expand_as(ordered)
    starts = torch.ones_like(ordered, dtype=torch.bool)
    torch.ne(ordered[..., 1:], ordered[..., :-1], out=starts[..., 1:])
    ends = torch.ones_like(starts)
    ends[..., :-1] = starts[..., 1:]
    below = torch.where(starts, positions, 0).cummax(dim=-1).values
    last = torch.where(ends, positions, n - 1).flip(-1).cummin(dim=-1).values.flip(-1)
    return below.add_(last).add_(1)


def _match_histograms(frames: torch.Tensor, reference_sorted: torch.Tensor) -> torch.Tensor:
    """Per-channel CDF matching of ``frames`` ``[B, H, W, C]`` to sorted reference values ``[C, M]``.

    A value's quantile is the mid-rank of its tie group, ``(below + at_or_below) / 2N``; the output is the reference
    value at that quantile, with reference element k at quantile ``(k + 1/2) / M`` and linear interpolation between.
    Integer arithmetic keeps this exact for large frames (no float rounding of ranks).
    """
    count, height, width, channels = frames.shape
    n = height * width
    m = reference_sorted.shape[-1]
    ordered, order = frames.permute(0, 3, 1, 2).reshape(count, channels, n).sort(dim=-1)
    # position in the reference, times 2N: (below + at_or_below) * M - N, clamped to the reference's range
    position = _tie_rank_sums(ordered)
    del ordered
    position.mul_(m).sub_(n).clamp_(0, (m - 1) * 2 * n)
    lower = torch.div(position, 2 * n, rounding_mode="floor")
    fraction = position.sub_(lower * (2 * n)).to(frames.dtype).div_(2 * n)
    del position
    table = reference_sorted.to(frames.dtype).expand(count, channels, m)
    matched_sorted = table.gather(-1, lower)
    matched_sorted.lerp_(table.gather(-1, lower.add_(1).clamp_(max=m - 1)), fraction)
    del lower, fraction
    matched = torch.empty_like(matched_sorted).scatter_(-1, order, matched_sorted)
    return matched.reshape(count, channels, height, width).permute(0, 2, 3, 1)


class FrameColorMatch:
    """Every frame's colours matched to one reference frame, to remove colour drift across a clip."""

    FUNCTION = "match"
    CATEGORY = "image/frames"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("images",)
    DESCRIPTION = (
        "Matches the colour statistics of every frame to a reference frame: mean and spread per channel in LAB "
        "or RGB, or the full per-channel histogram. Fixes colour drift between clips or over a long video."
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "images": ("IMAGE", {"tooltip": "The frames to correct (RGB, or RGBA with alpha kept)."}),
                "reference": ("IMAGE", {"tooltip": "Images holding the reference frame; its size may differ."}),
                "reference_index": (
                    "INT",
                    {
                        "default": 0,
                        "min": 0,
                        "max": MAX_FRAMES - 1,
                        "step": 1,
                        "tooltip": "Which frame of reference to match.",
                    },
                ),
                "method": (
                    list(METHODS),
                    {
                        "tooltip": "'mean_std_lab' matches mean and spread of lightness and colour (natural), "
                        "'mean_std_rgb' the same per RGB channel, 'histogram' the whole distribution per RGB channel."
                    },
                ),
                "strength": (
                    "FLOAT",
                    {
                        "default": 1.0,
                        "min": 0.0,
                        "max": 1.0,
                        "step": 0.01,
                        "tooltip": "0 keeps the frames, 1 applies the full match.",
                    },
                ),
            }
        }

    def match(
        self, images: torch.Tensor, reference: torch.Tensor, reference_index: int, method: str, strength: float
    ) -> tuple[torch.Tensor]:
        count = check_frames(images, "images")
        references = check_frames(reference, "reference")
        for name, batch in (("images", images), ("reference", reference)):
            if batch.shape[3] not in (3, 4):
                raise ValueError(f"{name} has {batch.shape[3]} channels; colour matching needs RGB (3) or RGBA (4)")
        if not 0 <= reference_index < references:
            raise ValueError(f"reference_index {reference_index} is outside reference, which has {references} frames")
        if method not in METHODS:
            raise ValueError(f"method {method!r} is not one of {', '.join(METHODS)}")
        if not 0.0 <= strength <= 1.0:
            raise ValueError(f"strength must lie between 0 and 1, got {strength}")
        if strength == 0.0:
            return (images,)

        ref = reference[reference_index : reference_index + 1, :, :, :3].to(images.device, torch.float32)
        ref_sorted = ref.reshape(-1, 3).T.contiguous().sort(dim=-1).values if method == "histogram" else None
        lab = method == "mean_std_lab"
        ref_std, ref_mean = _std_mean(rgb_to_lab(ref) if lab else ref)
        out = torch.empty_like(images)
        if images.shape[3] == 4:
            out[..., 3] = images[..., 3]
        step = max(1, _CHUNK_ELEMENTS // (images.shape[1] * images.shape[2] * 3))
        bar = ProgressBar(count)
        for start in range(0, count, step):
            frames = images[start : start + step, :, :, :3].to(torch.float32)
            if ref_sorted is not None:
                matched = _match_histograms(frames, ref_sorted)
            else:
                matched = _transfer_mean_std(frames, ref_std, ref_mean, lab)
            if strength < 1.0:
                matched = torch.lerp(frames, matched, strength)
            out[start : start + step, :, :, :3] = matched
            bar.update(frames.shape[0])
        return (out,)


NODE_CLASS_MAPPINGS = {"FrameColorMatch": FrameColorMatch}

NODE_DISPLAY_NAME_MAPPINGS = {"FrameColorMatch": "Color Match Frames"}
