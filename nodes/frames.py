"""Frame-batch nodes for video: select, reverse, ping-pong, join, crossfade, fit to a size multiple, change frame rate.

IMAGE batches are ``[frames, height, width, channels]``. Selection and timing nodes work for any channel count;
joins need both inputs to have the same one.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from graph.context import ProgressBar
from nodes.image import MAX_RESOLUTION, UPSCALE_METHODS, owned_slice, resize_images

MAX_FRAMES = 1 << 20
CATEGORY = "image/frames"
SIZE_MISMATCH = ("error", "resize_b")
CROSSFADE_CURVES = ("linear", "ease_in_out")
FIT_MODES = ("resize", "crop", "pad")
PAD_MODES = ("edge", "black", "reflect")
_RESIZE_CHUNK_ELEMENTS = 1 << 24  # output elements resized per step (64 MiB of float32)


def check_frames(images: Any, name: str) -> int:
    """The frame count of an IMAGE batch; ValueError naming ``name`` for a wrong shape or an empty batch."""
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"{name} must be an IMAGE tensor [frames, height, width, channels], got {shape}")
    if images.shape[0] == 0:
        raise ValueError(f"{name} is empty (0 frames)")
    if 0 in images.shape[1:]:
        raise ValueError(f"{name} has an empty frame size {tuple(images.shape[1:])} (height, width, channels)")
    return images.shape[0]


def _size(images: torch.Tensor) -> str:
    return f"{images.shape[2]}x{images.shape[1]}"


def _frames_input(tooltip: str) -> tuple[str, dict[str, Any]]:
    return ("IMAGE", {"tooltip": tooltip})


def _count_option(default: int, low: int, tooltip: str, high: int = MAX_FRAMES) -> tuple[str, dict[str, Any]]:
    return ("INT", {"default": default, "min": low, "max": high, "step": 1, "tooltip": tooltip})


def _matching(images_a: torch.Tensor, images_b: torch.Tensor, resize_b: bool) -> torch.Tensor:
    """``images_b`` on ``images_a``'s device and dtype, and, when ``resize_b``, its frame size (centre crop)."""
    if images_a.shape[3] != images_b.shape[3]:
        raise ValueError(
            f"images_a has {images_a.shape[3]} channels and images_b has {images_b.shape[3]}: they cannot be joined"
        )
    if images_a.shape[1:3] != images_b.shape[1:3]:
        if not resize_b:
            raise ValueError(
                f"images_a frames are {_size(images_a)} but images_b frames are {_size(images_b)} (width x height); "
                "resize one of them first, or set size_mismatch to 'resize_b'"
            )
        images_b = resize_images(images_b, images_a.shape[2], images_a.shape[1], "bilinear", "center")
    return images_b.to(images_a.device, images_a.dtype)


class FrameSelectRange:
    """A run of consecutive frames; a negative start counts from the end and the length is cut at the end."""

    FUNCTION = "select"
    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("images",)
    DESCRIPTION = (
        "Takes length frames starting at start; a negative start counts from the end, length 0 takes the rest."
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "images": _frames_input("The frames to select from."),
                "start": _count_option(
                    0, -MAX_FRAMES, "Index of the first frame; -1 is the last frame, a start before the first is 0."
                ),
                "length": _count_option(0, 0, "How many frames; 0 takes every frame to the end."),
            }
        }

    def select(self, images: torch.Tensor, start: int, length: int) -> tuple[torch.Tensor]:
        count = check_frames(images, "images")
        first = max(0, count + start) if start < 0 else start
        if first >= count:
            raise ValueError(f"start {start} is past the end of images, which has {count} frames")
        end = count if length == 0 else min(count, first + length)
        return (owned_slice(images[first:end], images),)


class FrameSelectEveryNth:
    """Every n-th frame, after skipping some at the start."""

    FUNCTION = "select"
    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("images",)
    DESCRIPTION = "Keeps every n-th frame (1 keeps all), starting after skip_first frames."

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "images": _frames_input("The frames to select from."),
                "select_every_nth": _count_option(1, 1, "Keep one frame in this many; 1 keeps every frame."),
                "skip_first": _count_option(0, 0, "Frames dropped from the start before selecting."),
            }
        }

    def select(self, images: torch.Tensor, select_every_nth: int, skip_first: int) -> tuple[torch.Tensor]:
        count = check_frames(images, "images")
        if select_every_nth < 1:
            raise ValueError(f"select_every_nth must be at least 1, got {select_every_nth}")
        if skip_first >= count:
            raise ValueError(f"skip_first {skip_first} skips every frame of images, which has {count} frames")
        return (owned_slice(images[skip_first::select_every_nth], images),)


class FrameReverse:
    """The frames in reverse order."""

    FUNCTION = "reverse"
    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("images",)
    DESCRIPTION = "Reverses the order of the frames."

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"images": _frames_input("The frames to reverse.")}}

    def reverse(self, images: torch.Tensor) -> tuple[torch.Tensor]:
        count = check_frames(images, "images")
        return (images if count == 1 else images.flip(0),)


class FramePingPong:
    """The frames forwards then backwards, for a seamless back-and-forth loop."""

    FUNCTION = "pingpong"
    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("images",)
    DESCRIPTION = "Plays the frames forwards then backwards: 0..n-1..1 when turn frames are dropped, for looping."

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "images": _frames_input("The frames to play forwards and back."),
                "drop_turn_frames": (
                    "BOOLEAN",
                    {
                        "default": True,
                        "tooltip": "Don't repeat the last frame at the turn or the first at the end "
                        "(0..n-1..1, loops seamlessly); off gives 0..n-1, n-1..0.",
                    },
                ),
            }
        }

    def pingpong(self, images: torch.Tensor, drop_turn_frames: bool) -> tuple[torch.Tensor]:
        count = check_frames(images, "images")
        forward = torch.arange(count, device=images.device)
        backward = forward[1:-1].flip(0) if drop_turn_frames else forward.flip(0)
        if backward.numel() == 0:
            return (images,)
        return (images.index_select(0, torch.cat((forward, backward))),)


class FrameConcat:
    """Two frame batches one after the other."""

    FUNCTION = "concat"
    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("images",)
    DESCRIPTION = "Appends images_b after images_a; frames of different sizes are refused or images_b is resized."

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "images_a": _frames_input("The first frames; their size is kept."),
                "images_b": _frames_input("Frames appended after images_a."),
                "size_mismatch": (
                    list(SIZE_MISMATCH),
                    {
                        "tooltip": "When frame sizes differ: 'error' stops, 'resize_b' scales images_b to "
                        "images_a's size (bilinear, centre-cropped to its aspect ratio)."
                    },
                ),
            }
        }

    def concat(self, images_a: torch.Tensor, images_b: torch.Tensor, size_mismatch: str) -> tuple[torch.Tensor]:
        check_frames(images_a, "images_a")
        check_frames(images_b, "images_b")
        images_b = _matching(images_a, images_b, size_mismatch == "resize_b")
        return (torch.cat((images_a, images_b), dim=0),)


def _crossfade_weights(overlap: int, curve: str, like: torch.Tensor) -> torch.Tensor:
    """Weight of clip b for each overlapping frame, strictly between 0 and 1: (k + 1) / (overlap + 1), eased."""
    t = torch.arange(1, overlap + 1, dtype=torch.float64) / (overlap + 1)
    if curve == "ease_in_out":
        t = t * t * (3 - 2 * t)
    elif curve != "linear":
        raise ValueError(f"curve {curve!r} is not one of {', '.join(CROSSFADE_CURVES)}")
    return t.to(like.device, like.dtype).view(-1, 1, 1, 1)


class FrameJoinCrossfade:
    """Two clips joined with a crossfade over their overlapping frames."""

    FUNCTION = "join"
    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("images",)
    DESCRIPTION = (
        "Joins two clips, blending the last overlap frames of images_a with the first overlap frames of images_b; "
        "the result has len(a) + len(b) - overlap frames."
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "images_a": _frames_input("The first clip; its frame size is required of images_b."),
                "images_b": _frames_input("The clip that fades in and follows."),
                "overlap": _count_option(8, 0, "Frames blended between the clips; 0 just appends."),
                "curve": (
                    list(CROSSFADE_CURVES),
                    {"tooltip": "How the mix moves from a to b: evenly, or slow at both ends (smoothstep)."},
                ),
            }
        }

    def join(self, images_a: torch.Tensor, images_b: torch.Tensor, overlap: int, curve: str) -> tuple[torch.Tensor]:
        count_a = check_frames(images_a, "images_a")
        count_b = check_frames(images_b, "images_b")
        if overlap < 0 or overlap > min(count_a, count_b):
            raise ValueError(
                f"overlap {overlap} must lie between 0 and the shorter clip's length "
                f"(images_a has {count_a} frames, images_b has {count_b})"
            )
        images_b = _matching(images_a, images_b, resize_b=False)
        weights = _crossfade_weights(overlap, curve, images_a)
        out = images_a.new_empty((count_a + count_b - overlap, *images_a.shape[1:]))
        head = count_a - overlap
        out[:head] = images_a[:head]
        torch.lerp(images_a[head:], images_b[:overlap], weights, out=out[head:count_a])
        out[count_a:] = images_b[overlap:]
        return (out,)


def _reflect_index(length: int, before: int, size: int, pad_mode: str, device: torch.device) -> torch.Tensor:
    """Source index of each of ``size`` output positions when ``before`` positions precede ``length`` source ones."""
    index = torch.arange(size, device=device) - before
    if pad_mode == "reflect" and length > 1:
        period = 2 * (length - 1)
        index = index.remainder(period)
        index = torch.where(index >= length, period - index, index)
    return index.clamp_(0, length - 1)


def _pad_centered(images: torch.Tensor, width: int, height: int, pad_mode: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``images`` centred in a ``width`` x ``height`` canvas, and a one-frame mask that is 1 on the padding."""
    h, w = images.shape[1], images.shape[2]
    top, left = (height - h) // 2, (width - w) // 2
    mask = torch.ones((1, height, width), dtype=torch.float32, device=images.device)
    mask[:, top : top + h, left : left + w] = 0.0
    if pad_mode == "black":
        out = images.new_zeros((images.shape[0], height, width, images.shape[3]))
        out[:, top : top + h, left : left + w] = images
        return out, mask
    if pad_mode not in PAD_MODES:
        raise ValueError(f"pad_mode {pad_mode!r} is not one of {', '.join(PAD_MODES)}")
    rows = _reflect_index(h, top, height, pad_mode, images.device)
    cols = _reflect_index(w, left, width, pad_mode, images.device)
    return images[:, rows[:, None], cols[None, :]], mask


def _resize_chunked(images: torch.Tensor, width: int, height: int, method: str) -> torch.Tensor:
    """``resize_images`` a few frames at a time into one output, with progress and interrupt checks between chunks."""
    count = images.shape[0]
    step = max(1, _RESIZE_CHUNK_ELEMENTS // (width * height * images.shape[3]))
    if step >= count:
        return resize_images(images, width, height, method)
    out = images.new_empty((count, height, width, images.shape[3]))
    bar = ProgressBar(count)
    for start in range(0, count, step):
        out[start : start + step] = resize_images(images[start : start + step], width, height, method)
        bar.update(min(step, count - start))
    return out


class FrameFitToMultiple:
    """Frames brought to a width and height divisible by a number, as video models need."""

    FUNCTION = "fit"
    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE", "INT", "INT", "MASK")
    RETURN_NAMES = ("images", "width", "height", "pad_mask")
    OUTPUT_TOOLTIPS = (
        "The frames, with both sides a multiple of the given number.",
        "The new width.",
        "The new height.",
        "1 where pad mode added pixels, else 0; one frame expanded (not copied) to the frame count.",
    )
    DESCRIPTION = (
        "Makes width and height multiples of a number: resize to the nearest multiples, "
        "centre-crop down, or centre-pad up (the pad mask marks the added pixels)."
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "images": _frames_input("The frames to fit."),
                "multiple": _count_option(16, 1, "Both sides become multiples of this.", high=MAX_RESOLUTION),
                "mode": (
                    list(FIT_MODES),
                    {
                        "tooltip": "'resize' scales to the nearest multiples (may distort slightly), 'crop' cuts "
                        "the centre down to the multiples below, 'pad' extends to the multiples above."
                    },
                ),
                "pad_mode": (
                    list(PAD_MODES),
                    {"tooltip": "What fills the padding: the edge pixels repeated, black, or a mirror image."},
                ),
                "upscale_method": (list(UPSCALE_METHODS), {"tooltip": "The resampling filter of 'resize'."}),
            }
        }

    def fit(
        self, images: torch.Tensor, multiple: int, mode: str, pad_mode: str, upscale_method: str
    ) -> tuple[torch.Tensor, int, int, torch.Tensor]:
        count = check_frames(images, "images")
        if multiple < 1:
            raise ValueError(f"multiple must be at least 1, got {multiple}")
        h, w = images.shape[1], images.shape[2]
        if mode == "resize":
            width, height = (max(multiple, math.floor(side / multiple + 0.5) * multiple) for side in (w, h))
        elif mode == "crop":
            width, height = (side // multiple * multiple for side in (w, h))
            if width == 0 or height == 0:
                raise ValueError(
                    f"images are {w}x{h}, smaller than multiple {multiple} on one side: "
                    "crop would leave nothing; use mode 'pad' or 'resize'"
                )
        elif mode == "pad":
            width, height = (-(-side // multiple) * multiple for side in (w, h))
        else:
            raise ValueError(f"mode {mode!r} is not one of {', '.join(FIT_MODES)}")
        no_padding = torch.zeros((1, height, width), dtype=torch.float32, device=images.device)
        if (width, height) == (w, h):
            return (images, width, height, no_padding.expand(count, -1, -1))
        if mode == "resize":
            return (
                _resize_chunked(images, width, height, upscale_method),
                width,
                height,
                no_padding.expand(count, -1, -1),
            )
        if mode == "crop":
            top, left = (h - height) // 2, (w - width) // 2
            cropped = owned_slice(images[:, top : top + height, left : left + width], images)
            return (cropped, width, height, no_padding.expand(count, -1, -1))
        padded, mask = _pad_centered(images, width, height, pad_mode)
        return (padded, width, height, mask.expand(count, -1, -1))


def _retime_index(count: int, source_fps: float, target_fps: float) -> list[int]:
    """Source frame shown at each output time ``i / target_fps``; ``round(count * target / source)`` frames."""
    ratio = source_fps / target_fps
    frames = max(1, math.floor(count * target_fps / source_fps + 0.5))
    # The epsilon keeps i * ratio landing on a whole frame (e.g. 29.97 -> 23.976) from flooring one short.
    return [min(count - 1, math.floor(i * ratio + 1e-6)) for i in range(frames)]


def _fps_option(tooltip: str) -> tuple[str, dict[str, Any]]:
    return ("FLOAT", {"default": 24.0, "min": 0.01, "max": 1000.0, "step": 0.001, "tooltip": tooltip})


class FrameRateChange:
    """Frames re-timed to another frame rate by dropping or repeating frames (no blending)."""

    FUNCTION = "retime"
    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE", "FLOAT")
    RETURN_NAMES = ("images", "fps")
    DESCRIPTION = (
        "Changes the frame rate keeping the duration: each output frame shows the source frame at its time, "
        "so frames are dropped or repeated (never blended)."
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "images": _frames_input("The frames to re-time."),
                "source_fps": _fps_option("The frame rate the frames were made for."),
                "target_fps": _fps_option("The frame rate wanted; the duration stays the same."),
            }
        }

    def retime(self, images: torch.Tensor, source_fps: float, target_fps: float) -> tuple[torch.Tensor, float]:
        count = check_frames(images, "images")
        for name, fps in (("source_fps", source_fps), ("target_fps", target_fps)):
            if not math.isfinite(fps) or fps <= 0:
                raise ValueError(f"{name} must be a positive number, got {fps}")
        index = _retime_index(count, source_fps, target_fps)
        if index == list(range(count)):
            return (images, float(target_fps))
        return (images.index_select(0, torch.tensor(index, device=images.device)), float(target_fps))


NODE_CLASS_MAPPINGS = {
    "FrameSelectRange": FrameSelectRange,
    "FrameSelectEveryNth": FrameSelectEveryNth,
    "FrameReverse": FrameReverse,
    "FramePingPong": FramePingPong,
    "FrameConcat": FrameConcat,
    "FrameJoinCrossfade": FrameJoinCrossfade,
    "FrameFitToMultiple": FrameFitToMultiple,
    "FrameRateChange": FrameRateChange,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "FrameSelectRange": "Select Frame Range",
    "FrameSelectEveryNth": "Select Every Nth Frame",
    "FrameReverse": "Reverse Frames",
    "FramePingPong": "Ping-Pong Frames",
    "FrameConcat": "Concatenate Frames",
    "FrameJoinCrossfade": "Join Clips with Crossfade",
    "FrameFitToMultiple": "Fit Frames to Multiple",
    "FrameRateChange": "Change Frame Rate",
}
