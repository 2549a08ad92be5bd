"""``RifeInterpolator``: a RIFE v4.x checkpoint (``rife47.pth``, ``rife49.pth``, ``flownet.pkl``...) as a
``FrameInterpolator``, and building its ``IFNet`` from the checkpoint's tensors.

v4 takes the time as an input, so ``between`` makes frames at any times in (0, 1) directly. ``scale_factor`` is an
option of the interpolator, fixed when it is loaded (ComfyUI-Frame-Interpolation's ``scale_factor``; Practical-RIFE's
``--scale``), not of ``between``: it sets the resolution the flow is estimated at, and so the multiple frame sides are
padded to (``pad_multiple``), which the clip runner reads once. 0.5 (or 0.25) suits 4K frames, 1 is the default,
2 or 4 can help small frames with fine motion. ``ensemble`` (v4.2-4.21) also estimates every block from the swapped
pair and averages the two (Practical-RIFE's and ComfyUI-Frame-Interpolation's ``ensemble``): smoother where the flow is
uncertain, at twice the work. Weights compute in float32 (RIFE is small; its flows lose precision in half precision).
The v4.0-4.4 refinement U-Net is not loaded (their fast mode, the default, skips it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch

from models.errors import StateDictError
from models.interpolation.base import FrameInterpolator
from models.interpolation.rife_layout import RifeLayout
from models.interpolation.rife_net import IFNet
from models.memory_types import WorkEstimate
from models.model_handle import ModelHandle

__all__ = ["RIFE_DTYPE", "SCALE_FACTORS", "RifeInterpolator", "build_ifnet", "check_scale_factor"]

RIFE_DTYPE = torch.float32
SCALE_FACTORS = (0.25, 0.5, 1.0, 2.0, 4.0)
"""The ``scale_factor`` values RIFE takes: powers of two keep every block's resizing exact."""
WORKING_VALUES_PER_PIXEL = 48
"""Full-resolution working values per frame pixel besides the block and encoder terms: frames, their features and
warps for both frames, the finest block's input, flow, mask and blend (a measured-order estimate, float32)."""


@dataclass(frozen=True)
class RifeInterpolator(FrameInterpolator):
    """A loaded RIFE checkpoint.

    Attributes:
        name: the file's name.
        handle: the ``IFNet``'s handle in the memory manager.
        layout: what the checkpoint holds (blocks, encoder), read from its tensors.
        scale_factor: one of ``SCALE_FACTORS``: the flow is estimated at this multiple of the frames' resolution.
        ensemble: also estimate from the swapped pair and average (only where ``layout.supports_ensemble``).
    """

    name: str
    handle: ModelHandle
    layout: RifeLayout
    scale_factor: float = 1.0
    ensemble: bool = False

    def __post_init__(self) -> None:
        check_scale_factor(self.name, self.scale_factor)
        if self.ensemble:
            self.layout.check_ensemble(self.name)

    @property
    def pad_multiple(self) -> int:  # type: ignore[override]  # the base declares a plain class attribute
        return self.layout.pad_multiple(self.scale_factor)

    def describe(self) -> str:
        scale = "" if self.scale_factor == 1.0 else f", scale factor {self.scale_factor:g}"
        ensemble = ", ensemble" if self.ensemble else ""
        return f"RIFE {self.layout.version()} (IFNet, {len(self.layout.blocks)} blocks{scale}{ensemble})"

    def between(
        self, module: torch.nn.Module | None, first: torch.Tensor, second: torch.Tensor, times: torch.Tensor
    ) -> torch.Tensor:
        if not isinstance(module, IFNet):
            raise TypeError(f"{self.name}: between needs the placed IFNet, got {type(module).__name__}")
        _check_frames(self.name, first, second, times, self.pad_multiple)
        dtype = next(module.parameters()).dtype
        with torch.no_grad():
            frames = module(
                first.to(dtype), second.to(dtype), times.to(first.device, dtype), self.scale_factor, self.ensemble
            )
        return frames.clamp(0.0, 1.0).to(first.dtype)

    def work_estimate(self, pairs: int, height: int, width: int) -> WorkEstimate:
        layout = self.layout
        encoder = 0 if layout.encoder is None else sum(out for _, out in layout.encoder.channels) // 2
        finest = layout.blocks[-1]
        block = finest.width // 8 + finest.width * (finest.depth + 2) // 16  # at 1/2 and 1/4 of its resolution
        area = max(1.0, self.scale_factor**2)  # the finest block runs at scale_factor times the frames' size
        blocks = block * area * (2 if self.ensemble else 1)  # ensemble runs every block on twice the pairs
        values = (WORKING_VALUES_PER_PIXEL + 4 * layout.feature_channels + encoder + blocks) * pairs * height * width
        return WorkEstimate(int(values * torch.finfo(RIFE_DTYPE).bits // 8))


def check_scale_factor(name: str, scale_factor: float) -> None:
    """``ValueError`` naming the model unless ``scale_factor`` is one of ``SCALE_FACTORS``."""
    if scale_factor not in SCALE_FACTORS:
        raise ValueError(
            f"{name}: scale_factor must be one of {', '.join(f'{value:g}' for value in SCALE_FACTORS)}, "
            f"got {scale_factor!r}"
        )


def build_ifnet(tensors: Mapping[str, torch.Tensor], layout: RifeLayout) -> IFNet:
    """An ``IFNet`` of ``layout`` holding the unprefixed checkpoint ``tensors`` (in ``RIFE_DTYPE``), frozen for
    inference. Tensors of parts not loaded (v4.0-4.4's ``contextnet``/``unet``, a training run's teacher block)
    are left out; a missing or misshapen tensor raises ``StateDictError``."""
    network = IFNet(layout)
    expected = network.state_dict()
    wanted = {name: tensor for name, tensor in tensors.items() if name in expected}
    missing = sorted(set(expected) - set(wanted))
    if missing:
        raise StateDictError(f"RIFE {layout.version()} checkpoint without {', '.join(missing[:4])}")
    misshapen = [name for name, tensor in wanted.items() if tensor.shape != expected[name].shape]
    if misshapen:
        name = misshapen[0]
        raise StateDictError(f"{name} is {tuple(wanted[name].shape)}, expected {tuple(expected[name].shape)}")
    network.load_state_dict({name: tensor.to(RIFE_DTYPE) for name, tensor in wanted.items()})
    return network.eval().requires_grad_(False)


def _check_frames(name: str, first: torch.Tensor, second: torch.Tensor, times: torch.Tensor, multiple: int) -> None:
    if first.dim() != 4 or first.shape[1] != 3 or first.shape != second.shape:
        raise ValueError(
            f"{name}: frames must be two [N, 3, H, W] batches, got {tuple(first.shape)} and {tuple(second.shape)}"
        )
    if times.shape != (first.shape[0],):
        raise ValueError(f"{name}: times must be [{first.shape[0]}], one per pair, got {tuple(times.shape)}")
    if first.shape[2] % multiple or first.shape[3] % multiple:
        raise ValueError(f"{name}: frame sides {tuple(first.shape[2:])} must be multiples of {multiple} (pad them)")
