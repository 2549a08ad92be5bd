"""Upscale fallbacks: grayscale models (one input and/or output channel) get the luma and give RGB frames, and a
tile that runs out of memory is stepped down to a smaller one (kept for later batches) until even the smallest
fails, which ends in a ``ModelOutOfMemoryError``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from models.memory import ModelManager
from models.oom import ModelOutOfMemoryError
from models.tiny.upscale import COMPACT, tiny_esrgan
from models.upscale import tiling
from models.upscale.model import UpscaleModel, UpscaleNetwork, load_upscale_model
from models.upscale.tiling import MIN_TILE, TileOptions, tile_spans, upscale_batches

LUMA = (0.299, 0.587, 0.114)
SCALE = 4
HEIGHT, WIDTH = 40, 52
OOM_HEIGHT, OOM_WIDTH = 80, 96
BIG_TILE, FITTING_TILE, OVERLAP = 64, 48, 16
"""The out-of-memory tests ask for ``BIG_TILE``; the injected failure lets only tiles up to ``FITTING_TILE`` (the
next of ``TILE_SIZES``) through."""


def _frames(count: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(count, height, width, 3, generator=torch.Generator().manual_seed(seed))


def _upscaled(manager: ModelManager, model: UpscaleModel, frames: torch.Tensor, options: TileOptions) -> torch.Tensor:
    return torch.cat(list(upscale_batches(manager, model, [frames], options)))


def _tiny_esrgan(in_channels: int, out_channels: int, seed: int) -> torch.nn.Module:
    """``models.tiny.upscale.tiny_esrgan`` with seeded weights, ready to run."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = tiny_esrgan(in_channels, out_channels)
    return module.eval().requires_grad_(False)


def _luma(frames: torch.Tensor) -> torch.Tensor:
    """``[N, H, W, 3]`` frames as ``[N, 1, H, W]`` luma (BT.601 weights)."""
    return (frames * torch.tensor(LUMA)).sum(-1, keepdim=True).permute(0, 3, 1, 2)


# --- grayscale models ---------------------------------------------------------------------------------------------


@pytest.fixture(params=[(1, 1), (1, 3), (3, 1)], ids=["gray-to-gray", "gray-to-rgb", "rgb-to-gray"])
def channels(request: pytest.FixtureRequest) -> tuple[int, int]:
    """``(input_channels, output_channels)`` of the tiny ESRGAN under test."""
    return request.param


@pytest.fixture
def esrgan(channels: tuple[int, int]) -> torch.nn.Module:
    """The reference network: the same weights the saved file holds, run directly."""
    return _tiny_esrgan(*channels, seed=7)


@pytest.fixture
def esrgan_file(tmp_path: Path, esrgan: torch.nn.Module) -> Path:
    """``esrgan`` saved as a bare ``.pth`` state dict in the old ESRGAN key names (``model.0.weight``, ...)."""
    path = tmp_path / "1x-gray.pth"
    state = {key: tensor.clone().contiguous() for key, tensor in esrgan.state_dict().items()}
    assert "model.0.weight" in state
    torch.save(state, path)
    return path


def _reference(esrgan: torch.nn.Module, frames: torch.Tensor, in_channels: int) -> torch.Tensor:
    """The network run directly on the luma (grayscale input) or RGB, clamped, as ``[N, H, W, 3]`` frames."""
    images = _luma(frames) if in_channels == 1 else frames.permute(0, 3, 1, 2)
    with torch.no_grad():
        output = esrgan(images).clamp(0, 1)
    return output.expand(-1, 3, -1, -1).permute(0, 2, 3, 1)


def test_grayscale_channels_are_detected(manager: ModelManager, esrgan_file: Path, channels: tuple[int, int]) -> None:
    model = load_upscale_model(manager, esrgan_file)
    assert (model.input_channels, model.output_channels) == channels
    assert model.architecture == "ESRGAN" and model.scale == SCALE


@pytest.mark.parametrize("tile_size", [4096, 32], ids=["untiled", "tiled"])
def test_grayscale_model_upscales_the_luma_into_rgb_frames(
    manager: ModelManager, esrgan_file: Path, esrgan: torch.nn.Module, channels: tuple[int, int], tile_size: int
) -> None:
    model = load_upscale_model(manager, esrgan_file)
    frames = _frames(2, HEIGHT, WIDTH, seed=3)
    options = TileOptions(tile_size=tile_size, overlap=8 if tile_size < 4096 else 0)
    result = _upscaled(manager, model, frames, options)
    assert result.shape == (2, HEIGHT * SCALE, WIDTH * SCALE, 3)
    if channels[1] == 1:
        assert torch.equal(result[..., 0], result[..., 1]) and torch.equal(result[..., 0], result[..., 2])
    assert float(result.std()) > 0.01  # not flattened to a constant by the clamp
    difference = float((result - _reference(esrgan, frames, channels[0])).abs().max())
    if tile_size >= 4096:
        assert difference < 1e-5
    else:
        assert len(tile_spans(HEIGHT, tile_size, 8)) > 1 and len(tile_spans(WIDTH, tile_size, 8)) > 1
        assert difference < 0.02  # test_tiling's SEAM_BOUND


def test_grayscale_input_is_the_luma_not_one_channel(manager: ModelManager, tmp_path: Path) -> None:
    """Pure red, green and blue frames of equal luma upscale alike; frames of other luma do not."""
    esrgan = _tiny_esrgan(1, 1, seed=11)
    path = tmp_path / "gray.pth"
    torch.save(esrgan.state_dict(), path)
    model = load_upscale_model(manager, path)
    level = 0.1
    frames = torch.zeros(3, 16, 16, 3)
    for channel, weight in enumerate(LUMA):
        frames[channel, ..., channel] = level / weight  # each frame's luma is `level`
    result = _upscaled(manager, model, frames, TileOptions(tile_size=4096, overlap=0))
    assert float((result[0] - result[1]).abs().max()) < 1e-5
    assert float((result[0] - result[2]).abs().max()) < 1e-5
    brighter = _upscaled(manager, model, torch.full((1, 16, 16, 3), 0.8), TileOptions(tile_size=4096, overlap=0))
    assert float((brighter[0] - result[0]).abs().max()) > 1e-3


# --- running out of memory ----------------------------------------------------------------------------------------


class _TileLimit:
    """Fault injection for ``UpscaleNetwork.forward``: raises ``error()`` for inputs with a side over ``limit``,
    otherwise runs the real network; records every input's ``(height, width)``."""

    def __init__(self, limit: int, error: Callable[[], BaseException]) -> None:
        self.limit = limit
        self.error = error
        self.sizes: list[tuple[int, int]] = []
        self.original = UpscaleNetwork.forward

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        original, limit = self.original, self

        def forward(network: UpscaleNetwork, images: torch.Tensor) -> torch.Tensor:
            limit.sizes.append((images.shape[-2], images.shape[-1]))
            if max(images.shape[-2:]) > limit.limit:
                raise limit.error()
            return original(network, images)

        monkeypatch.setattr(UpscaleNetwork, "forward", forward)

    @property
    def refused(self) -> int:
        return sum(max(size) > self.limit for size in self.sizes)


OOM_ERRORS: dict[str, Callable[[], BaseException]] = {
    "torch-oom": lambda: torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
    "runtime-error": lambda: RuntimeError("CUDA error: out of memory"),
}


@pytest.fixture(params=sorted(OOM_ERRORS))
def oom_error(request: pytest.FixtureRequest) -> Callable[[], BaseException]:
    """An allocator failure as torch raises it: ``torch.OutOfMemoryError`` or a plain ``RuntimeError``."""
    return OOM_ERRORS[request.param]


def _step_down_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == tiling.__name__ and record.levelno == logging.WARNING and "retrying" in record.getMessage()
    ]


def test_a_tile_that_runs_out_of_memory_is_stepped_down_and_kept(
    manager: ModelManager,
    upscale_folder: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    oom_error: Callable[[], BaseException],
) -> None:
    model = load_upscale_model(manager, upscale_folder / COMPACT)
    frames = _frames(3, OOM_HEIGHT, OOM_WIDTH, seed=9)
    expected = _upscaled(manager, model, frames, TileOptions(tile_size=FITTING_TILE, overlap=OVERLAP, batch_size=1))

    limit = _TileLimit(FITTING_TILE, oom_error)
    limit.install(monkeypatch)
    done: list[int] = []
    with caplog.at_level(logging.WARNING):
        batches = list(
            upscale_batches(
                manager, model, [frames], TileOptions(tile_size=BIG_TILE, overlap=OVERLAP, batch_size=1), done.append
            )
        )

    assert done == [1, 2, 3]
    result = torch.cat(batches)
    assert result.shape == (3, OOM_HEIGHT * model.scale, OOM_WIDTH * model.scale, 3)
    assert torch.equal(result, expected)  # the same tiles as asking for the fitting tile size directly
    assert limit.refused == 1  # the big tile was tried once, in the first batch only
    tiles_per_frame = len(tile_spans(OOM_HEIGHT, FITTING_TILE, OVERLAP)) * len(
        tile_spans(OOM_WIDTH, FITTING_TILE, OVERLAP)
    )
    assert len(limit.sizes) == 1 + 3 * tiles_per_frame
    assert _step_down_warnings(caplog) == [
        f"out of memory upscaling in tiles of {BIG_TILE}; retrying in tiles of {FITTING_TILE}"
    ]
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]  # recovered: no error logged


def test_the_step_down_goes_through_every_smaller_tile_size_until_one_fits(
    manager: ModelManager, upscale_folder: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    model = load_upscale_model(manager, upscale_folder / COMPACT)
    frames = _frames(1, OOM_HEIGHT, OOM_WIDTH, seed=10)
    expected = _upscaled(manager, model, frames, TileOptions(tile_size=MIN_TILE, overlap=8))

    limit = _TileLimit(MIN_TILE, OOM_ERRORS["torch-oom"])
    limit.install(monkeypatch)
    with caplog.at_level(logging.WARNING):
        result = _upscaled(manager, model, frames, TileOptions(tile_size=BIG_TILE, overlap=8))

    assert torch.equal(result, expected)
    assert limit.refused == 2  # 64, then 48
    assert _step_down_warnings(caplog) == [
        f"out of memory upscaling in tiles of {BIG_TILE}; retrying in tiles of {FITTING_TILE}",
        f"out of memory upscaling in tiles of {FITTING_TILE}; retrying in tiles of {MIN_TILE}",
    ]


def test_running_out_of_memory_at_the_smallest_tile_raises_a_model_out_of_memory_error(
    manager: ModelManager,
    upscale_folder: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    oom_error: Callable[[], BaseException],
) -> None:
    model = load_upscale_model(manager, upscale_folder / COMPACT)
    limit = _TileLimit(0, oom_error)  # nothing fits
    limit.install(monkeypatch)
    frames = _frames(2, OOM_HEIGHT, OOM_WIDTH, seed=12)
    with caplog.at_level(logging.WARNING), pytest.raises(ModelOutOfMemoryError) as raised:
        list(upscale_batches(manager, model, [frames], TileOptions(tile_size=BIG_TILE, overlap=8, batch_size=2)))

    error = raised.value
    assert error.key == model.handle.key
    assert "out of memory" in str(error)
    assert error.attempts and all("out of memory" in attempt.error.lower() for attempt in error.attempts)
    assert isinstance(error.__cause__, type(oom_error()))
    assert len(_step_down_warnings(caplog)) == 2  # 64 -> 48 -> 32, then no smaller tile
    assert min(max(size) for size in limit.sizes) <= MIN_TILE  # the smallest tile was really tried
    assert limit.refused == len(limit.sizes) == 2 + len(error.attempts)  # no run went on after a failure

    monkeypatch.undo()  # memory is back: the model runs again, with no placement left over from the failures
    assert _upscaled(manager, model, frames, TileOptions(tile_size=BIG_TILE, overlap=8)).shape[0] == 2


def test_other_errors_are_not_mistaken_for_running_out_of_memory(
    manager: ModelManager, upscale_folder: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    model = load_upscale_model(manager, upscale_folder / COMPACT)
    limit = _TileLimit(FITTING_TILE, lambda: ValueError("broken network"))
    limit.install(monkeypatch)
    with caplog.at_level(logging.WARNING), pytest.raises(ValueError, match="broken network"):
        _upscaled(manager, model, _frames(1, OOM_HEIGHT, OOM_WIDTH), TileOptions(tile_size=BIG_TILE, overlap=8))
    assert limit.refused == 1 and not _step_down_warnings(caplog)
