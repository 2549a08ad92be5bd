"""RIFE v4.x: backward warping, the IFNet of every version family, and the interpolator over the tiny checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from models.interpolation.loading import load_frame_interpolator
from models.interpolation.rife import RifeInterpolator
from models.interpolation.rife_layout import BlockLayout, EncoderLayout, RifeLayout, read_rife_layout
from models.interpolation.rife_net import IFNet
from models.interpolation.run import interpolate_clip
from models.interpolation.timing import multiplier_timeline
from models.interpolation.warp import backward_warp
from models.memory import ModelManager
from models.tiny.interpolation import RIFE46_FILE, RIFE47_FILE, TINY_RIFE_LAYOUTS

SIZE = 64


def _frames(batch: int, height: int = SIZE, width: int = SIZE, seed: int = 0) -> torch.Tensor:
    return torch.rand(batch, 3, height, width, generator=torch.Generator().manual_seed(seed))


def _load(manager: ModelManager, path: Path, scale_factor: float = 1.0) -> RifeInterpolator:
    interpolator = load_frame_interpolator(manager, path, scale_factor=scale_factor)
    assert isinstance(interpolator, RifeInterpolator)
    return interpolator


def _between(
    interpolator: RifeInterpolator, first: torch.Tensor, second: torch.Tensor, times: torch.Tensor
) -> torch.Tensor:
    with interpolator.handle.use() as module:
        return interpolator.between(module, first, second, times)


def _heads_zeroed(layout: RifeLayout) -> IFNet:
    """An IFNet whose blocks all output zero flow and a zero mask (sigmoid 0.5: an even blend)."""
    network = IFNet(layout)
    with torch.no_grad():
        for parameter in network.parameters():
            parameter.mul_(0.5)  # random, but tamed, everywhere else
        for index in range(len(layout.blocks)):
            head = getattr(network, f"block{index}").lastconv[0]
            head.weight.zero_()
            head.bias.zero_()
    return network


def test_backward_warp_samples_where_the_flow_points() -> None:
    image = _frames(2, 16, 20)
    flow = torch.zeros(2, 2, 16, 20)
    flow[:, 0] = -3.0  # every pixel takes the value three pixels to its left: the image moves right by 3
    flow[:, 1] = 2.0  # and the value two rows below: the image moves up by 2
    warped = backward_warp(image, flow)
    torch.testing.assert_close(warped[:, :, :-2, 3:], image[:, :, 2:, :-3], atol=1e-5, rtol=0)
    half = torch.zeros(2, 2, 16, 20)
    half[:, 0] = 0.5
    between = backward_warp(image, half)
    torch.testing.assert_close(between[..., :-1], (image[..., :-1] + image[..., 1:]) / 2, atol=1e-5, rtol=0)


def test_backward_warp_takes_the_border_outside_the_image() -> None:
    image = _frames(1, 8, 8)
    flow = torch.zeros(1, 2, 8, 8)
    flow[:, 0] = 100.0
    torch.testing.assert_close(backward_warp(image, flow), image[..., -1:].expand_as(image), atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="does not match"):
        backward_warp(image, torch.zeros(1, 2, 8, 9))


@pytest.mark.parametrize(("name", "version"), [(RIFE46_FILE, "4.6"), (RIFE47_FILE, "4.7-4.9")])
def test_tiny_checkpoints_make_frames_at_any_time(
    manager: ModelManager, tiny_interpolation_dir: Path, name: str, version: str
) -> None:
    interpolator = _load(manager, tiny_interpolation_dir / name)
    assert interpolator.describe() == f"RIFE {version} (IFNet, 4 blocks)"
    assert interpolator.pad_multiple == 32
    first, second = _frames(2, seed=1), _frames(2, seed=2)
    made = _between(interpolator, first, second, torch.tensor([0.5, 0.25]))
    assert made.shape == (2, 3, SIZE, SIZE) and made.dtype == torch.float32
    assert made.min() >= 0 and made.max() <= 1
    alone = _between(interpolator, first[1:], second[1:], torch.tensor([0.25]))
    torch.testing.assert_close(made[1:], alone, atol=1e-5, rtol=0)  # pairs of a batch do not mix
    later = _between(interpolator, first[1:], second[1:], torch.tensor([0.75]))
    assert (later - alone).abs().max() > 1e-4  # the time is an input


@pytest.mark.parametrize("name", [RIFE46_FILE, RIFE47_FILE])
def test_zero_flow_and_even_mask_blend_the_frames(manager: ModelManager, tmp_path: Path, name: str) -> None:
    path = tmp_path / "rife_blend.pth"
    torch.save(_heads_zeroed(TINY_RIFE_LAYOUTS[name]).state_dict(), path)
    interpolator = _load(manager, path)
    first, second = _frames(1, seed=3), _frames(1, seed=4)
    made = _between(interpolator, first, second, torch.tensor([0.3]))
    torch.testing.assert_close(made, (first + second) / 2, atol=1e-5, rtol=0)
    torch.testing.assert_close(_between(interpolator, first, first, torch.tensor([0.5])), first, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", [RIFE46_FILE, RIFE47_FILE])
def test_a_constant_flow_puts_a_moving_square_midway(manager: ModelManager, tmp_path: Path, name: str) -> None:
    """The coarsest block's flow output (at 1/8 of the size) is scaled to full-size pixels, flows 0-1 point to
    frame 0 and 2-3 to frame 1, and both warped frames blend to the true middle frame."""
    shift = 4.0
    network = _heads_zeroed(TINY_RIFE_LAYOUTS[name])
    with torch.no_grad():  # lastconv's pixel shuffle makes output channel k of its input channels 4k..4k+3
        bias = network.block0.lastconv[0].bias
        bias[0:4] = -shift / network.layout.coarsest_scale  # flow towards frame 0: x - shift
        bias[8:12] = shift / network.layout.coarsest_scale  # flow towards frame 1: x + shift
    path = tmp_path / "rife_shift.pth"
    torch.save(network.state_dict(), path)
    interpolator = _load(manager, path)
    frames = torch.full((3, 1, 3, SIZE, SIZE), 0.2)
    for index, left in enumerate((20, 24, 28)):  # the square moves 4 pixels a frame
        frames[index, :, :, 24:40, left : left + 16] = 0.9
    made = _between(interpolator, frames[0], frames[2], torch.tensor([0.5]))
    torch.testing.assert_close(made, frames[1], atol=1e-5, rtol=0)


def _block(in_channels: int, width: int, **changes: object) -> BlockLayout:
    values: dict[str, object] = {
        "in_channels": in_channels,
        "width": width,
        "prelu": False,
        "residual_layers": True,
        "depth": 2,
        "out_channels": 6,
        "shuffled": True,
    }
    values.update(changes)
    return BlockLayout(**values)  # type: ignore[arg-type]


HEAD = EncoderLayout(("cnn0", "cnn1", "cnn2", "cnn3"), ((3, 8), (8, 8), (8, 8), (8, 4)), activated=True)
SEQUENTIAL = EncoderLayout(("0", "2", "4", "6"), ((3, 8), (8, 8), (8, 8), (8, 8)), activated=True)
PRELU = {"prelu": True, "residual_layers": False, "out_channels": 5, "shuffled": False}
FAMILIES = {
    "4.0-4.1": RifeLayout(tuple(_block(7 if i == 0 else 12, 8, **PRELU) for i in range(4)), None, 0),
    "4.2-4.4": RifeLayout(
        tuple(_block(7 if i == 0 else 12, 8, residual_layers=False, out_channels=5, shuffled=False) for i in range(4)),
        None,
        0,
    ),
    "4.5": RifeLayout(tuple(_block(7 if i == 0 else 12, 8, out_channels=5) for i in range(4)), None, 0),
    "4.10-4.21": RifeLayout(tuple(_block(23 if i == 0 else 28, 8) for i in range(4)), SEQUENTIAL, 0),
    "4.22+": RifeLayout(tuple(_block(15 if i == 0 else 28, 8, out_channels=13) for i in range(4)), HEAD, 8),
    "4.25+": RifeLayout(tuple(_block(15 if i == 0 else 28, 8, out_channels=13) for i in range(5)), HEAD, 8),
    "4.25-lite": RifeLayout(
        tuple(_block(15 if i == 0 else 28, 24 if i == 4 else 8, out_channels=13) for i in range(5)), HEAD, 8
    ),
}
PAD_MULTIPLES = {"4.0-4.1": 64, "4.25+": 64, "4.25-lite": 128}
"""Frame sides at scale factor 1: 32 for four blocks, twice that where v4.0-4.1 may re-estimate at twice the
coarseness or five blocks start at 1/16, 128 where v4.25-lite's start at 1/32."""


@pytest.mark.parametrize("version", list(FAMILIES))
def test_every_version_family_is_read_back_from_its_tensors(version: str) -> None:
    layout = FAMILIES[version]
    network = IFNet(layout)
    assert read_rife_layout(network.state_dict()) == layout
    assert layout.version() == version
    side = layout.pad_multiple(1.0)
    assert side == PAD_MULTIPLES.get(version, 32)
    with torch.no_grad():
        made = network(_frames(1, side, side, seed=5), _frames(1, side, side, seed=6), torch.tensor([0.5]))
    assert made.shape == (1, 3, side, side) and torch.isfinite(made).all()


def test_grouped_residual_layers_are_read_back() -> None:
    layout = RifeLayout(tuple(_block(23 if i == 0 else 28, 8, groups=2) for i in range(4)), SEQUENTIAL, 0)
    network = IFNet(layout)
    assert network.block0.convblock[0].conv.weight.shape == (8, 4, 3, 3)
    assert read_rife_layout(network.state_dict()) == layout


def test_scale_factor_sets_the_padding_and_runs(manager: ModelManager, tiny_interpolation_dir: Path) -> None:
    path = tiny_interpolation_dir / RIFE47_FILE
    half = _load(manager, path, scale_factor=0.5)
    assert (half.pad_multiple, _load(manager, path, 0.25).pad_multiple, _load(manager, path, 2.0).pad_multiple) == (
        64,
        128,
        32,
    )
    assert half.describe() == "RIFE 4.7-4.9 (IFNet, 4 blocks, scale factor 0.5)"
    first, second = _frames(1, seed=7), _frames(1, seed=8)
    fine = _between(_load(manager, path), first, second, torch.tensor([0.5]))
    coarse = _between(half, first, second, torch.tensor([0.5]))
    assert coarse.shape == fine.shape and (coarse - fine).abs().max() > 1e-4
    with pytest.raises(ValueError, match=r"rife47\.pth: scale_factor must be one of 0\.25, 0\.5, 1, 2, 4"):
        _load(manager, path, scale_factor=0.3)


def test_between_refuses_frames_that_are_not_padded(manager: ModelManager, tiny_interpolation_dir: Path) -> None:
    interpolator = _load(manager, tiny_interpolation_dir / RIFE46_FILE)
    with pytest.raises(ValueError, match=r"rife46\.pth: frame sides \(37, 64\) must be multiples of 32"):
        _between(interpolator, _frames(1, 37), _frames(1, 37), torch.tensor([0.5]))


def test_odd_frame_sizes_are_padded_and_cropped_back(manager: ModelManager, tiny_interpolation_dir: Path) -> None:
    interpolator = _load(manager, tiny_interpolation_dir / RIFE46_FILE)
    clip = torch.rand(3, 37, 45, 3, generator=torch.Generator().manual_seed(9))
    timeline = multiplier_timeline(3, 8.0, 2)
    made = interpolate_clip(manager, interpolator, clip, timeline, batch_size=2)
    assert made.shape == (5, 37, 45, 3)
    assert torch.equal(made[0::2], clip)
    padded = torch.nn.functional.pad(clip.permute(0, 3, 1, 2), (0, 64 - 45, 0, 64 - 37), mode="replicate")
    middle = _between(interpolator, padded[:2], padded[1:], torch.tensor([0.5, 0.5]))
    torch.testing.assert_close(made[1::2], middle[:, :, :37, :45].permute(0, 2, 3, 1), atol=1e-6, rtol=0)


def test_v4_0_re_estimates_large_motion_per_pair(monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch where only one pair's motion is large gives what each pair gives alone: the re-estimation at twice
    the coarseness is decided per pair, so batching never changes a frame."""
    from models.interpolation import rife_net

    network = IFNet(FAMILIES["4.0-4.1"]).eval()
    first, second = _frames(2, 64, 64, seed=1), _frames(2, 64, 64, seed=2)
    first[1], second[1] = 0.4 + 0.2 * first[1], 0.4 + 0.2 * second[1]  # less contrast: a different update
    times = torch.tensor([0.5, 0.4])
    updates: list[torch.Tensor] = []
    decisions: list[torch.Tensor] = []
    original = rife_net._large_motion

    def record_update(update: torch.Tensor) -> torch.Tensor:
        updates.append(update.clone())
        return original(update)

    def record_decision(update: torch.Tensor) -> torch.Tensor:
        decisions.append(original(update))
        return decisions[-1]

    monkeypatch.setattr(rife_net, "_large_motion", record_update)
    with torch.no_grad():
        network(first, second, times)
    # Each pair moves both frames by at least this much somewhere; shift the flow so the limit falls between them.
    reach = torch.minimum(updates[0][:, :2].flatten(1).amax(1), updates[0][:, 2:4].flatten(1).amax(1))
    assert reach[0] != reach[1]
    shift = rife_net.LARGE_MOTION - reach.mean().item()
    with torch.no_grad():
        network.block1.lastconv.bias[:4] += shift / 8  # block1's bare lastconv output is scaled by 8 to pixels
    monkeypatch.setattr(rife_net, "_large_motion", record_decision)
    with torch.no_grad():
        together = network(first, second, times)
        alone = torch.cat([network(first[i : i + 1], second[i : i + 1], times[i : i + 1]) for i in range(2)])
    assert decisions[0].tolist() in ([True, False], [False, True])  # one pair re-estimated, the other not
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=0)
