"""Tiled upscaling: the tile grid, seam blending, agreement with untiled runs, frame batching, streaming, and the
memory-aware tile size."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from models.memory import ModelManager
from models.tiny.upscale import SPAN_SAFETENSORS, TINY_UPSCALE_NAMES
from models.upscale.model import UpscaleModel, load_upscale_model
from models.upscale.tiling import (
    TileOptions,
    activation_bytes,
    automatic_tile_size,
    seam_ramps,
    tile_spans,
    upscale_batches,
)

HEIGHT, WIDTH, TILE, OVERLAP = 96, 120, 64, 24
AWAY = 16
"""Input pixels from the nearest inner tile edge beyond which tiled must equal untiled. The tiny models see at most
~16 pixels around each pixel (SPAN: 20 3x3 convolutions, most of whose reach fades out; ESRGAN: 19)."""
SEAM_BOUND = 0.02
"""The largest difference allowed anywhere, seams included (values are 0..1). Measured with overlap 24: SPAN
1.0e-2, the ESRGANs <= 3.6e-3, SwinIR 1.2e-3, Compact 4.4e-4. Random weights make the worst case: their outputs
swing fully across 0..1 between neighbouring pixels, so a tile edge's missing context shows more than in a trained
model, and the cosine ramp gives those edge pixels almost no weight; 0.02 (~5/255) is twice the worst measured."""


def _upscaled(manager: ModelManager, model: UpscaleModel, frames: torch.Tensor, options: TileOptions) -> torch.Tensor:
    return torch.cat(list(upscale_batches(manager, model, [frames], options)))


def _distance_to_inner_edges(length: int, spans: tuple[tuple[int, int], ...], scale: int) -> torch.Tensor:
    """Per output pixel along one side: the input-pixel distance to the nearest tile edge inside the picture."""
    edges = [start for start, _ in spans[1:]] + [end for _, end in spans[:-1]]
    positions = torch.arange(length * scale) / scale + 0.5 / scale
    return torch.stack([(positions - edge).abs() for edge in edges]).amin(0)


def _frames(count: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(count, height, width, 3, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(
    "length,tile,overlap,multiple", [(96, 64, 24, 1), (120, 64, 24, 4), (75, 32, 8, 1), (37, 32, 8, 4)]
)
def test_tiles_cover_the_side_with_at_least_the_overlap(length: int, tile: int, overlap: int, multiple: int) -> None:
    spans = tile_spans(length, tile, overlap, multiple)
    assert spans[0][0] == 0 and spans[-1][1] == length
    for (start, end), (next_start, _) in itertools.pairwise(spans):
        assert start % multiple == 0 and (end - start) % multiple == 0
        assert end - next_start >= overlap
    assert all(end - start <= tile for start, end in spans)


def test_a_side_that_fits_is_one_tile() -> None:
    assert tile_spans(60, 64, 24) == ((0, 60),)
    assert tile_spans(62, 64, 24, 4) == ((0, 62),)  # padded to 64 by the model


def test_equal_overlaps_blend_to_weights_summing_to_one() -> None:
    spans = ((0, 64), (40, 104))
    first, second = seam_ramps(spans, 2, torch.device("cpu"))
    overlap = first[80:] + second[:48]
    assert torch.allclose(overlap, torch.ones_like(overlap), atol=1e-6)
    assert float(first[0]) == 1.0 and float(second[-1]) == 1.0  # the picture's edges are not faded


@pytest.mark.parametrize("name", TINY_UPSCALE_NAMES)
def test_tiled_equals_untiled_away_from_tile_edges_and_seams_stay_small(
    manager: ModelManager, upscale_folder: Path, name: str
) -> None:
    model = load_upscale_model(manager, upscale_folder / name)
    frames = _frames(1, HEIGHT, WIDTH)
    whole = _upscaled(manager, model, frames, TileOptions(tile_size=4096, overlap=0))
    tiled = _upscaled(manager, model, frames, TileOptions(tile_size=TILE, overlap=OVERLAP))
    rows = tile_spans(HEIGHT, TILE, OVERLAP, model.tile_multiple)
    columns = tile_spans(WIDTH, TILE, OVERLAP, model.tile_multiple)
    assert len(rows) > 1 and len(columns) > 1
    difference = (whole - tiled).abs()[0].amax(-1)
    away = (
        torch.minimum(
            _distance_to_inner_edges(HEIGHT, rows, model.scale)[:, None],
            _distance_to_inner_edges(WIDTH, columns, model.scale)[None, :],
        )
        > AWAY
    )
    assert float(away.float().mean()) > 0.05
    assert float(difference[away].max()) < 1e-4
    assert float(difference.max()) < SEAM_BOUND


def test_odd_sizes_come_out_scaled_exactly(manager: ModelManager, upscale_folder: Path) -> None:
    for name, (height, width) in (("RealESRGAN_x2plus.pth", (97, 83)), ("realesr-general-x4v3.pth", (67, 101))):
        model = load_upscale_model(manager, upscale_folder / name)
        frames = _frames(2, height, width, seed=5)
        tiled = _upscaled(manager, model, frames, TileOptions(tile_size=TILE, overlap=OVERLAP))
        whole = _upscaled(manager, model, frames, TileOptions(tile_size=4096, overlap=0))
        assert tiled.shape == whole.shape == (2, height * model.scale, width * model.scale, 3)
        assert len(tile_spans(height, TILE, OVERLAP, model.tile_multiple)) > 1
        assert float((tiled - whole).abs().max()) < SEAM_BOUND


def test_frame_batches_equal_frames_one_by_one(manager: ModelManager, upscale_folder: Path) -> None:
    model = load_upscale_model(manager, upscale_folder / SPAN_SAFETENSORS)
    frames = _frames(5, 40, 44, seed=6)
    one_by_one = _upscaled(manager, model, frames, TileOptions(tile_size=32, overlap=8, batch_size=1))
    batched = _upscaled(manager, model, frames, TileOptions(tile_size=32, overlap=8, batch_size=3))
    assert float((one_by_one - batched).abs().max()) < 1e-5


def test_frames_stream_a_batch_at_a_time(manager: ModelManager, upscale_folder: Path) -> None:
    model = load_upscale_model(manager, upscale_folder / "realesr-general-x4v3.pth")
    pulled: list[int] = []

    def source() -> Iterator[torch.Tensor]:
        for index in range(6):
            pulled.append(index)
            yield _frames(1, 16, 16, seed=index)

    done: list[int] = []
    outputs = upscale_batches(manager, model, source(), TileOptions(batch_size=2), done.append)
    first = next(outputs)
    assert first.shape == (2, 64, 64, 3) and first.device.type == "cpu"
    assert pulled == [0, 1]  # the rest of the clip is not read before the first batch comes back
    assert [batch.shape[0] for batch in outputs] == [2, 2]
    assert done == [2, 4, 6]


def test_the_automatic_tile_fits_the_budget(manager: ModelManager, upscale_folder: Path) -> None:
    model = load_upscale_model(manager, upscale_folder / "RealESRGAN_x4plus.pth")
    assert automatic_tile_size(model, 1 << 40, 1, 720, 1280) == 1280  # room for the whole frame: no tiles
    budget = activation_bytes(model, 1, 256, 256) * 2
    tile = automatic_tile_size(model, budget, 1, 720, 1280)
    assert tile == 256
    assert automatic_tile_size(model, budget, 4, 720, 1280) < tile  # four frames a batch: smaller tiles
    assert automatic_tile_size(model, 0, 1, 720, 1280) == 32  # no room at all: the smallest tile
