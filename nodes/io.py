"""Image file nodes (LoadImage, SaveImage, PreviewImage) and the numbered-file naming that every saver shares.

Files are named like ComfyUI's: ``{prefix}_{counter:05}_.{ext}``, the counter one past the highest already in the
folder. ``filename_prefix`` may name a subfolder (``renders/shot1``) but never a place outside the base folder.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps, ImageSequence, UnidentifiedImageError
from PIL.PngImagePlugin import PngInfo

from graph.context import current_context
from nodes.folders import FOLDERS_SERVICE, FolderBound, Folders
from nodes.media.provenance import workflow_texts

IMAGE_EXTENSIONS = frozenset({"png", "jpg", "jpeg", "webp", "gif", "bmp", "tif", "tiff", "avif"})
EMPTY_MASK_SIZE = 64


@dataclass(frozen=True)
class SaveTarget:
    """Where numbered files for one prefix go: the folder, its path below the base folder, the base name."""

    folder: Path
    subfolder: str
    filename: str
    counter: int

    def file_name(self, counter: int, extension: str) -> str:
        """``{filename}_{counter:05}_.{extension}``."""
        return f"{self.filename}_{counter:05}_.{extension}"


def resolve_save_path(filename_prefix: str, base_dir: str | os.PathLike[str]) -> SaveTarget:
    """Split ``filename_prefix`` into folder and base name below ``base_dir`` and find the next free counter.

    Creates the folder. Raises ``ValueError`` when the prefix is empty, has no file name part, or would
    leave ``base_dir`` (an absolute path, or ``..`` climbing above it).
    """
    if not filename_prefix or not filename_prefix.strip():
        raise ValueError("filename_prefix is empty: give a file name such as 'ComfyUI' or 'renders/shot1'")
    if os.path.isabs(filename_prefix) or os.path.splitdrive(filename_prefix)[0]:
        raise ValueError(
            f"filename_prefix {filename_prefix!r} is an absolute path: it must be relative to the output folder"
        )
    base = os.path.abspath(base_dir)
    full = os.path.normpath(os.path.join(base, filename_prefix))
    if os.path.commonpath([base, full]) != base:
        raise ValueError(
            f"filename_prefix {filename_prefix!r} points outside the output folder: '..' may not climb above it"
        )
    folder, filename = os.path.split(full)
    if full == base or filename_prefix.endswith(("/", os.sep)):
        raise ValueError(f"filename_prefix {filename_prefix!r} names a folder but no file name after it")
    os.makedirs(folder, exist_ok=True)
    subfolder = os.path.relpath(folder, base)
    subfolder = "" if subfolder == os.curdir else subfolder.replace(os.sep, "/")
    return SaveTarget(
        folder=Path(folder), subfolder=subfolder, filename=filename, counter=_next_counter(folder, filename)
    )


def _next_counter(folder: str, filename: str) -> int:
    """1 + the highest counter among ``{filename}_NNNNN...`` files in ``folder``."""
    pattern = re.compile(re.escape(filename) + r"_(\d+)(?:_|\.|$)")
    highest = 0
    with os.scandir(folder) as entries:
        for entry in entries:
            match = pattern.match(entry.name)
            if match:
                highest = max(highest, int(match.group(1)))
    return highest + 1


def claim_numbered_file(target: SaveTarget, counter: int, extension: str) -> tuple[Path, int]:
    """Create an empty file for ``counter`` (or the next free one) atomically; returns its path and counter.

    Exclusive creation means two saves running at once never write the same name.
    """
    while True:
        path = target.folder / target.file_name(counter, extension)
        try:
            with open(path, "xb"):
                return path, counter
        except FileExistsError:
            counter += 1


def temp_prefix(stem: str = "ComfyUI_temp") -> str:
    """A random file prefix for previews in the temp folder, so parallel previews never collide on names."""
    return f"{stem}_" + "".join(random.choice(string.ascii_lowercase) for _ in range(5))


def tensor_to_pil(image: torch.Tensor) -> Image.Image:
    """One ``[H, W, C]`` frame in 0..1 as an 8-bit Pillow image (rounded, clamped; C = 1, 3 or 4)."""
    array = torch.nan_to_num(image.detach().float(), nan=0.0).clamp(0.0, 1.0).mul(255.0).round().to(torch.uint8)
    pixels = np.ascontiguousarray(array.cpu().numpy())
    if pixels.shape[-1] == 1:
        pixels = pixels[..., 0]
    elif pixels.shape[-1] not in (3, 4):
        raise ValueError(f"images have {pixels.shape[-1]} channels; saving needs 1, 3 or 4")
    return Image.fromarray(pixels)


def png_metadata(prompt: Mapping[str, Any] | None, extra_pnginfo: Mapping[str, Any] | None) -> PngInfo:
    """tEXt chunks: ``prompt`` (the API prompt) and one per ``extra_pnginfo`` key (``workflow``), as JSON."""
    info = PngInfo()
    for key, text in workflow_texts(prompt, extra_pnginfo).items():
        info.add_text(key, text)
    return info


class SaveImage:
    """Writes each image of the batch as a numbered PNG in the output folder, with the workflow embedded."""

    FUNCTION = "save_images"
    CATEGORY = "image"
    RETURN_TYPES = ()
    OUTPUT_NODE = True
    DESCRIPTION = "Saves the images as PNG files in the output folder, with the prompt and workflow embedded."

    FOLDER_ATTRIBUTE = "output_dir"
    FOLDER_TYPE = "output"
    COMPRESS_LEVEL = 4

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "images": ("IMAGE", {"tooltip": "The images to save."}),
                "filename_prefix": (
                    "STRING",
                    {
                        "default": "ComfyUI",
                        "tooltip": "The start of the file names; may include a subfolder, e.g. 'renders/shot1'.",
                    },
                ),
            },
            "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"},
        }

    def save_images(
        self,
        images: torch.Tensor,
        filename_prefix: str = "ComfyUI",
        prompt: dict[str, Any] | None = None,
        extra_pnginfo: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        context = current_context()
        base_dir = getattr(context.service(FOLDERS_SERVICE), self.FOLDER_ATTRIBUTE)
        target = resolve_save_path(self.prefix(filename_prefix), base_dir)
        metadata = png_metadata(prompt, extra_pnginfo)
        counter = target.counter
        saved: list[dict[str, str]] = []
        for frame in images:
            context.check_interrupt()
            path, counter = claim_numbered_file(target, counter, "png")
            tensor_to_pil(frame).save(path, format="PNG", pnginfo=metadata, compress_level=self.COMPRESS_LEVEL)
            saved.append({"filename": path.name, "subfolder": target.subfolder, "type": self.FOLDER_TYPE})
            counter += 1
        return {"ui": {"images": saved}, "result": ()}

    def prefix(self, filename_prefix: str) -> str:
        """The prefix actually used for file names (PreviewImage makes its own)."""
        return filename_prefix


class PreviewImage(SaveImage):
    """Like SaveImage, but into the temp folder under a random prefix, with fast compression."""

    DESCRIPTION = "Shows the images in the editor; they are written to the temp folder, not kept as outputs."
    FOLDER_ATTRIBUTE = "temp_dir"
    FOLDER_TYPE = "temp"
    COMPRESS_LEVEL = 1

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {"images": ("IMAGE", {"tooltip": "The images to preview."})},
            "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"},
        }

    def prefix(self, filename_prefix: str) -> str:
        return temp_prefix()


def file_fingerprint(path: Path) -> str:
    """sha256 of a file's bytes, read in chunks (``IS_CHANGED`` of loaders: re-run when the file changes)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def pil_frame_to_tensors(frame: Image.Image) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One Pillow frame as IMAGE ``[H, W, 3]`` in 0..1 and its MASK ``[H, W]`` (1 = transparent), if it has alpha."""
    if frame.mode in ("I", "I;16", "I;16B", "I;16L"):
        pixels = np.asarray(frame, dtype=np.float32) / 65535.0
        rgb = np.repeat(np.clip(pixels, 0.0, 1.0)[..., None], 3, axis=-1)
        return torch.from_numpy(np.ascontiguousarray(rgb)), None
    if frame.mode == "P" and "transparency" in frame.info:
        frame = frame.convert("RGBA")
    has_alpha = frame.mode in ("RGBA", "LA", "PA")
    rgba = np.asarray(frame.convert("RGBA" if has_alpha else "RGB"), dtype=np.float32) / 255.0
    image = torch.from_numpy(np.ascontiguousarray(rgba[..., :3]))
    mask = torch.from_numpy(1.0 - rgba[..., 3]) if has_alpha else None
    return image, mask


def read_image_file(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """All frames of an image file as IMAGE ``[F, H, W, 3]`` and MASK ``[F, H, W]`` (EXIF rotation applied).

    Frames of an animation whose size differs from the first are skipped, as ComfyUI does. Without alpha the
    mask is one empty 64x64 mask. Raises ``ValueError`` naming the file for anything Pillow cannot read.
    """
    try:
        with Image.open(path) as opened:
            images: list[torch.Tensor] = []
            masks: list[torch.Tensor] = []
            for raw in ImageSequence.Iterator(opened):
                image, mask = pil_frame_to_tensors(ImageOps.exif_transpose(raw) or raw)
                if images and image.shape != images[0].shape:
                    continue
                images.append(image)
                masks.append(mask if mask is not None else torch.zeros(image.shape[:2]))
            any_alpha = any(mask.any() for mask in masks)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ValueError(f"{path.name}: not an image Pillow can read ({exc})") from None
    if not images:
        raise ValueError(f"{path.name}: the image has no frames")
    batch = torch.stack(images) if len(images) > 1 else images[0].unsqueeze(0)
    if not any_alpha:
        return batch, torch.zeros((1, EMPTY_MASK_SIZE, EMPTY_MASK_SIZE), dtype=torch.float32)
    return batch, torch.stack(masks)


class LoadImage(FolderBound):
    """Loads an image from the input folder; the mask comes from its alpha channel (1 where transparent)."""

    FUNCTION = "load_image"
    CATEGORY = "image"
    RETURN_TYPES = ("IMAGE", "MASK")
    DESCRIPTION = "Loads an image (all frames of an animated one) and a mask from its transparency."

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "image": (
                    sorted(cls.input_choices(IMAGE_EXTENSIONS)),
                    {"image_upload": True, "tooltip": "A file in the input folder; upload to add one."},
                )
            }
        }

    @classmethod
    def IS_CHANGED(cls, image: str) -> str:
        """The file's content hash, so editing the file re-runs the node."""
        if cls.FOLDERS is None:
            return image
        try:
            return file_fingerprint(cls.FOLDERS.resolve_annotated(image, "image"))
        except (OSError, ValueError):
            return image

    def load_image(self, image: str) -> tuple[torch.Tensor, torch.Tensor]:
        folders: Folders = current_context().service(FOLDERS_SERVICE)
        return read_image_file(folders.resolve_annotated(image, "image"))


NODE_CLASS_MAPPINGS = {"LoadImage": LoadImage, "SaveImage": SaveImage, "PreviewImage": PreviewImage}

NODE_DISPLAY_NAME_MAPPINGS = {"LoadImage": "Load Image", "SaveImage": "Save Image", "PreviewImage": "Preview Image"}
