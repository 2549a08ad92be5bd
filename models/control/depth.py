"""Depth maps of video frames from a transformers depth estimation model (Depth Anything V1/V2, DPT, ...) kept as
its release is, a folder in ``depth_estimation/`` holding ``config.json``, safetensors weights and
``preprocessor_config.json``.

The model goes into the memory manager like any other. Frames are prepared with torch, not the image processor's
PIL path, reproducing its settings (``DepthPreprocessing``: resize keeping the aspect ratio to multiples of the patch
size, mean/std normalisation), and run in batches. What the model predicts is resized back to the frame size and
normalised to 0..1 over the whole clip, not per frame: a per-frame stretch would make a video's depth flicker as
near or far things enter and leave the picture.

Depth Anything and DPT predict relative inverse depth (disparity: near is large); metric models (ZoeDepth,
Depth Pro, Depth Anything's metric releases) predict distance (near is small). ``DepthModel.inverse`` says which.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from models.errors import CorruptModelFileError, ModelLoadError
from models.folders import DEPTH_KEY, FOLDER_MODEL_MARKERS
from models.memory import ModelManager, file_key
from models.model_handle import ModelHandle

__all__ = [
    "DEPTH_FOLDER",
    "DepthModel",
    "DepthPreprocessing",
    "NotADepthModelError",
    "estimate_depth",
    "load_depth_model",
    "normalise_per_clip",
    "read_preprocessing",
]

DEPTH_FOLDER = DEPTH_KEY
CONFIG_FILE = FOLDER_MODEL_MARKERS[DEPTH_KEY]
PROCESSOR_FILE = "preprocessor_config.json"
KEY_KIND = "depth_model"
DEFAULT_BATCH = 4
METRIC_MODEL_TYPES = frozenset({"zoedepth", "depth_pro"})
"""Model types whose ``predicted_depth`` is a distance (near is small) whatever their config says."""
TORCH_RESAMPLE = {0: "nearest", 2: "bilinear", 3: "bicubic"}
"""PIL resampling codes (the processors' ``resample``) as ``torch.nn.functional.interpolate`` modes."""
FLAT_RANGE = 1e-12
FOLDER_LAYOUT = "a transformers model folder (config.json, model.safetensors, preprocessor_config.json)"


class NotADepthModelError(ModelLoadError):
    """The folder is no transformers depth estimation model (another kind of model, or no model folder at all)."""


@dataclass(frozen=True)
class DepthPreprocessing:
    """The image processor's resize and normalisation, done with torch on frames already in 0..1.

    Attributes:
        height / width: the size the processor resizes towards.
        keep_aspect_ratio: scale both sides by the one of the two factors that is closer to 1.
        multiple: sides are rounded to multiples of this (the backbone's patch size).
        resample: the ``interpolate`` mode (bicubic for Depth Anything).
        mean / std: per-channel normalisation.
    """

    height: int
    width: int
    keep_aspect_ratio: bool
    multiple: int
    resample: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def input_size(self, height: int, width: int) -> tuple[int, int]:
        """The size frames of ``height`` x ``width`` are resized to (at least one multiple per side)."""
        scale_height, scale_width = self.height / height, self.width / width
        if self.keep_aspect_ratio:
            closer = scale_width if abs(1 - scale_width) < abs(1 - scale_height) else scale_height
            scale_height = scale_width = closer
        return self._to_multiple(scale_height * height), self._to_multiple(scale_width * width)

    def _to_multiple(self, side: float) -> int:
        return max(self.multiple, round(side / self.multiple) * self.multiple)

    def _resized(self, pixels: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """``pixels`` resized as PIL resizes an 8-bit picture: widths, then heights, each pass antialiased and
        clipped to 0..1 (PIL's filters are torch's with ``antialias``; the clip between the passes matters where
        sharp detail overshoots)."""
        if self.resample == "nearest":
            return torch.nn.functional.interpolate(pixels, size=size, mode="nearest")
        for pass_size in ((pixels.shape[-2], size[1]), size):
            pixels = torch.nn.functional.interpolate(
                pixels, size=pass_size, mode=self.resample, align_corners=False, antialias=True
            ).clamp(0.0, 1.0)
        return pixels

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        """``[B, H, W, 3]`` in 0..1 -> the model's ``pixel_values`` ``[B, 3, h, w]``, on the frames' device."""
        pixels = frames.permute(0, 3, 1, 2).float()
        resized = self._resized(pixels, self.input_size(pixels.shape[-2], pixels.shape[-1]))
        mean = torch.tensor(self.mean, device=resized.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=resized.device).view(1, 3, 1, 1)
        return (resized - mean) / std


@dataclass(frozen=True)
class DepthModel:
    """What ``DEPTH_MODEL`` carries: a depth estimation model in the memory manager and how to feed it.

    Attributes:
        name: the model folder's name.
        handle: the transformers model in the memory manager.
        preprocessing: its image processor's settings.
        inverse: True when it predicts inverse depth (near is large), False for distance (near is small).
        model_type: the config's ``model_type`` (``"depth_anything"``, ``"dpt"``, ...).
    """

    name: str
    handle: ModelHandle
    preprocessing: DepthPreprocessing
    inverse: bool
    model_type: str


def load_depth_model(manager: ModelManager, folder: Path) -> DepthModel:
    """The depth estimation model in ``folder`` as ``DEPTH_MODEL``: its config and image processor are checked now
    (a folder of another kind fails here, naming it), then the model is handed to the memory manager, which reloads
    it from the folder after it unloads it. float16 on CUDA, float32 elsewhere."""
    folder = Path(folder)
    config = _depth_config(folder)
    preprocessing = read_preprocessing(folder)
    weights = sorted(folder.glob("*.safetensors"))
    if not weights:
        raise CorruptModelFileError(folder, f"holds no .safetensors weights; a depth model is {FOLDER_LAYOUT}")
    dtype = torch.float16 if manager.compute_device.type == "cuda" else torch.float32

    def load() -> torch.nn.Module:
        return _load_network(folder, dtype)

    stamps = (f"{path.name}={path.stat().st_size}@{path.stat().st_mtime_ns}" for path in weights)
    size_hint = sum(path.stat().st_size for path in weights)
    handle = manager.load(file_key(KEY_KIND, folder, *stamps), load, size_hint=size_hint)
    return DepthModel(
        name=folder.name,
        handle=handle,
        preprocessing=preprocessing,
        inverse=_predicts_inverse_depth(config),
        model_type=config.model_type,
    )


def _depth_config(folder: Path) -> Any:
    """The folder's transformers config, refused unless it belongs to a depth estimation model."""
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_DEPTH_ESTIMATION_MAPPING

    if not (folder / CONFIG_FILE).is_file():
        raise NotADepthModelError(folder, f"has no {CONFIG_FILE}; a depth estimation model is {FOLDER_LAYOUT}")
    try:
        config = AutoConfig.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError, KeyError) as error:
        raise NotADepthModelError(
            folder, f"its {CONFIG_FILE} is no transformers model config this version knows ({error})"
        ) from None
    if type(config) not in MODEL_FOR_DEPTH_ESTIMATION_MAPPING:
        architectures = ", ".join(config.architectures or ()) or "no architecture named"
        raise NotADepthModelError(
            folder,
            f"holds a {config.model_type!r} model ({architectures}), not a depth estimation model "
            "(Depth Anything, DPT, ZoeDepth, ...)",
        )
    return config


def read_preprocessing(folder: Path) -> DepthPreprocessing:
    """The resize and normalisation of the folder's image processor; refused when it does something else too
    (padding) or resizes by rules other than a target height and width."""
    from transformers import AutoImageProcessor

    if not (folder / PROCESSOR_FILE).is_file():
        raise CorruptModelFileError(
            folder, f"has no {PROCESSOR_FILE} (the image settings the model was trained with); copy it from its release"
        )
    try:
        processor = AutoImageProcessor.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError, KeyError) as error:
        raise CorruptModelFileError(folder, f"its {PROCESSOR_FILE} cannot be read ({error})") from None
    kind = type(processor).__name__
    height, width = _side(processor, "height"), _side(processor, "width")
    resample = TORCH_RESAMPLE.get(int(getattr(processor, "resample", 3)))
    if getattr(processor, "do_pad", False) or height is None or width is None or resample is None:
        raise CorruptModelFileError(
            folder,
            f"its image processor ({kind}) pads, or resizes other than towards a height and width with nearest, "
            "bilinear or bicubic resampling; depth estimation reproduces only DPT-style processors",
        )
    normalise = getattr(processor, "do_normalize", True)
    return DepthPreprocessing(
        height=height,
        width=width,
        keep_aspect_ratio=bool(getattr(processor, "keep_aspect_ratio", False)),
        multiple=int(getattr(processor, "ensure_multiple_of", 1) or 1),
        resample=resample,
        mean=_channels(processor.image_mean) if normalise else (0.0, 0.0, 0.0),
        std=_channels(processor.image_std) if normalise else (1.0, 1.0, 1.0),
    )


def _side(processor: Any, name: str) -> int | None:
    """``size.height`` / ``size.width`` of a processor, whether ``size`` is a dict or a ``SizeDict``."""
    size = getattr(processor, "size", None)
    value = size.get(name) if isinstance(size, dict) else getattr(size, name, None)
    return int(value) if value else None


def _channels(values: float | list[float] | tuple[float, ...]) -> tuple[float, float, float]:
    """A processor's mean or std as three channel values (a single number applies to all three)."""
    if isinstance(values, int | float):
        return (float(values),) * 3
    first, second, third = (float(value) for value in values)
    return first, second, third


def _predicts_inverse_depth(config: Any) -> bool:
    return config.model_type not in METRIC_MODEL_TYPES and getattr(config, "depth_estimation_type", None) != "metric"


def _load_network(folder: Path, dtype: torch.dtype) -> torch.nn.Module:
    """The folder's model, frozen in eval mode; a folder whose weights do not load fails naming it."""
    from safetensors import SafetensorError
    from transformers import AutoModelForDepthEstimation

    try:
        model = AutoModelForDepthEstimation.from_pretrained(folder, local_files_only=True, dtype=dtype)
    except (OSError, ValueError, RuntimeError, SafetensorError) as error:
        raise CorruptModelFileError(folder, f"transformers could not load the model ({error})") from error
    return model.eval().requires_grad_(False)


def estimate_depth(
    manager: ModelManager,
    model: DepthModel,
    frames: torch.Tensor,
    batch_size: int = DEFAULT_BATCH,
    on_batch: Callable[[int], None] | None = None,
) -> torch.Tensor:
    """The model's prediction for ``frames`` (IMAGE ``[F, H, W, 3]``) as ``[F, H, W]`` float32 on the CPU,
    normalised to 0..1 over the whole clip (``normalise_per_clip``); inverse depth or distance as the model predicts
    (``model.inverse``). Frames go to the device ``batch_size`` at a time; ``on_batch`` gets the frames done after
    each batch (and may raise to stop)."""
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0:
        raise ValueError(f"frames must be [frames, height, width, 3] with frames, got {tuple(frames.shape)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    count, height, width = frames.shape[:3]
    predicted = torch.empty(count, height, width)
    with model.handle.use() as network, torch.inference_mode():
        dtype = next(network.parameters()).dtype
        for start in range(0, count, batch_size):
            batch = frames[start : start + batch_size].to(manager.compute_device)
            pixels = model.preprocessing(batch).to(dtype)
            output = network(pixel_values=pixels).predicted_depth.float()
            maps = output if output.ndim == 4 else output.unsqueeze(1)
            resized = torch.nn.functional.interpolate(maps, size=(height, width), mode="bilinear", align_corners=False)
            predicted[start : start + len(batch)] = resized[:, 0].cpu()
            if on_batch is not None:
                on_batch(start + len(batch))
    return normalise_per_clip(predicted)


def normalise_per_clip(maps: torch.Tensor) -> torch.Tensor:
    """``maps`` stretched so that the clip's least value is 0 and its greatest 1 (one scale for every frame, so
    depth does not flicker); a flat clip gives zeros."""
    low, high = maps.min(), maps.max()
    spread = high - low
    if spread <= FLAT_RANGE:
        return torch.zeros_like(maps)
    return (maps - low) / spread
