"""Tiny random-weight stand-ins for the frame-interpolation releases, under their names in ``frame_interpolation/``:

- ``rife46.pth``: RIFE v4.6's layout (four blocks, residual layers, no feature encoder), a pickled state dict as the
  release is;
- ``rife47.pth``: RIFE v4.7's layout (the two-layer feature encoder, blocks fed warped features), keys under the
  ``module.`` prefix of a ``DataParallel`` training run as ``flownet.pkl`` files carry them;
- ``film_net_fp32.pt``: a TorchScript module with the FILM export's call signature, ``(frame0, frame1, dt)``:
  a tiny flow-and-blend network (one convolution layer estimates both flows and a blend mask).

The RIFE files keep the real structure (block count, eight layers per block, the channel arithmetic detection reads)
with narrow blocks, so a 64x64 pair interpolates in milliseconds. Weights are seeded and never touch the global RNG.
"""

from __future__ import annotations

import warnings
import zlib
from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType

import torch
import torch.nn.functional as F
from torch import nn

from models.interpolation.rife_layout import MODULE_PREFIX, EncoderLayout, RifeLayout, residual_layout
from models.interpolation.rife_net import IFNet
from models.interpolation.warp import backward_warp

__all__ = [
    "FILM_FILE",
    "FOLDER",
    "RIFE46_FILE",
    "RIFE47_FILE",
    "TINY_INTERPOLATION_NAMES",
    "TINY_RIFE_LAYOUTS",
    "TinyFilmNet",
    "tiny_rife_layout",
    "write_tiny_interpolation_files",
]

FOLDER = "frame_interpolation"
RIFE46_FILE = f"{FOLDER}/rife46.pth"
RIFE47_FILE = f"{FOLDER}/rife47.pth"
FILM_FILE = f"{FOLDER}/film_net_fp32.pt"
TINY_INTERPOLATION_NAMES = (RIFE46_FILE, RIFE47_FILE, FILM_FILE)
BLOCK_WIDTHS = (16, 12, 8, 8)
BLOCK_DEPTH = 8
RIFE46_OUT_CHANNELS = 6  # flow, mask and one channel v4.6 leaves unused
ENCODER_WIDTH = 8
ENCODER_FEATURES = 4
FILM_WIDTH = 8


def tiny_rife_layout(
    in_channels: tuple[int, int], encoder: EncoderLayout | None, out_channels: int, carried: int = 0
) -> RifeLayout:
    """Four narrow residual blocks taking ``in_channels`` (first block, later blocks) and giving ``out_channels``."""
    return residual_layout(BLOCK_WIDTHS, in_channels, out_channels, encoder, carried, depth=BLOCK_DEPTH)


TINY_RIFE_LAYOUTS = MappingProxyType(
    {
        RIFE46_FILE: tiny_rife_layout((7, 12), None, RIFE46_OUT_CHANNELS),
        RIFE47_FILE: tiny_rife_layout(
            (7 + 2 * ENCODER_FEATURES, 12 + 2 * ENCODER_FEATURES),
            EncoderLayout(("0", "1"), ((3, ENCODER_WIDTH), (ENCODER_WIDTH, ENCODER_FEATURES)), activated=False),
            RIFE46_OUT_CHANNELS,
        ),
    }
)
_PREFIXED = frozenset({RIFE47_FILE})


class TinyFilmNet(nn.Module):
    """FILM's call signature over a tiny flow-and-blend network: a convolution of both frames and the time gives the
    flows from the middle frame to both frames and a blend mask; the frames are backward-warped and blended."""

    def __init__(self, width: int = FILM_WIDTH) -> None:
        super().__init__()
        self.estimate = nn.Conv2d(7, width, 3, padding=1)
        self.head = nn.Conv2d(width, 5, 3, padding=1)

    def forward(self, frame0: torch.Tensor, frame1: torch.Tensor, dt: torch.Tensor) -> torch.Tensor:
        batch, _, height, width = frame0.shape
        time = dt.view(batch, 1, 1, 1).expand(batch, 1, height, width)
        out = self.head(F.leaky_relu(self.estimate(torch.cat((frame0, frame1, time), dim=1)), 0.2))
        mask = torch.sigmoid(out[:, 4:5])
        return backward_warp(frame0, out[:, 0:2]) * mask + backward_warp(frame1, out[:, 2:4]) * (1 - mask)


def write_tiny_interpolation_files(models_dir: Path, seed: int = 0) -> list[Path]:
    """Write the tiny RIFE checkpoints and FILM export below ``models_dir``; returns the paths written."""
    models_dir = Path(models_dir)
    (models_dir / FOLDER).mkdir(parents=True, exist_ok=True)
    written = []
    for name, layout in TINY_RIFE_LAYOUTS.items():
        state = _seeded(name, seed, lambda layout=layout: IFNet(layout)).state_dict()
        if name in _PREFIXED:
            state = {MODULE_PREFIX + key: value for key, value in state.items()}
        torch.save(state, models_dir / name)
        written.append(models_dir / name)
    with warnings.catch_warnings():  # torch deprecates TorchScript; FILM is published as TorchScript all the same
        warnings.filterwarnings(
            "ignore", message=r"`torch\.jit\.(script|save)` is deprecated", category=DeprecationWarning
        )
        film = torch.jit.script(_seeded(FILM_FILE, seed, TinyFilmNet).eval())
        torch.jit.save(film, str(models_dir / FILM_FILE))
    written.append(models_dir / FILM_FILE)
    return written


def _seeded(name: str, seed: int, build: Callable[[], nn.Module]) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(zlib.crc32(f"{name}:{seed}".encode()))
        return build()
