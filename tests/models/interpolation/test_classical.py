"""The weights-free interpolator: its flow finds known motion, and its frames beat plain blending on a clip whose
true in-between frames are known."""

from __future__ import annotations

import pytest
import torch

from models.interpolation.classical import FlowBlendInterpolator, estimate_flow
from models.interpolation.warp import backward_warp
from tests.models.interpolation.synthetic import moving_square_clip, textured_background


def psnr(made: torch.Tensor, truth: torch.Tensor) -> float:
    return float(10 * torch.log10(1 / (made - truth).pow(2).mean()))


def channels_first(frames: torch.Tensor) -> torch.Tensor:
    return frames.permute(0, 3, 1, 2).contiguous()


def test_backward_warp_samples_where_the_flow_points() -> None:
    image = torch.rand(2, 3, 9, 11)
    flow = torch.zeros(2, 2, 9, 11)

    assert torch.allclose(backward_warp(image, flow), image, atol=1e-6)
    flow[:, 0] = 2.0
    flow[:, 1] = -1.0
    shifted = backward_warp(image, flow)
    assert torch.allclose(shifted[:, :, 1:, :-2], image[:, :, :-1, 2:], atol=1e-5)
    assert torch.allclose(shifted[:, :, 0, :-2], image[:, :, 0, 2:], atol=1e-5)  # border repeated


@pytest.mark.parametrize("shift", [(1.5, 0.5), (4.0, 2.0), (7.0, -3.0)])
def test_flow_of_a_translated_texture(shift: tuple[float, float]) -> None:
    source = channels_first(textured_background(80).unsqueeze(0))
    motion = torch.tensor(shift).view(1, 2, 1, 1).expand(1, 2, 80, 80)
    target = backward_warp(source, -motion)  # the texture moved by ``shift``

    flow = estimate_flow(source, target)[:, :, 16:-16, 16:-16]

    assert flow.mean(dim=(2, 3)).flatten().tolist() == pytest.approx(list(shift), abs=0.05)
    assert float((flow - motion[:, :, 16:-16, 16:-16]).abs().mean()) < 0.1


@pytest.mark.parametrize(("multiplier", "step"), [(2, (2, 1)), (3, (2, 1)), (4, (1, 1))])
def test_beats_plain_blending_on_a_moving_square(multiplier: int, step: tuple[int, int]) -> None:
    clip = moving_square_clip(3 * multiplier + 1, step=step)  # the frames between each kept pair are the truth
    kept = channels_first(clip[::multiplier])
    interpolator = FlowBlendInterpolator()
    made_psnr, blend_psnr = [], []
    for offset in range(1, multiplier):
        t = offset / multiplier
        times = torch.full((kept.shape[0] - 1,), t)
        truth = channels_first(clip[offset::multiplier][: kept.shape[0] - 1])
        made = interpolator.between(None, kept[:-1], kept[1:], times)
        made_psnr.append(psnr(made, truth))
        blend_psnr.append(psnr((1 - t) * kept[:-1] + t * kept[1:], truth))

    print(f"multiplier {multiplier}: classical PSNR {made_psnr}, plain blending {blend_psnr}")
    assert all(made > blend + 8.0 for made, blend in zip(made_psnr, blend_psnr, strict=True))
    assert min(made_psnr) > 35.0


def test_pairs_repeated_for_several_times_match_separate_calls() -> None:
    clip = channels_first(moving_square_clip(3, size=32))
    interpolator = FlowBlendInterpolator()
    first = torch.stack((clip[0], clip[0], clip[0], clip[1]))
    second = torch.stack((clip[1], clip[1], clip[1], clip[2]))
    times = torch.tensor([0.25, 0.5, 0.75, 0.5])

    together = interpolator.between(None, first, second, times)
    apart = torch.cat(
        [interpolator.between(None, first[i : i + 1], second[i : i + 1], times[i : i + 1]) for i in range(4)]
    )

    assert torch.allclose(together, apart, atol=1e-6)
    assert together.shape == (4, 3, 32, 32)
    assert float(together.min()) >= 0.0 and float(together.max()) <= 1.0


def test_still_frames_stay_still() -> None:
    frame = channels_first(textured_background(24).unsqueeze(0))

    made = FlowBlendInterpolator().between(None, frame, frame, torch.tensor([0.3]))

    assert torch.allclose(made, frame, atol=1e-5)


def test_describes_itself_and_estimates_its_memory() -> None:
    interpolator = FlowBlendInterpolator()

    assert interpolator.handle is None
    assert "optical flow" in interpolator.describe()
    assert (
        interpolator.work_estimate(2, 64, 64).activation_bytes > interpolator.work_estimate(1, 64, 64).activation_bytes
    )


def test_mismatched_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="between needs"):
        FlowBlendInterpolator().between(None, torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 9), torch.tensor([0.5]))
