"""How a VAE codes within memory: tiles (``VAEDecodeTiled``, ``VAEMemoryOptions``) and slicing, turned on on a
diffusers VAE for one encode or decode.

diffusers' VAEs name their tiling settings differently: the video VAEs take tile sizes and strides in pixels as
``enable_tiling`` arguments (Hunyuan and LTX also in frames; CogVideoX an overlap *factor*), the image
``AutoencoderKL`` takes none and reads sizes from attributes. ``tiled_coding`` passes each VAE the settings it
names and restores its own afterwards, so a tiled decode leaves the shared module as it found it. Slicing codes
the batch one item at a time (``use_slicing``; for image VAEs that code a video's frames as one batch, one frame at a
time); ``sliced_coding`` turns it on for one call where the VAE has it.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

import torch

__all__ = ["TILING_MODES", "TileSettings", "TilingMode", "VaeMemoryOptions", "sliced_coding", "tiled_coding"]

MIN_TILE = 64
MIN_FRAMES = 8
_IMAGE_VAE_ATTRIBUTES = ("tile_sample_min_size", "tile_latent_min_size", "tile_overlap_factor")
TilingMode = Literal["auto", "always", "never"]
TILING_MODES: tuple[TilingMode, ...] = ("auto", "always", "never")


@dataclass(frozen=True)
class TileSettings:
    """Tiles for decoding: spatial ``size`` and ``overlap`` in pixels; ``frames`` and ``frame_overlap`` in video
    frames, for the VAEs that also decode in temporal tiles (``VAEDecodeTiled``'s four inputs)."""

    size: int = 512
    overlap: int = 64
    frames: int = 64
    frame_overlap: int = 8

    def __post_init__(self) -> None:
        if self.size < MIN_TILE or not 0 <= self.overlap < self.size // 2:
            raise ValueError(f"tile size {self.size} needs >= {MIN_TILE} and overlap {self.overlap} below half of it")
        if self.frames < MIN_FRAMES or not 0 <= self.frame_overlap < self.frames:
            raise ValueError(
                f"temporal tiles of {self.frames} frames need >= {MIN_FRAMES} frames and an overlap "
                f"({self.frame_overlap}) below that"
            )

    def arguments(self) -> Mapping[str, float]:
        """Every ``enable_tiling`` argument a diffusers VAE may take, from these settings."""
        return {
            "tile_sample_min_height": self.size,
            "tile_sample_min_width": self.size,
            "tile_sample_stride_height": self.size - self.overlap,
            "tile_sample_stride_width": self.size - self.overlap,
            "tile_overlap_factor_height": self.overlap / self.size,
            "tile_overlap_factor_width": self.overlap / self.size,
            "tile_sample_min_num_frames": self.frames,
            "tile_sample_stride_num_frames": self.frames - self.frame_overlap,
        }


@dataclass(frozen=True)
class VaeMemoryOptions:
    """How ``VAEDecode`` / ``VAEEncode`` code with a VAE: ``tiling`` ``auto`` codes whole and retries in ``tiles``
    after running out of memory, ``always`` codes in ``tiles``, ``never`` codes whole and lets an out-of-memory
    error stand; ``slicing`` codes the batch one item at a time."""

    tiling: TilingMode = "auto"
    tiles: TileSettings = field(default_factory=TileSettings)
    slicing: bool = False

    def __post_init__(self) -> None:
        if self.tiling not in TILING_MODES:
            raise ValueError(f"tiling {self.tiling!r} must be one of {', '.join(TILING_MODES)}")

    def describe(self) -> str:
        """E.g. ``"tiling always (512 px, overlap 64), slicing"``."""
        tiles = f" ({self.tiles.size} px, overlap {self.tiles.overlap})" if self.tiling != "never" else ""
        return f"tiling {self.tiling}{tiles}" + (", slicing" if self.slicing else "")


@contextmanager
def tiled_coding(module: torch.nn.Module, tiles: TileSettings) -> Iterator[None]:
    """``module`` (a diffusers VAE) encoding and decoding in ``tiles`` inside the block, as it was after it.
    ``ValueError`` for a VAE without tiling."""
    enable = getattr(module, "enable_tiling", None)
    if enable is None or not hasattr(module, "use_tiling"):
        raise ValueError(f"the {type(module).__name__} VAE cannot code in tiles")
    accepted = inspect.signature(enable).parameters
    arguments = {name: value for name, value in tiles.arguments().items() if name in accepted}
    if accepted and not arguments:
        raise ValueError(
            f"the {type(module).__name__} VAE's tiling takes {', '.join(accepted)}, which Reelgraph cannot set"
        )
    changed = arguments or _IMAGE_VAE_ATTRIBUTES
    saved = {name: getattr(module, name) for name in changed if hasattr(module, name)}
    was_tiling = module.use_tiling
    try:
        if arguments:
            enable(**arguments)
        else:
            _set_image_vae_tiles(module, tiles)
            enable()
        yield
    finally:
        for name, value in saved.items():
            setattr(module, name, value)
        module.use_tiling = was_tiling


@contextmanager
def sliced_coding(module: torch.nn.Module) -> Iterator[None]:
    """``module`` coding its batch one item at a time inside the block where it can (``use_slicing``), as it was
    after it; VAEs without slicing code as usual (the caller already splits the videos of a batch)."""
    if not hasattr(module, "use_slicing"):
        yield
        return
    was_slicing = module.use_slicing
    module.use_slicing = True
    try:
        yield
    finally:
        module.use_slicing = was_slicing


def _set_image_vae_tiles(module: torch.nn.Module, tiles: TileSettings) -> None:
    """``AutoencoderKL``'s tile attributes: the sample tile, the latent tile it decodes from, the overlap share."""
    downsampling = 2 ** (len(module.config.block_out_channels) - 1)  # type: ignore[union-attr]
    module.tile_sample_min_size = tiles.size
    module.tile_latent_min_size = tiles.size // downsampling
    module.tile_overlap_factor = tiles.overlap / tiles.size
