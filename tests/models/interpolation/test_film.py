"""FILM from a TorchScript export: loading with torch.jit.load, the signature check, and making frames."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from models.errors import NotAFrameInterpolatorError
from models.interpolation.film import FilmInterpolator, is_torchscript_archive, load_film_module
from models.interpolation.loading import load_frame_interpolator
from models.memory import ModelManager
from models.tiny.interpolation import FILM_FILE, RIFE46_FILE, TinyFilmNet


class TwoInputs(nn.Module):
    def forward(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        return (first + second) / 2


def _frames(batch: int, height: int, width: int, seed: int) -> torch.Tensor:
    return torch.rand(batch, 3, height, width, generator=torch.Generator().manual_seed(seed))


def test_the_export_loads_and_makes_frames_at_the_given_times(
    manager: ModelManager, tiny_interpolation_dir: Path
) -> None:
    path = tiny_interpolation_dir / FILM_FILE
    interpolator = load_frame_interpolator(manager, path)
    assert isinstance(interpolator, FilmInterpolator)
    assert (interpolator.name, interpolator.pad_multiple) == ("film_net_fp32.pt", 1)
    assert interpolator.describe() == "FILM (TorchScript export)"
    first, second = _frames(2, 37, 45, seed=1), _frames(2, 37, 45, seed=2)  # the export takes any size
    times = torch.tensor([0.5, 0.2])
    with interpolator.handle.use() as module:
        assert isinstance(module, torch.jit.ScriptModule)
        made = interpolator.between(module, first, second, times)
    assert made.shape == (2, 3, 37, 45) and made.min() >= 0 and made.max() <= 1
    eager = TinyFilmNet()  # the same network run by Python from the archive's weights
    eager.load_state_dict(torch.jit.load(str(path), map_location="cpu").state_dict())
    with torch.no_grad():
        expected = eager(first, second, times.view(-1, 1)).clamp(0, 1)
    torch.testing.assert_close(made, expected, atol=1e-6, rtol=0)
    assert (made[1] - interpolator_at(interpolator, first[1:], second[1:], 0.8)[0]).abs().max() > 1e-4


def interpolator_at(
    interpolator: FilmInterpolator, first: torch.Tensor, second: torch.Tensor, t: float
) -> torch.Tensor:
    with interpolator.handle.use() as module:
        return interpolator.between(module, first, second, torch.full((first.shape[0],), t))


def test_a_torchscript_archive_without_films_signature_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "film_net_fp32.pt"
    torch.jit.save(torch.jit.script(TwoInputs()), str(path))
    assert is_torchscript_archive(path)
    with pytest.raises(NotAFrameInterpolatorError, match=r"film_net_fp32\.pt: a TorchScript module with forward\("):
        load_film_module(path)


def test_only_torchscript_archives_count_as_film(tiny_interpolation_dir: Path) -> None:
    assert is_torchscript_archive(tiny_interpolation_dir / FILM_FILE)
    assert not is_torchscript_archive(tiny_interpolation_dir / RIFE46_FILE)  # a torch.save zip


def test_film_has_no_scale_factor(manager: ModelManager, tiny_interpolation_dir: Path) -> None:
    with pytest.raises(ValueError, match="FILM has no scale_factor"):
        load_frame_interpolator(manager, tiny_interpolation_dir / FILM_FILE, scale_factor=0.5)
