"""``FilmInterpolator``: FILM (Reda et al., "FILM: Frame Interpolation for Large Motion", ECCV 2022) from its published
TorchScript export (``film_net_fp32.pt`` / ``film_net_fp16.pt``, as ComfyUI-Frame-Interpolation uses them).

The export is a scripted module called as ``module(frame0, frame1, dt)``: frames ``[B, 3, H, W]`` RGB in 0..1,
``dt`` ``[B, 1]`` the times in (0, 1); it returns the ``[B, 3, H, W]`` frames and takes any frame size.

Security: a TorchScript archive is not a weights file; it holds the module's code. It is loaded with
``torch.jit.load`` on the CPU, never with Python's pickle: the code is TorchScript, compiled by torch's own
interpreter, which can call torch operators but not Python (no imports, ``open``, ``exec`` or arbitrary globals),
and its constants and tensors are read by TorchScript's own unpickler, which rebuilds only tensors and TorchScript
types. That is narrower than a pickle, not a sandbox: operators run as the file says, so a FILM file should come
from a source one trusts, like any program. Reelgraph accepts only archives whose ``forward`` has FILM's signature
(three tensors in, one tensor out) and refuses anything else with ``NotAFrameInterpolatorError`` before use.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch

from models.errors import CorruptModelFileError, NotAFrameInterpolatorError
from models.interpolation.base import FrameInterpolator
from models.memory_types import WorkEstimate
from models.model_handle import ModelHandle

__all__ = ["FilmInterpolator", "is_torchscript_archive", "load_film_module"]

FILM_ARGUMENTS = 3
WORKING_VALUES_PER_PIXEL = 384
"""Working values per frame pixel of one FILM call: its feature pyramids of both frames, the flow pyramids and the
fusion decoder (an estimate of the order FILM needs; it is much heavier than RIFE)."""


def is_torchscript_archive(path: Path) -> bool:
    """Whether ``path`` is a zip archive laid out as ``torch.jit.save`` writes one (a ``code/`` folder and
    ``constants.pkl``)."""
    if not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return False
    has_code = any("/code/" in name for name in names)
    return has_code and any(name.endswith("/constants.pkl") for name in names)


def load_film_module(path: Path, dtype: torch.dtype | None = None) -> torch.jit.ScriptModule:
    """The scripted FILM module of ``path``, on the CPU, in ``dtype`` (``None``: as saved), frozen for inference.

    Raises:
        CorruptModelFileError: the archive cannot be read.
        NotAFrameInterpolatorError: its ``forward`` does not take FILM's ``(frame0, frame1, dt)`` tensors.
    """
    try:
        module = torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:  # torch.jit.load fails in many ways on damaged archives
        raise CorruptModelFileError(path, f"unreadable TorchScript archive: {type(exc).__name__}: {exc}") from exc
    _check_signature(path, module)
    if dtype is not None:
        module = module.to(dtype)
    for parameter in module.parameters():  # ScriptModules have no requires_grad_()
        parameter.requires_grad_(False)
    return module.eval()


def _check_signature(path: Path, module: torch.jit.ScriptModule) -> None:
    forward = getattr(module, "forward", None)
    schema = getattr(forward, "schema", None)
    if schema is None:
        raise NotAFrameInterpolatorError(path, "a TorchScript archive without a scripted forward")
    arguments = [argument for argument in schema.arguments if argument.name != "self"]
    types = [str(argument.type) for argument in arguments]
    returns = [str(value.type) for value in schema.returns]
    if len(arguments) != FILM_ARGUMENTS or any(kind != "Tensor" for kind in types) or returns != ["Tensor"]:
        signature = f"({', '.join(f'{a.name}: {t}' for a, t in zip(arguments, types, strict=True))}) -> {returns}"
        raise NotAFrameInterpolatorError(
            path,
            f"a TorchScript module with forward{signature}, not FILM's (frame0: Tensor, frame1: Tensor, "
            "dt: Tensor) -> Tensor",
        )


@dataclass(frozen=True)
class FilmInterpolator(FrameInterpolator):
    """A loaded FILM TorchScript export.

    Attributes:
        name: the file's name.
        handle: the scripted module's handle in the memory manager.
    """

    name: str
    handle: ModelHandle
    pad_multiple: ClassVar[int] = 1  # the export pads internally and takes any size

    def describe(self) -> str:
        return "FILM (TorchScript export)"

    def between(
        self, module: torch.nn.Module | None, first: torch.Tensor, second: torch.Tensor, times: torch.Tensor
    ) -> torch.Tensor:
        if module is None:
            raise TypeError(f"{self.name}: between needs the placed FILM module")
        if first.dim() != 4 or first.shape[1] != 3 or first.shape != second.shape:
            raise ValueError(
                f"{self.name}: frames must be two [N, 3, H, W] batches, got {tuple(first.shape)} and "
                f"{tuple(second.shape)}"
            )
        if times.shape != (first.shape[0],):
            raise ValueError(f"{self.name}: times must be [{first.shape[0]}], one per pair, got {tuple(times.shape)}")
        dtype = next(module.parameters()).dtype
        dt = times.to(first.device, dtype).view(-1, 1)
        with torch.no_grad():
            frames = module(first.to(dtype), second.to(dtype), dt)
        return frames.clamp(0.0, 1.0).to(first.dtype)

    def work_estimate(self, pairs: int, height: int, width: int) -> WorkEstimate:
        return WorkEstimate(WORKING_VALUES_PER_PIXEL * pairs * height * width * 4)
