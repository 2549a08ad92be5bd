"""Importing spandrel where torchvision is missing or broken.

spandrel 0.4.2 declares torchvision, yet only two of its architectures use it, both at import time: LaMa (an
inpainter: ``InterpolationMode`` and ``rotate``) and RestoreFormer (a face restorer: ``normalize``). CPU-only torch
has no torchvision wheel to go with it (the only one pip finds is a CUDA build that pulls a different torch), so
``scripts/bootstrap.sh`` installs spandrel with ``--no-deps`` (``requirements-no-deps.txt``) and its real needs from
``requirements.txt``; here, when torchvision cannot be imported, spandrel is imported with a stand-in
``torchvision.transforms.functional`` that offers just those three names, and the stand-in is taken out of
``sys.modules`` again at once, so nothing else ever sees a torchvision. ``normalize`` is exact (RestoreFormer
runs); ``rotate`` refuses (LaMa is an inpainter, which ``UpscaleModelLoader`` does not take anyway). Where
torchvision imports, spandrel uses it unchanged.
"""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from enum import Enum
from importlib.machinery import ModuleSpec
from types import ModuleType

import torch

from models.errors import ModelError

__all__ = ["SpandrelMissingError", "import_spandrel"]

logger = logging.getLogger(__name__)

STAND_IN_MODULES = ("torchvision", "torchvision.transforms", "torchvision.transforms.functional")
SPANDREL_NEEDS = ("spandrel", "einops", "safetensors", "numpy", "typing_extensions")
INSTALL_HINT = "run scripts/bootstrap.sh, or: pip install --no-deps -r requirements-no-deps.txt"


class SpandrelMissingError(ModelError):
    """spandrel, which loads upscale models, is not installed."""


def import_spandrel() -> ModuleType:
    """The ``spandrel`` module, imported with the torchvision stand-in when torchvision does not import."""
    if "spandrel" in sys.modules:
        return sys.modules["spandrel"]
    try:
        if _torchvision_imports():
            return importlib.import_module("spandrel")
        with _torchvision_stand_in():
            return importlib.import_module("spandrel")
    except ModuleNotFoundError as error:
        if error.name not in SPANDREL_NEEDS:
            raise
        raise SpandrelMissingError(
            f"upscale models need spandrel, and {error.name} is not installed: {INSTALL_HINT}"
        ) from error


def _torchvision_imports() -> bool:
    try:
        importlib.import_module("torchvision.transforms.functional")
    except Exception as error:  # missing, or a build for another torch that fails while importing
        logger.debug("torchvision does not import (%s): spandrel gets a stand-in", error)
        return False
    return True


@contextmanager
def _torchvision_stand_in() -> Iterator[None]:
    """``sys.modules`` holds the stand-in modules inside the block; what was there before is put back after."""
    saved = {name: sys.modules.get(name) for name in STAND_IN_MODULES}
    sys.modules.update(_stand_in_modules())
    try:
        yield
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def _stand_in_modules() -> dict[str, ModuleType]:
    """Modules with proper specs, so ``importlib.util.find_spec`` works on them should anything ask meanwhile (and
    package checks still find no torchvision distribution)."""
    modules = {}
    for name in STAND_IN_MODULES:
        module = ModuleType(name, "Stand-in for the torchvision names spandrel imports (models.upscale).")
        module.__spec__ = ModuleSpec(name, loader=None, is_package=name != STAND_IN_MODULES[-1])
        modules[name] = module
    functional = modules[STAND_IN_MODULES[-1]]
    functional.InterpolationMode = InterpolationMode
    functional.normalize = normalize
    functional.rotate = rotate
    modules["torchvision"].transforms = modules["torchvision.transforms"]
    modules["torchvision.transforms"].functional = functional
    return modules


class InterpolationMode(Enum):
    """The interpolation names of ``torchvision.transforms.InterpolationMode``."""

    NEAREST = "nearest"
    NEAREST_EXACT = "nearest-exact"
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"
    BOX = "box"
    HAMMING = "hamming"
    LANCZOS = "lanczos"


def normalize(tensor: torch.Tensor, mean: Sequence[float], std: Sequence[float], inplace: bool = False) -> torch.Tensor:
    """``torchvision.transforms.functional.normalize`` on a tensor ``[..., C, H, W]``: ``(x - mean) / std`` per
    channel."""
    mean_t = torch.as_tensor(mean, dtype=tensor.dtype, device=tensor.device).view(-1, 1, 1)
    std_t = torch.as_tensor(std, dtype=tensor.dtype, device=tensor.device).view(-1, 1, 1)
    if (std_t == 0).any():
        raise ValueError(f"normalize: std {list(std)} has a zero, which would divide by zero")
    if inplace:
        return tensor.sub_(mean_t).div_(std_t)
    return (tensor - mean_t) / std_t


def rotate(*_args: object, **_kwargs: object) -> torch.Tensor:
    """Refuses: only spandrel's LaMa inpainter rotates, and that needs the real torchvision."""
    raise RuntimeError("this model (spandrel's LaMa inpainter) needs torchvision, which is not installed here")
