"""``load_frame_interpolator``: a file of the ``frame_interpolation`` folder as a ``FrameInterpolator``, its
architecture detected from its content (never its name).

- A TorchScript archive is taken as a FILM export (``models.interpolation.film``; its ``forward`` must have FILM's
  signature).
- A weights file (safetensors, or a pickle read with ``torch.load(weights_only=True)``, as ``.pth`` and ``.pkl``
  releases are) whose tensors are a RIFE IFNet is RIFE v4.x; the version family is read from the tensors.
- Anything else raises ``NotAFrameInterpolatorError`` naming the file and what it holds.
"""

from __future__ import annotations

from pathlib import Path

import torch

from models.checkpoint_files import read_shapes
from models.errors import NotAFrameInterpolatorError, read_naming_file
from models.interpolation.base import FrameInterpolator
from models.interpolation.film import FilmInterpolator, is_torchscript_archive, load_film_module
from models.interpolation.rife import RIFE_DTYPE, RifeInterpolator, build_ifnet, check_scale_factor
from models.interpolation.rife_layout import is_rife_state_dict, read_rife_layout, rife_tensors
from models.loading import load_state_dict
from models.memory import ModelManager, file_key

__all__ = ["load_frame_interpolator"]


KEY_KIND = "frame_interpolation"
SHOWN_KEYS = 3


def load_frame_interpolator(
    manager: ModelManager, path: Path, *, scale_factor: float = 1.0, ensemble: bool = False
) -> FrameInterpolator:
    """The interpolator of ``path``, its network registered with ``manager`` (loaded into RAM now).

    Args:
        manager: the model memory manager.
        path: a RIFE v4.x checkpoint or a FILM TorchScript export.
        scale_factor: RIFE's flow resolution (``models.interpolation.rife.SCALE_FACTORS``); FILM has none and takes
            only 1.
        ensemble: RIFE v4.2-4.21's ensemble mode; refused (``ValueError``) for other versions and FILM.

    Raises:
        NotAFrameInterpolatorError: the file is neither.
        CorruptModelFileError: a RIFE checkpoint whose tensors do not form an IFNet, or an unreadable file.
        UnsafeModelFileError: a pickle that needs code to load.
    """
    path = Path(path)
    if is_torchscript_archive(path):
        if scale_factor != 1.0:
            raise ValueError(f"{path.name}: FILM has no scale_factor; use 1 (got {scale_factor!r})")
        if ensemble:
            raise ValueError(f"{path.name}: FILM has no ensemble mode (RIFE v4.2 to v4.21 have it); turn ensemble off")
        dtype = torch.float32 if manager.compute_device.type == "cpu" else None  # half precision is slow on a CPU
        handle = manager.load(
            file_key(KEY_KIND, path), lambda: load_film_module(path, dtype), size_hint=path.stat().st_size
        )
        return FilmInterpolator(path.name, handle)
    shapes = read_shapes(path)
    if not is_rife_state_dict(shapes.tensors):
        sample = ", ".join(list(shapes.tensors)[:SHOWN_KEYS]) or "no tensors"
        raise NotAFrameInterpolatorError(
            path,
            f"not a RIFE v4.x checkpoint (block0.conv0.0.0.weight) nor a FILM TorchScript export; it holds {sample}",
        )
    check_scale_factor(path.name, scale_factor)
    layout = read_naming_file(path, lambda: read_rife_layout(rife_tensors(shapes.tensors)))
    if ensemble:
        layout.check_ensemble(path.name)

    def load() -> torch.nn.Module:
        tensors = rife_tensors(load_state_dict(path))
        return read_naming_file(path, lambda: build_ifnet(tensors, layout))

    size = sum(tensor.numel() for tensor in shapes.tensors.values()) * torch.finfo(RIFE_DTYPE).bits // 8
    handle = manager.load(file_key(KEY_KIND, path), load, size_hint=size)
    return RifeInterpolator(path.name, handle, layout, scale_factor, ensemble)
