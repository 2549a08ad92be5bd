"""Upscale model files (``upscale_models``) as the ``UPSCALE_MODEL`` socket value, through spandrel.

spandrel detects the architecture (ESRGAN old and new layouts, Real-ESRGAN Compact, SPAN, SwinIR, HAT, DAT, ...)
and its settings from a state dict. The state dict is read here, safely: safetensors memory-mapped, pickles
(``.pth`` releases) with ``torch.load(weights_only=True)`` (``models.formats.read_pickle``) and then unwrapped the
way spandrel unwraps them (``params_ema``, ``params``, ``module.`` prefixes: ``spandrel.canonicalize_state_dict``);
spandrel's own file reading (its restricted unpickler, TorchScript for ``.pt``) is never used. The network goes into
the memory manager, which moves, offloads and unloads it like any other model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from models.errors import CorruptModelFileError, ModelLoadError
from models.formats import detect_weight_format, read_pickle
from models.loading import load_state_dict
from models.memory import ModelManager, file_key
from models.model_handle import ModelHandle, module_nbytes
from models.upscale.spandrel_import import import_spandrel

__all__ = [
    "SizeRule",
    "UpscaleModel",
    "UpscaleNetwork",
    "WrongUpscaleFileError",
    "build_upscale_network",
    "load_upscale_model",
    "read_upscale_state_dict",
]

TILING_ADVICE = ("supported", "discouraged", "internal")
"""spandrel's ``ModelTiling`` in words: tile freely; tile only when memory demands it; never tile (the model needs
the whole picture, or tiles inside itself)."""


class WrongUpscaleFileError(ModelLoadError):
    """The file is not a single-image model spandrel knows (another kind of model, or an unknown architecture)."""


@dataclass(frozen=True)
class SizeRule:
    """Input sizes the network takes (spandrel's ``SizeRequirements``): sides at least ``minimum`` and multiples of
    ``multiple_of``, and square when ``square``. Other sizes are padded (reflecting the border) and cropped back."""

    minimum: int = 0
    multiple_of: int = 1
    square: bool = False

    def padded(self, height: int, width: int) -> tuple[int, int]:
        """The size ``height`` x ``width`` is padded to."""
        sides = [-(-max(side, self.minimum) // self.multiple_of) * self.multiple_of for side in (height, width)]
        if self.square:
            sides = [max(sides)] * 2
        return sides[0], sides[1]


@dataclass(frozen=True)
class UpscaleModel:
    """What ``UPSCALE_MODEL`` carries: a spandrel network in the memory manager and what it needs.

    Attributes:
        name: the file's name.
        handle: the network (an ``UpscaleNetwork``) in the memory manager.
        architecture: spandrel's name for it (``"ESRGAN"``, ``"SPAN"``, ``"RealESRGAN Compact"``, ...).
        purpose: ``"SR"``, ``"FaceSR"`` or ``"Restoration"`` (scale 1).
        scale: output sides are this many times the input's.
        input_channels / output_channels: 3 for RGB, 1 for grayscale models.
        size: the input sizes it takes.
        tile_multiple: tiles start at and span multiples of this: the size rule's ``multiple_of``, or the attention
            window of window-attention models (SwinIR, HAT), so tiles see the same windows as the whole picture.
        tiling: one of ``TILING_ADVICE``.
        feature_width: the widest layer's channel count (for estimating working memory).
        compute_dtype: the dtype it runs in.
        tags: spandrel's size tags (``"64nf"``, ``"23nb"``).
    """

    name: str
    handle: ModelHandle
    architecture: str
    purpose: str
    scale: int
    input_channels: int
    output_channels: int
    size: SizeRule
    tile_multiple: int
    tiling: str
    feature_width: int
    compute_dtype: torch.dtype
    tags: tuple[str, ...] = ()

    def describe(self) -> str:
        """``"4x ESRGAN (64nf, 23nb)"``."""
        tags = f" ({', '.join(self.tags)})" if self.tags else ""
        return f"{self.scale}x {self.architecture}{tags}"


class UpscaleNetwork(torch.nn.Module):
    """A spandrel model as one module: ``forward`` takes ``[N, C, H, W]`` in 0..1 in the module's dtype, pads it to
    the size rule, runs the network (with the architecture's own call, e.g. the first of several outputs), clamps
    to 0..1 and crops the padding off the ``[N, C, H*scale, W*scale]`` result."""

    def __init__(self, descriptor: Any) -> None:
        super().__init__()
        self.network = descriptor.model
        self._descriptor = descriptor

    @property
    def descriptor(self) -> Any:
        """spandrel's ``ImageModelDescriptor`` of the network (architecture, scale, size requirements, tiling)."""
        return self._descriptor

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self._descriptor(images)


def read_upscale_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of an upscale model file, unwrapped as spandrel expects them; nothing in the file runs."""
    path = Path(path)
    fmt = detect_weight_format(path)
    if fmt == "safetensors":
        loaded: object = load_state_dict(path)
    elif fmt == "pickle":
        loaded = read_pickle(path, "cpu")
    else:
        raise WrongUpscaleFileError(path, f"a {fmt} file; upscale models load from .safetensors or .pth files")
    if not isinstance(loaded, Mapping):
        raise CorruptModelFileError(path, f"holds a {type(loaded).__name__}, not a state dict")
    state = import_spandrel().canonicalize_state_dict(dict(loaded))
    tensors = {key: value for key, value in state.items() if isinstance(key, str) and isinstance(value, torch.Tensor)}
    if not tensors:
        raise CorruptModelFileError(path, "holds no tensors")
    return tensors


def build_upscale_network(path: Path, state: dict[str, torch.Tensor], device: torch.device) -> UpscaleNetwork:
    """The spandrel network of ``state`` (read from ``path``), in the dtype it runs in on ``device``, frozen."""
    spandrel = import_spandrel()
    try:
        descriptor = spandrel.ModelLoader().load_from_state_dict(state)
    except spandrel.UnsupportedModelError:
        sample = ", ".join(list(state)[:3])
        raise WrongUpscaleFileError(
            path,
            "spandrel finds no upscale architecture it knows (ESRGAN, Real-ESRGAN Compact, SPAN, SwinIR, HAT, DAT, "
            f"...) in it, so it is no upscale model (its first tensors: {sample})",
        ) from None
    except (KeyError, RuntimeError, ValueError, IndexError, AssertionError) as error:
        raise CorruptModelFileError(path, f"spandrel could not build the network: {error}") from error
    if not isinstance(descriptor, spandrel.ImageModelDescriptor):
        raise WrongUpscaleFileError(
            path,
            f"a {descriptor.architecture.name} {descriptor.purpose.lower()} model, which takes a mask besides the "
            "image; upscale nodes take single-image models",
        )
    descriptor.model.to(dtype=_dtype_for(descriptor, device))
    network = UpscaleNetwork(descriptor)
    return network.eval().requires_grad_(False)


def _dtype_for(descriptor: Any, device: torch.device) -> torch.dtype:
    """float32 on a CPU; on CUDA bfloat16 or float16 where the architecture supports it (spandrel says which)."""
    if device.type != "cuda":
        return torch.float32
    if descriptor.supports_bfloat16 and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16 if descriptor.supports_half else torch.float32


def load_upscale_model(manager: ModelManager, path: Path) -> UpscaleModel:
    """An upscale model file as ``UPSCALE_MODEL``: read and detected now (a wrong file fails here, naming it), then
    handed to the memory manager, which reloads it from the file after it unloads it."""
    path = Path(path)
    device = manager.compute_device
    network = build_upscale_network(path, read_upscale_state_dict(path), device)
    built: list[UpscaleNetwork] = [network]  # the first load takes the network built here instead of reading twice

    def load() -> torch.nn.Module:
        return built.pop() if built else build_upscale_network(path, read_upscale_state_dict(path), device)

    try:
        handle = manager.load(file_key("upscale_model", path), load, size_hint=module_nbytes(network))
    finally:
        built.clear()  # already loaded under this key: the manager must not keep a second copy alive in the loader
    return _describe(path, handle, network)


def _describe(path: Path, handle: ModelHandle, network: UpscaleNetwork) -> UpscaleModel:
    descriptor = network.descriptor
    rule = descriptor.size_requirements
    return UpscaleModel(
        name=path.name,
        handle=handle,
        architecture=descriptor.architecture.name,
        purpose=descriptor.purpose,
        scale=int(descriptor.scale),
        input_channels=int(descriptor.input_channels),
        output_channels=int(descriptor.output_channels),
        size=SizeRule(int(rule.minimum), int(rule.multiple_of), bool(rule.square)),
        tile_multiple=math.lcm(int(rule.multiple_of), _window_size(network.network)),
        tiling=descriptor.tiling.name.lower(),
        feature_width=_feature_width(network),
        compute_dtype=next(network.parameters()).dtype,
        tags=tuple(descriptor.tags),
    )


def _window_size(module: torch.nn.Module) -> int:
    """The attention window side of a window-attention network (its ``window_size``), else 1."""
    window = getattr(module, "window_size", 1)
    if isinstance(window, tuple | list) and window:
        window = max(window)
    return window if isinstance(window, int) and window > 0 else 1


def _feature_width(module: torch.nn.Module) -> int:
    """The most channels any convolution or linear layer makes."""
    widths: list[int] = []
    for layer in module.modules():
        if isinstance(layer, torch.nn.Conv2d):
            widths.append(layer.out_channels)
        elif isinstance(layer, torch.nn.Linear):
            widths.append(layer.out_features)
    return max(widths, default=64)
