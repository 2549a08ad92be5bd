"""Loading upscale model files through spandrel: detection, safe reading, clear errors, the memory manager."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from models.errors import UnsafeModelFileError
from models.memory import ModelManager
from models.tiny.upscale import SPAN_PTH, SPAN_SAFETENSORS, TINY_UPSCALE_KINDS, TINY_UPSCALE_NAMES
from models.upscale.model import WrongUpscaleFileError, load_upscale_model, read_upscale_state_dict
from models.upscale.spandrel_import import normalize

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("name", TINY_UPSCALE_NAMES)
def test_each_file_is_detected_with_its_architecture_and_scale(
    manager: ModelManager, upscale_folder: Path, name: str
) -> None:
    model = load_upscale_model(manager, upscale_folder / name)
    architecture, scale = TINY_UPSCALE_KINDS[name]
    assert (model.name, model.architecture, model.scale) == (name, architecture, scale)
    assert model.input_channels == model.output_channels == 3
    frames = torch.rand(1, 3, 20, 24, generator=torch.Generator().manual_seed(1))
    with model.handle.use() as network:
        output = network(frames)
    assert output.shape == (1, 3, 20 * scale, 24 * scale)
    assert 0.0 <= float(output.min()) and float(output.max()) <= 1.0
    assert float(output.std()) > 1e-3  # not clamped flat: the tiny weights give a real picture


def test_unshuffle_esrgan_needs_multiples_of_four(manager: ModelManager, upscale_folder: Path) -> None:
    model = load_upscale_model(manager, upscale_folder / "RealESRGAN_x2plus.pth")
    assert model.size.multiple_of == 4
    assert model.size.padded(21, 30) == (24, 32)


def test_window_attention_models_tile_on_their_window(manager: ModelManager, upscale_folder: Path) -> None:
    swinir = load_upscale_model(manager, upscale_folder / "001_classicalSR_DF2K_s64w8_SwinIR-M_x2.pth")
    assert swinir.tile_multiple == 4
    assert swinir.tiling == "discouraged"


def test_pth_and_safetensors_of_one_model_agree(manager: ModelManager, upscale_folder: Path) -> None:
    frames = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    outputs = []
    for name in (SPAN_PTH, SPAN_SAFETENSORS):
        with load_upscale_model(manager, upscale_folder / name).handle.use() as network:
            outputs.append(network(frames))
    assert torch.equal(outputs[0], outputs[1])


def test_a_file_of_no_upscale_architecture_is_named(manager: ModelManager, tmp_path: Path) -> None:
    path = tmp_path / "not_an_upscaler.safetensors"
    save_file({"blocks.0.attn.to_q.weight": torch.zeros(4, 4)}, str(path))
    with pytest.raises(WrongUpscaleFileError, match=r"not_an_upscaler\.safetensors: .*no upscale architecture"):
        load_upscale_model(manager, path)


class _RunsCode:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("this must never run",))


def test_pickles_that_need_code_are_refused_before_anything_runs(
    manager: ModelManager, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "4x-evil.pth"
    torch.save({"params": {"body.0.weight": torch.zeros(1)}, "payload": _RunsCode()}, path)
    with pytest.raises(UnsafeModelFileError, match=r"4x-evil\.pth"):
        load_upscale_model(manager, path)
    legacy = tmp_path / "4x-legacy.pth"
    legacy.write_bytes(pickle.dumps(_RunsCode(), protocol=2))
    with pytest.raises(UnsafeModelFileError, match=r"4x-legacy\.pth"):
        read_upscale_state_dict(legacy)
    assert "must never run" not in capfd.readouterr().out


def test_release_wrappers_are_unwrapped(upscale_folder: Path) -> None:
    state = read_upscale_state_dict(upscale_folder / "RealESRGAN_x4plus.pth")  # {"params_ema": {...}} on disk
    assert "conv_first.weight" in state and "body.0.rdb1.conv1.weight" in state


def test_the_manager_reloads_the_file_after_unloading(manager: ModelManager, upscale_folder: Path) -> None:
    model = load_upscale_model(manager, upscale_folder / "realesr-general-x4v3.pth")
    frames = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    with model.handle.use() as network:
        before = network(frames)
    assert model.handle.loads == 1  # the network built while detecting was handed over, not read again
    manager.free()
    with model.handle.use() as network:
        after = network(frames)
    assert model.handle.loads == 2
    assert torch.equal(before, after)
    assert load_upscale_model(manager, upscale_folder / "realesr-general-x4v3.pth").handle is model.handle


def test_spandrel_imports_without_torchvision_and_leaves_none_behind() -> None:
    code = (
        "import importlib.util, sys\n"
        "from models.upscale.spandrel_import import import_spandrel\n"
        "has_torchvision = importlib.util.find_spec('torchvision') is not None\n"
        "spandrel = import_spandrel()\n"
        "assert spandrel.MAIN_REGISTRY.get('RestoreFormer') is not None\n"
        "if not has_torchvision:\n"
        "    assert not any(name.split('.')[0] == 'torchvision' for name in sys.modules), 'stand-in left behind'\n"
        "    assert importlib.util.find_spec('torchvision') is None\n"
        "print('ok', has_torchvision)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok")


def test_the_stand_in_normalize_is_torchvisions_formula() -> None:
    images = torch.rand(2, 3, 4, 5, generator=torch.Generator().manual_seed(4))
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.5)
    expected = (images - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)
    assert torch.allclose(normalize(images, mean, std), expected)
    with pytest.raises(ValueError, match="zero"):
        normalize(images, mean, (0.2, 0.0, 0.5))
