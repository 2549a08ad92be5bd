"""ControlNet files (``controlnet``) as the ``CONTROL_NET`` socket value: detected from their shapes (no weights
read), then loaded into the memory manager as diffusers' ``ControlNetModel`` (or ``SparseControlNetModel`` for
AnimateDiff SparseCtrl files), which the manager moves, offloads and unloads like any other model (and reloads from
the file).

Files whose name ends in ``_shuffle`` (or ``_shuffle_fp16``), as ControlNet 1.1's shuffle model, average their
outputs over the picture (``global_pool_conditions``): the weights do not say so, so the name does, as in ComfyUI.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import torch

from models.checkpoint_files import read_shapes
from models.controlnet.checkpoint import (
    ControlNetSpec,
    NotAControlNetError,
    controlnet_from_state_dict,
    detect_controlnet,
)
from models.controlnet.sparsectrl import SparseCtrlSpec, detect_sparsectrl, is_sparsectrl, sparsectrl_from_state_dict
from models.errors import CorruptModelFileError, StateDictError
from models.loading import load_state_dict
from models.memory import ModelManager, file_key
from models.model_handle import ModelHandle
from models.model_loaders import WrongModelKindError, compute_dtype_for

__all__ = ["CONTROLNET_KIND", "ControlNet", "load_controlnet", "pools_globally"]

T = TypeVar("T")

CONTROLNET_KIND = "controlnet"
"""The memory manager's key kind for ControlNets."""
_GLOBAL_POOLING_SUFFIXES = ("_shuffle", "_shuffle_fp16")


@dataclass(frozen=True)
class ControlNet:
    """What ``CONTROL_NET`` carries: a ControlNet in the memory manager and what it is.

    Attributes:
        name: the file's name.
        handle: the ``ControlNetModel`` in the memory manager.
        spec: its config (widths and text width of the UNet it drives, hint channels) and the file's layout.
        compute_dtype: the dtype it runs in.
    """

    name: str
    handle: ModelHandle
    spec: ControlNetSpec | SparseCtrlSpec
    compute_dtype: torch.dtype

    @property
    def sparse(self) -> bool:
        """Whether it is an AnimateDiff SparseCtrl (conditions a few frames of a video; see ``SparseCtrlSpec``)."""
        return isinstance(self.spec, SparseCtrlSpec)

    def describe(self) -> str:
        """E.g. ``"control_v11p_sd15_openpose_fp16.safetensors: Stable Diffusion 1.5 ControlNet (LDM layout), ..."``."""
        return f"{self.name}: {self.spec.describe()}"


def pools_globally(file_name: str) -> bool:
    """Whether the ControlNet file ``file_name`` averages its outputs over space (ControlNet 1.1's shuffle)."""
    return Path(file_name).stem.endswith(_GLOBAL_POOLING_SUFFIXES)


def load_controlnet(manager: ModelManager, path: Path) -> ControlNet:
    """A ControlNet file as ``CONTROL_NET``: detected now (``WrongModelKindError`` naming the file for another model,
    ``CorruptModelFileError`` for a damaged ControlNet), loaded into ``manager`` in the compute dtype."""
    path = Path(path)
    shapes = read_shapes(path)
    spec: ControlNetSpec | SparseCtrlSpec
    if is_sparsectrl(shapes.tensors):
        spec = _named(path, lambda: detect_sparsectrl(shapes.tensors))
    else:
        spec = _named(path, lambda: detect_controlnet(shapes.tensors))
        if pools_globally(path.name):
            spec = spec.with_global_pooling()
    compute = compute_dtype_for(manager.compute_device)

    def load() -> torch.nn.Module:
        state = load_state_dict(path)
        if isinstance(spec, SparseCtrlSpec):
            module = _named(path, lambda: sparsectrl_from_state_dict(state, compute, spec))
        else:
            module = _named(path, lambda: controlnet_from_state_dict(state, compute, spec))
        return module.requires_grad_(False)

    size = _size_at(shapes.tensors, spec.prefix, compute)
    handle = manager.load(file_key(CONTROLNET_KIND, path), load, size_hint=size)
    return ControlNet(path.name, handle, spec, compute)


def _named(path: Path, read: Callable[[], T]) -> T:
    """``read()``, with its state-dict errors re-raised naming ``path``."""
    try:
        return read()
    except NotAControlNetError as error:
        raise WrongModelKindError(path, str(error)) from error
    except StateDictError as error:
        raise CorruptModelFileError(path, str(error)) from error


def _size_at(tensors: dict[str, torch.Tensor], prefix: str, dtype: torch.dtype) -> int:
    """Bytes of the ControlNet's tensors (those under ``prefix``) once floating-point ones are cast to ``dtype``."""
    width = torch.finfo(dtype).bits // 8
    return sum(
        tensor.numel() * (width if tensor.is_floating_point() else tensor.element_size())
        for key, tensor in tensors.items()
        if key.startswith(prefix)
    )
