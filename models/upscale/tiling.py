"""Running an upscale model over frames: in tiles with feathered seams, a batch of frames at a time.

Frames stay on the CPU; each batch goes to the device, is upscaled tile by tile into an output accumulator there,
and comes back, so a clip of any length never sits on the device at once. Tiles overlap; each tile's output is
weighted by a cosine (Hann) ramp across every overlap it shares with a neighbour (1 inside, near 0 at its inner
edges, 1 at the picture's edges), and the weighted sum is divided by the summed weights. Where two tiles overlap
by the same width their ramps add up to exactly 1, so a seam fades from one tile to the other instead of jumping,
and a tile's edge pixels (which lack the context beyond the tile) count for almost nothing.

Tiles start at multiples of the model's ``tile_multiple`` (its size rule's ``multiple_of``, or its attention
window) and are multiples of it long, so window-attention models (SwinIR, HAT) see the same windows as in an untiled
run; a tile that runs past the picture is clipped and the model pads it exactly as it pads the whole picture. The
tile size is chosen from the device budget (``0`` = automatic) and stepped down after running out of memory until
it fits.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import torch

from models.memory import ModelManager
from models.memory_types import WorkEstimate
from models.oom import ModelOutOfMemoryError, run_with_oom_recovery
from models.pixels import luma
from models.upscale.model import UpscaleModel

__all__ = [
    "MIN_TILE",
    "TILE_SIZES",
    "TileOptions",
    "activation_bytes",
    "automatic_tile_size",
    "seam_ramps",
    "tile_spans",
    "upscale_batches",
]

logger = logging.getLogger(__name__)

TILE_SIZES = (1024, 768, 512, 384, 256, 192, 128, 96, 64, 48, 32)
"""The tile sides (input pixels) the automatic choice and the out-of-memory step-down pick from, largest first."""
MIN_TILE = TILE_SIZES[-1]
LIVE_MAPS = 8
"""Feature maps of the widest layer's width alive at once per input pixel (dense blocks concatenate several)."""
UPSCALED_MAPS = 2
"""Feature maps alive at the output resolution (the upsampling convolutions), per output pixel."""
BUDGET_SHARE = 0.5
"""The share of the free device budget the automatic tile size plans to use (the estimate is rough)."""


@dataclass(frozen=True)
class TileOptions:
    """How to run: ``tile_size`` input pixels a side (0: chosen from free memory), ``overlap`` input pixels shared
    by neighbouring tiles, ``batch_size`` frames per device batch."""

    tile_size: int = 0
    overlap: int = 32
    batch_size: int = 1

    def __post_init__(self) -> None:
        if self.tile_size and self.tile_size < MIN_TILE:
            raise ValueError(f"tile_size must be 0 (automatic) or at least {MIN_TILE}, got {self.tile_size}")
        if self.overlap < 0 or (self.tile_size and self.overlap * 2 >= self.tile_size):
            raise ValueError(f"overlap must be at least 0 and under half the tile size, got {self.overlap}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")


def tile_spans(length: int, tile: int, overlap: int, multiple: int = 1) -> tuple[tuple[int, int], ...]:
    """``(start, end)`` of the tiles along a side of ``length`` pixels, evenly spread, overlapping by at least
    ``overlap``; starts and lengths are multiples of ``multiple`` (the last tile may run past ``length``: it is
    clipped here and padded back by the model). One span when the side fits in one tile."""
    padded = -(-length // multiple) * multiple
    tile = max(multiple, tile // multiple * multiple)
    overlap = min(overlap, tile // 2)
    if padded <= tile:
        return ((0, length),)
    stride = max(multiple, (tile - overlap) // multiple * multiple)
    count = math.ceil((padded - tile) / stride) + 1
    starts = sorted({round((padded - tile) * index / (count - 1) / multiple) * multiple for index in range(count)})
    return tuple((start, min(start + tile, length)) for start in starts)


def seam_ramps(spans: tuple[tuple[int, int], ...], scale: int, device: torch.device) -> list[torch.Tensor]:
    """Each span's output weights along one side: cosine ramps over its overlaps with the spans before and after."""
    weights = []
    for index, (start, end) in enumerate(spans):
        size = (end - start) * scale
        positions = torch.arange(size, device=device, dtype=torch.float32) + 0.5
        weight = torch.ones(size, device=device)
        if index > 0:
            rise = (spans[index - 1][1] - start) * scale
            weight *= torch.where(positions < rise, 0.5 - 0.5 * torch.cos(torch.pi * positions / rise), 1.0)
        if index + 1 < len(spans):
            fall = (end - spans[index + 1][0]) * scale
            from_end = size - positions
            weight *= torch.where(from_end < fall, 0.5 - 0.5 * torch.cos(torch.pi * from_end / fall), 1.0)
        weights.append(weight)
    return weights


def activation_bytes(model: UpscaleModel, frames: int, height: int, width: int) -> int:
    """Working memory of upscaling ``frames`` tiles of ``height`` x ``width``: feature maps of the widest layer at
    the input and output resolutions, plus the output accumulator (a rough, architecture-blind estimate; running
    out of memory steps the tile size down)."""
    element = torch.finfo(model.compute_dtype).bits // 8
    pixels = frames * height * width
    features = pixels * model.feature_width * element * (LIVE_MAPS + UPSCALED_MAPS * model.scale**2)
    accumulator = pixels * model.scale**2 * (model.output_channels + 1) * 4
    return features + accumulator


def automatic_tile_size(model: UpscaleModel, budget_bytes: int, frames: int, height: int, width: int) -> int:
    """The largest tile side whose estimated working memory fits ``BUDGET_SHARE`` of ``budget_bytes``; the whole
    frame (returned as its longer side) when that fits, or when the model must not be tiled."""
    padded_h, padded_w = model.size.padded(height, width)
    whole = max(padded_h, padded_w)
    room = budget_bytes * BUDGET_SHARE
    if model.tiling == "internal" or activation_bytes(model, frames, padded_h, padded_w) <= room:
        return whole
    multiple = model.tile_multiple
    for size in TILE_SIZES:
        tile = max(model.size.minimum, size // multiple * multiple)
        if tile < whole and activation_bytes(model, frames, tile, tile) <= room:
            return tile
    return max(model.size.minimum, MIN_TILE // multiple * multiple)


def _smaller_tile(model: UpscaleModel, tile: int) -> int | None:
    multiple = model.tile_multiple
    for size in TILE_SIZES:
        smaller = max(model.size.minimum, size // multiple * multiple)
        if smaller < tile:
            return smaller
    return None


def _upscale_tiled(
    network: torch.nn.Module, model: UpscaleModel, images: torch.Tensor, tile: int, overlap: int
) -> torch.Tensor:
    """``images`` ``[N, C, H, W]`` (on the device, in the model's dtype) upscaled tile by tile, as float32."""
    count, _, height, width = images.shape
    scale, multiple = model.scale, model.tile_multiple
    rows = tile_spans(height, tile, overlap, multiple)
    columns = tile_spans(width, tile, overlap, multiple)
    if len(rows) == len(columns) == 1:
        return network(images).float()
    row_weights = seam_ramps(rows, scale, images.device)
    column_weights = seam_ramps(columns, scale, images.device)
    out_channels = model.output_channels
    total = torch.zeros(count, out_channels, height * scale, width * scale, device=images.device)
    weight_sum = torch.zeros(1, 1, height * scale, width * scale, device=images.device)
    for (top, bottom), row_weight in zip(rows, row_weights, strict=True):
        for (left, right), column_weight in zip(columns, column_weights, strict=True):
            output = network(images[:, :, top:bottom, left:right]).float()
            weight = row_weight[:, None] * column_weight[None, :]
            region = (slice(None), slice(None), slice(top * scale, bottom * scale), slice(left * scale, right * scale))
            total[region] += output * weight
            weight_sum[region] += weight
    return total.div_(weight_sum)


def _to_model_input(frames: torch.Tensor, model: UpscaleModel, device: torch.device) -> torch.Tensor:
    """IMAGE frames ``[N, H, W, 3]`` as the model's input ``[N, C, H, W]`` on ``device`` in its dtype (grayscale
    models get the luma)."""
    pixels = frames.to(device, non_blocking=True)
    images = luma(pixels).unsqueeze(1) if model.input_channels == 1 else pixels.permute(0, 3, 1, 2)
    return images.to(model.compute_dtype).contiguous()


def _to_frames(output: torch.Tensor) -> torch.Tensor:
    """The model's output ``[N, C, H, W]`` as IMAGE frames ``[N, H, W, 3]`` float32 on the CPU."""
    if output.shape[1] == 1:
        output = output.expand(-1, 3, -1, -1)
    return output[:, :3].permute(0, 2, 3, 1).to("cpu", torch.float32).contiguous()


def _regrouped(batches: Iterable[torch.Tensor], size: int) -> Iterator[torch.Tensor]:
    """Frame batches of ``size`` frames (the last may be shorter), whatever sizes ``batches`` come in."""
    pending: list[torch.Tensor] = []
    held = 0
    for batch in batches:
        while batch.shape[0]:
            take = min(size - held, batch.shape[0])
            pending.append(batch[:take])
            held += take
            batch = batch[take:]
            if held == size:
                yield pending[0] if len(pending) == 1 else torch.cat(pending)
                pending, held = [], 0
    if pending:
        yield torch.cat(pending)


def upscale_batches(
    manager: ModelManager,
    model: UpscaleModel,
    frames: Iterable[torch.Tensor],
    options: TileOptions,
    on_batch: Callable[[int], None] | None = None,
) -> Iterator[torch.Tensor]:
    """Upscale IMAGE frame batches (``[n, H, W, 3]`` float 0..1 on the CPU, any batch sizes) ``options.batch_size``
    frames at a time; yields the upscaled batches on the CPU, in order. ``on_batch(frames_done)`` runs after each.

    A batch that runs out of memory is redone with the next smaller tile (kept for the batches after it); at the
    smallest tile, ``run_with_oom_recovery`` frees idle models and offloads before giving up.
    """
    tile = options.tile_size
    done = 0
    for batch in _regrouped(frames, options.batch_size):
        if batch.ndim != 4 or batch.shape[-1] != 3:
            raise ValueError(f"frames must be [frames, height, width, 3], got {tuple(batch.shape)}")
        count, height, width = batch.shape[:3]
        if not tile:
            tile = automatic_tile_size(model, _free_device_bytes(manager, model), count, height, width)
            logger.info("upscaling %dx%d frames with %s in tiles of %d", width, height, model.describe(), tile)
        output, tile = _upscale_fitting(manager, model, batch, tile, options.overlap)
        done += count
        yield output
        if on_batch is not None:
            on_batch(done)


def _upscale_fitting(
    manager: ModelManager, model: UpscaleModel, batch: torch.Tensor, tile: int, overlap: int
) -> tuple[torch.Tensor, int]:
    """One batch upscaled (on the CPU) and the tile size that fitted, stepping the tile down after running out of
    memory."""
    height, width = batch.shape[1:3]

    def run(network: torch.nn.Module) -> torch.Tensor:
        images = _to_model_input(batch, model, manager.compute_device)
        return _to_frames(_upscale_tiled(network, model, images, tile, overlap))

    while True:
        smaller = _smaller_tile(model, tile)
        work = WorkEstimate(activation_bytes(model, batch.shape[0], *_tile_shape(model, tile, height, width)))
        try:
            return run_with_oom_recovery(
                manager,
                model.handle,
                run,
                work,
                max_retries=0 if smaller is not None else 1,
                caller_recovers=smaller is not None,
            ), tile
        except ModelOutOfMemoryError:
            if smaller is None:
                raise
            logger.warning("out of memory upscaling in tiles of %d; retrying in tiles of %d", tile, smaller)
            tile = smaller


def _tile_shape(model: UpscaleModel, tile: int, height: int, width: int) -> tuple[int, int]:
    padded_h, padded_w = model.size.padded(height, width)
    return min(tile, padded_h), min(tile, padded_w)


def _free_device_bytes(manager: ModelManager, model: UpscaleModel) -> int:
    """The device budget left for activations once the model's weights are on the device."""
    return max(0, manager.device_budget_bytes() - model.handle.nbytes)
