"""Core image nodes: empty, invert, scale, crop, batch and blend, on IMAGE tensors ``[B, H, W, C]`` in 0..1."""

from __future__ import annotations

from typing import Any

import torch

from models.pixels import resize_images

MAX_RESOLUTION = 16384
MAX_BATCH = 4096
UPSCALE_METHODS = ("nearest-exact", "bilinear", "area", "bicubic", "lanczos")
CROP_METHODS = ("disabled", "center")
BLEND_MODES = ("normal", "multiply", "screen", "overlay", "soft_light", "difference")


def _size_option(default: int, low: int, tooltip: str) -> tuple[str, dict[str, Any]]:
    return ("INT", {"default": default, "min": low, "max": MAX_RESOLUTION, "step": 1, "tooltip": tooltip})


def fit_frames(image: torch.Tensor, width: int, height: int, length: int, name: str) -> torch.Tensor:
    """At most ``length`` frames of ``image`` resized to the video size (bilinear, center crop); ValueError naming
    input ``name`` for anything but IMAGE frames."""
    if not isinstance(image, torch.Tensor) or image.dim() != 4 or image.shape[-1] != 3:
        shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise ValueError(f"{name}: expected IMAGE frames [N, H, W, 3], got {shape}")
    frames = image[:length]
    if frames.shape[1:3] != (height, width):
        frames = resize_images(frames, width, height, "bilinear", "center")
    return frames


def owned_slice(region: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """A slice of ``source`` as its own tensor, so a small crop does not keep a large parent batch alive."""
    return source if region.shape == source.shape else region.clone(memory_format=torch.contiguous_format)


class EmptyImage:
    """A batch of images filled with one colour."""

    FUNCTION = "generate"
    CATEGORY = "image"
    RETURN_TYPES = ("IMAGE",)
    DESCRIPTION = "Creates a batch of images filled with a solid colour."

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "width": _size_option(512, 1, "Width in pixels."),
                "height": _size_option(512, 1, "Height in pixels."),
                "batch_size": ("INT", {"default": 1, "min": 1, "max": MAX_BATCH, "tooltip": "How many images."}),
                "color": (
                    "INT",
                    {
                        "default": 0,
                        "min": 0,
                        "max": 0xFFFFFF,
                        "step": 1,
                        "display": "color",
                        "tooltip": "Fill colour as 0xRRGGBB.",
                    },
                ),
            }
        }

    def generate(self, width: int, height: int, batch_size: int = 1, color: int = 0) -> tuple[torch.Tensor]:
        rgb = torch.tensor([(color >> 16) & 0xFF, (color >> 8) & 0xFF, color & 0xFF], dtype=torch.float32) / 255.0
        image = torch.empty((batch_size, height, width, 3), dtype=torch.float32)
        image.copy_(rgb.expand_as(image))
        return (image,)


class ImageInvert:
    """``1 - image``: a single allocation, no intermediate copies (it runs in long chains)."""

    FUNCTION = "invert"
    CATEGORY = "image"
    RETURN_TYPES = ("IMAGE",)
    DESCRIPTION = "Inverts the colours of the images."

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"image": ("IMAGE", {"tooltip": "The images to invert."})}}

    def invert(self, image: torch.Tensor) -> tuple[torch.Tensor]:
        return (torch.rsub(image, 1.0),)


class ImageScale:
    """Resize to a given size, optionally centre-cropping to the target aspect ratio first."""

    FUNCTION = "upscale"
    CATEGORY = "image/upscaling"
    RETURN_TYPES = ("IMAGE",)
    DESCRIPTION = "Resizes the images to a width and height; 0 on one side keeps the aspect ratio."

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "image": ("IMAGE", {"tooltip": "The images to resize."}),
                "upscale_method": (list(UPSCALE_METHODS), {"tooltip": "The resampling filter."}),
                "width": _size_option(512, 0, "Target width; 0 derives it from height and the aspect ratio."),
                "height": _size_option(512, 0, "Target height; 0 derives it from width and the aspect ratio."),
                "crop": (list(CROP_METHODS), {"tooltip": "'center' crops to the target aspect ratio before resizing."}),
            }
        }

    def upscale(
        self, image: torch.Tensor, upscale_method: str, width: int, height: int, crop: str
    ) -> tuple[torch.Tensor]:
        return (resize_images(image, width, height, upscale_method, crop),)


class ImageScaleBy:
    """Resize both sides by one factor."""

    FUNCTION = "upscale"
    CATEGORY = "image/upscaling"
    RETURN_TYPES = ("IMAGE",)
    DESCRIPTION = "Resizes the images by a factor."

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "image": ("IMAGE", {"tooltip": "The images to resize."}),
                "upscale_method": (list(UPSCALE_METHODS), {"tooltip": "The resampling filter."}),
                "scale_by": (
                    "FLOAT",
                    {"default": 1.0, "min": 0.01, "max": 8.0, "step": 0.01, "tooltip": "Factor applied to both sides."},
                ),
            }
        }

    def upscale(self, image: torch.Tensor, upscale_method: str, scale_by: float) -> tuple[torch.Tensor]:
        width = max(1, round(image.shape[2] * scale_by))
        height = max(1, round(image.shape[1] * scale_by))
        return (resize_images(image, width, height, upscale_method),)


class ImageCrop:
    """A rectangle of every image in the batch; the rectangle is clamped to the image."""

    FUNCTION = "crop"
    CATEGORY = "image/transform"
    RETURN_TYPES = ("IMAGE",)
    DESCRIPTION = "Crops a rectangle from the images; a rectangle reaching outside is cut to what exists."

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "image": ("IMAGE", {"tooltip": "The images to crop."}),
                "width": _size_option(512, 1, "Width of the crop."),
                "height": _size_option(512, 1, "Height of the crop."),
                "x": _size_option(0, 0, "Left edge of the crop."),
                "y": _size_option(0, 0, "Top edge of the crop."),
            }
        }

    def crop(self, image: torch.Tensor, width: int, height: int, x: int, y: int) -> tuple[torch.Tensor]:
        x = min(x, image.shape[2] - 1)
        y = min(y, image.shape[1] - 1)
        return (owned_slice(image[:, y : y + height, x : x + width], image),)


class ImageBatch:
    """Two batches joined; the second is resized (bilinear, centre crop) to the first's size if needed."""

    FUNCTION = "batch"
    CATEGORY = "image"
    RETURN_TYPES = ("IMAGE",)
    DESCRIPTION = "Joins two image batches into one; image2 is resized to image1's size if they differ."

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "image1": ("IMAGE", {"tooltip": "The first images; their size is kept."}),
                "image2": ("IMAGE", {"tooltip": "Images appended after image1."}),
            }
        }

    def batch(self, image1: torch.Tensor, image2: torch.Tensor) -> tuple[torch.Tensor]:
        if image1.shape[-1] != image2.shape[-1]:
            raise ValueError(
                f"image1 has {image1.shape[-1]} channels and image2 has {image2.shape[-1]}: they cannot be batched"
            )
        if image1.shape[1:3] != image2.shape[1:3]:
            image2 = resize_images(image2, image1.shape[2], image1.shape[1], "bilinear", "center")
        return (torch.cat((image1, image2.to(image1.dtype)), dim=0),)


class RepeatImageBatch:
    """The batch repeated ``amount`` times."""

    FUNCTION = "repeat"
    CATEGORY = "image/batch"
    RETURN_TYPES = ("IMAGE",)
    DESCRIPTION = "Repeats the whole batch a number of times."

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "image": ("IMAGE", {"tooltip": "The images to repeat."}),
                "amount": ("INT", {"default": 1, "min": 1, "max": MAX_BATCH, "tooltip": "How many copies."}),
            }
        }

    def repeat(self, image: torch.Tensor, amount: int) -> tuple[torch.Tensor]:
        return (image.repeat((amount, 1, 1, 1)),)


class ImageFromBatch:
    """A run of consecutive images from a batch; index and length are clamped to the batch."""

    FUNCTION = "frombatch"
    CATEGORY = "image/batch"
    RETURN_TYPES = ("IMAGE",)
    DESCRIPTION = "Takes length images starting at batch_index."

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "image": ("IMAGE", {"tooltip": "The batch to take images from."}),
                "batch_index": (
                    "INT",
                    {"default": 0, "min": 0, "max": MAX_BATCH - 1, "tooltip": "Index of the first image."},
                ),
                "length": ("INT", {"default": 1, "min": 1, "max": MAX_BATCH, "tooltip": "How many images to take."}),
            }
        }

    def frombatch(self, image: torch.Tensor, batch_index: int, length: int) -> tuple[torch.Tensor]:
        batch_index = min(batch_index, image.shape[0] - 1)
        length = min(length, image.shape[0] - batch_index)
        return (owned_slice(image[batch_index : batch_index + length], image),)


def _soft_light(base: torch.Tensor, top: torch.Tensor) -> torch.Tensor:
    """The W3C compositing soft-light formula."""
    d = torch.where(base <= 0.25, ((16 * base - 12) * base + 4) * base, torch.sqrt(base))
    darken = base - (1 - 2 * top) * base * (1 - base)
    lighten = base + (2 * top - 1) * (d - base)
    return torch.where(top <= 0.5, darken, lighten)


def _blend(mode: str, base: torch.Tensor, top: torch.Tensor) -> torch.Tensor:
    if mode == "normal":
        return top
    if mode == "multiply":
        return base * top
    if mode == "screen":
        return 1 - (1 - base) * (1 - top)
    if mode == "overlay":
        return torch.where(base <= 0.5, 2 * base * top, 1 - 2 * (1 - base) * (1 - top))
    if mode == "soft_light":
        return _soft_light(base, top)
    if mode == "difference":
        return base - top  # ComfyUI's definition (signed; the final result is clamped), kept for identical renders
    raise ValueError(f"blend_mode {mode!r} is not one of {', '.join(BLEND_MODES)}")


class ImageBlend:
    """image1 mixed with image1 blended with image2, by ``blend_factor``."""

    FUNCTION = "blend_images"
    CATEGORY = "image/postprocessing"
    RETURN_TYPES = ("IMAGE",)
    DESCRIPTION = "Blends image2 onto image1 with a blend mode; blend_factor 0 keeps image1."

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "image1": ("IMAGE", {"tooltip": "The base images."}),
                "image2": ("IMAGE", {"tooltip": "The images blended on top; resized to image1 if sizes differ."}),
                "blend_factor": (
                    "FLOAT",
                    {"default": 0.5, "min": 0.0, "max": 1.0, "step": 0.01, "tooltip": "0 keeps image1, 1 the blend."},
                ),
                "blend_mode": (list(BLEND_MODES), {"tooltip": "How image2 is combined with image1."}),
            }
        }

    def blend_images(
        self, image1: torch.Tensor, image2: torch.Tensor, blend_factor: float, blend_mode: str
    ) -> tuple[torch.Tensor]:
        if image1.shape[1:3] != image2.shape[1:3]:
            image2 = resize_images(image2, image1.shape[2], image1.shape[1], "bicubic", "center")
        image2 = image2.to(image1.device, image1.dtype)
        blended = _blend(blend_mode, image1, image2)
        result = image1 * (1 - blend_factor) + blended * blend_factor
        return (result.clamp_(0.0, 1.0),)


NODE_CLASS_MAPPINGS = {
    "EmptyImage": EmptyImage,
    "ImageInvert": ImageInvert,
    "ImageScale": ImageScale,
    "ImageScaleBy": ImageScaleBy,
    "ImageCrop": ImageCrop,
    "ImageBatch": ImageBatch,
    "RepeatImageBatch": RepeatImageBatch,
    "ImageFromBatch": ImageFromBatch,
    "ImageBlend": ImageBlend,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "EmptyImage": "Empty Image",
    "ImageInvert": "Invert Image",
    "ImageScale": "Upscale Image",
    "ImageScaleBy": "Upscale Image By",
    "ImageCrop": "Image Crop",
    "ImageBatch": "Batch Images",
    "RepeatImageBatch": "Repeat Image Batch",
    "ImageFromBatch": "Image From Batch",
    "ImageBlend": "Image Blend",
}
