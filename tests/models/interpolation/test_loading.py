"""``load_frame_interpolator``: every file is detected by content, shared through the memory manager, and a file
that is no interpolation model is refused clearly."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from models.errors import CorruptModelFileError, NotAFrameInterpolatorError, UnsafeModelFileError
from models.interpolation.film import FilmInterpolator
from models.interpolation.loading import load_frame_interpolator
from models.interpolation.rife import RifeInterpolator
from models.loading import load_state_dict
from models.memory import ModelManager
from models.tiny.interpolation import FILM_FILE, RIFE46_FILE, RIFE47_FILE


@pytest.mark.parametrize(
    ("name", "kind", "description"),
    [
        (RIFE46_FILE, RifeInterpolator, "RIFE 4.6 (IFNet, 4 blocks)"),
        (RIFE47_FILE, RifeInterpolator, "RIFE 4.7-4.9 (IFNet, 4 blocks)"),
        (FILM_FILE, FilmInterpolator, "FILM (TorchScript export)"),
    ],
)
def test_each_tiny_file_is_detected(
    manager: ModelManager, tiny_interpolation_dir: Path, name: str, kind: type, description: str
) -> None:
    interpolator = load_frame_interpolator(manager, tiny_interpolation_dir / name)
    assert type(interpolator) is kind
    assert interpolator.describe() == description
    assert interpolator.name == Path(name).name
    assert interpolator.handle is not None and interpolator.handle.nbytes > 0
    assert load_frame_interpolator(manager, tiny_interpolation_dir / name).handle is interpolator.handle


def test_the_module_prefix_and_the_file_name_do_not_matter(
    manager: ModelManager, tiny_interpolation_dir: Path, tmp_path: Path
) -> None:
    """rife47.pth carries ``module.``; the same tensors as a safetensors file under another name load the same."""
    state = load_state_dict(tiny_interpolation_dir / RIFE47_FILE)
    assert all(key.startswith("module.") for key in state)
    renamed = tmp_path / "flownet.safetensors"
    save_file({key.removeprefix("module."): value.contiguous() for key, value in state.items()}, renamed)
    pickle = tmp_path / "flownet.pkl"
    shutil.copy(tiny_interpolation_dir / RIFE47_FILE, pickle)
    first = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    second = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    made = []
    for path in (tiny_interpolation_dir / RIFE47_FILE, renamed, pickle):
        interpolator = load_frame_interpolator(manager, path)
        assert interpolator.describe() == "RIFE 4.7-4.9 (IFNet, 4 blocks)"
        with interpolator.handle.use() as module:
            made.append(interpolator.between(module, first, second, torch.tensor([0.5])))
    assert torch.equal(made[0], made[1]) and torch.equal(made[0], made[2])


def test_a_file_of_another_model_is_refused_naming_what_it_holds(manager: ModelManager, tmp_path: Path) -> None:
    path = tmp_path / "4x-UltraSharp.safetensors"
    save_file({"conv_first.weight": torch.zeros(8, 3, 3, 3), "conv_first.bias": torch.zeros(8)}, path)
    with pytest.raises(NotAFrameInterpolatorError) as refused:
        load_frame_interpolator(manager, path)
    message = str(refused.value)
    assert message.startswith("4x-UltraSharp.safetensors: not a RIFE v4.x checkpoint")
    assert "FILM TorchScript export" in message and "conv_first" in message


def test_a_rife_checkpoint_with_a_missing_tensor_is_corrupt(
    manager: ModelManager, tiny_interpolation_dir: Path, tmp_path: Path
) -> None:
    state = load_state_dict(tiny_interpolation_dir / RIFE46_FILE)
    del state["block2.convblock.3.beta"]
    path = tmp_path / "rife46.pth"
    torch.save(state, path)
    with pytest.raises(CorruptModelFileError, match=r"rife46\.pth: .*block2\.convblock\.3\.beta"):
        load_frame_interpolator(manager, path)


def test_mismatched_block_channels_are_corrupt(
    manager: ModelManager, tiny_interpolation_dir: Path, tmp_path: Path
) -> None:
    state = load_state_dict(tiny_interpolation_dir / RIFE47_FILE)
    state = {key: value for key, value in state.items() if not key.startswith("module.encode.")}
    path = tmp_path / "rife47_without_encoder.pth"
    torch.save(state, path)
    with pytest.raises(CorruptModelFileError, match=r"block0 takes 15 channels; two frames with 0 feature"):
        load_frame_interpolator(manager, path)


def test_a_pickle_that_needs_code_is_refused(manager: ModelManager, tmp_path: Path) -> None:
    path = tmp_path / "rife49.pth"
    torch.save({"block0.conv0.0.0.weight": torch.zeros(1), "config": Path("x")}, path)
    with pytest.raises(UnsafeModelFileError, match=r"rife49\.pth"):
        load_frame_interpolator(manager, path)
