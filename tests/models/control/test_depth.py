"""Depth estimation with a transformers model folder: the tiny Depth Anything V2 stand-in loads as a release does,
torch preprocessing reproduces its image processor, and depth comes back per frame at the frame size, normalised
over the clip."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from models.control.depth import (
    DepthModel,
    DepthPreprocessing,
    NotADepthModelError,
    estimate_depth,
    load_depth_model,
    normalise_per_clip,
)
from models.errors import CorruptModelFileError
from models.memory import ModelManager
from models.tiny.depth import DEPTH_ANYTHING_V2_SMALL, DEPTH_FOLDER, write_tiny_depth_models

EIGHT_BIT_STEP = 1 / 255


@pytest.fixture(scope="module")
def depth_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    (folder,) = write_tiny_depth_models(tmp_path_factory.mktemp("depth_weights"))
    return folder


@pytest.fixture
def model(manager: ModelManager, depth_folder: Path) -> DepthModel:
    return load_depth_model(manager, depth_folder)


def _frames(count: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(count, height, width, 3, generator=torch.Generator().manual_seed(seed))


def test_the_tiny_model_is_a_release_shaped_folder(depth_folder: Path, model: DepthModel) -> None:
    assert depth_folder.parent.name == DEPTH_FOLDER and depth_folder.name == DEPTH_ANYTHING_V2_SMALL
    assert {path.name for path in depth_folder.iterdir()} == {
        "config.json",
        "model.safetensors",
        "preprocessor_config.json",
    }
    settings = json.loads((depth_folder / "preprocessor_config.json").read_text())
    assert settings["image_processor_type"] == "DPTImageProcessor"
    assert (model.name, model.model_type, model.inverse) == (DEPTH_ANYTHING_V2_SMALL, "depth_anything", True)
    assert model.preprocessing == DepthPreprocessing(
        518, 518, True, 14, "bicubic", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    )


def test_loading_twice_shares_one_model(manager: ModelManager, depth_folder: Path, model: DepthModel) -> None:
    again = load_depth_model(manager, depth_folder)
    assert again.handle is model.handle and model.handle.loads == 1


def test_input_size_keeps_the_aspect_ratio_with_the_smaller_change_and_patch_multiples() -> None:
    keep = DepthPreprocessing(518, 518, True, 14, "bicubic", (0.5,) * 3, (0.5,) * 3)
    assert keep.input_size(480, 640) == (518, 686)  # height scale 1.08 is closer to 1 than 0.81: 690.7 -> 49 * 14
    assert keep.input_size(1080, 1920) == (518, 924)  # 0.48 is closer than 0.27: 920.9 -> 66 * 14
    assert keep.input_size(2, 4000) == (14, 518)  # 1.04 would round to no patch: never below one
    stretch = DepthPreprocessing(384, 384, False, 1, "bicubic", (0.5,) * 3, (0.5,) * 3)
    assert stretch.input_size(480, 640) == (384, 384)


def test_torch_preprocessing_matches_the_image_processor(depth_folder: Path, model: DepthModel) -> None:
    from transformers import AutoImageProcessor

    processor = AutoImageProcessor.from_pretrained(depth_folder, local_files_only=True)
    noise = _frames(1, 45, 61)[0]  # sharp detail: overshoot clipped between PIL's two passes
    rows, columns = torch.meshgrid(torch.linspace(0, 1, 90), torch.linspace(0, 1, 70), indexing="ij")
    smooth = torch.stack((rows, columns, rows * columns), dim=-1)
    for frame in (noise, smooth):
        pixels = (frame * 255).round().to(torch.uint8)
        expected = processor(images=pixels.numpy(), return_tensors="pt")["pixel_values"]
        prepared = model.preprocessing(pixels.float().div(255)[None])
        assert prepared.shape == expected.shape
        std = torch.tensor(model.preprocessing.std).view(1, 3, 1, 1)
        difference = (prepared - expected).abs() * std  # in 0..1 pixel units
        assert difference.max() < 1.5 * EIGHT_BIT_STEP  # PIL rounds to 8 bits after each pass
        assert difference.mean() < 0.5 * EIGHT_BIT_STEP


def test_depth_has_the_frame_size_and_spans_0_to_1_over_the_clip(manager: ModelManager, model: DepthModel) -> None:
    frames = _frames(3, 30, 44)
    done: list[int] = []
    depth = estimate_depth(manager, model, frames, batch_size=2, on_batch=done.append)
    assert depth.shape == (3, 30, 44) and depth.dtype == torch.float32
    assert depth.min() == 0 and depth.max() == 1
    assert done == [2, 3]
    per_frame_spans = [(frame.min().item(), frame.max().item()) for frame in depth]
    assert any(span != (0.0, 1.0) for span in per_frame_spans)  # one scale for the clip, not one per frame
    assert depth.std(dim=(1, 2)).min() > 0.01  # the tiny model's map varies within each frame


def test_a_frame_batch_gives_the_same_depth_as_frames_one_at_a_time(manager: ModelManager, model: DepthModel) -> None:
    frames = _frames(3, 28, 28, seed=1)
    together = estimate_depth(manager, model, frames, batch_size=3)
    alone = estimate_depth(manager, model, frames, batch_size=1)
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=0)


def test_per_clip_normalisation() -> None:
    maps = torch.tensor([[[1.0, 2.0]], [[3.0, 5.0]]])
    np.testing.assert_allclose(normalise_per_clip(maps).numpy(), [[[0.0, 0.25]], [[0.5, 1.0]]])
    assert torch.equal(normalise_per_clip(torch.full((2, 3, 3), 7.0)), torch.zeros(2, 3, 3))


def test_bad_frames_and_batch_size(manager: ModelManager, model: DepthModel) -> None:
    with pytest.raises(ValueError, match=r"frames must be \[frames, height, width, 3\]"):
        estimate_depth(manager, model, torch.rand(2, 8, 8))
    with pytest.raises(ValueError, match="batch_size must be at least 1, got 0"):
        estimate_depth(manager, model, _frames(1, 8, 8), batch_size=0)


def test_other_folders_are_refused_naming_them(manager: ModelManager, tmp_path: Path, depth_folder: Path) -> None:
    from transformers import BertConfig

    empty = tmp_path / "empty-folder"
    empty.mkdir()
    with pytest.raises(NotADepthModelError, match=r"^empty-folder: has no config\.json"):
        load_depth_model(manager, empty)
    text_model = tmp_path / "bert-tiny"
    BertConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=1).save_pretrained(text_model)
    with pytest.raises(NotADepthModelError, match=r"^bert-tiny: holds a 'bert' model .*not a depth estimation model"):
        load_depth_model(manager, text_model)
    diffusers_vae = tmp_path / "vae"
    diffusers_vae.mkdir()
    (diffusers_vae / "config.json").write_text(json.dumps({"_class_name": "AutoencoderKLWan"}))
    with pytest.raises(NotADepthModelError, match=r"^vae: its config\.json is no transformers model config"):
        load_depth_model(manager, diffusers_vae)
    no_processor = tmp_path / "no-processor"
    no_processor.mkdir()
    (no_processor / "config.json").write_bytes((depth_folder / "config.json").read_bytes())
    with pytest.raises(CorruptModelFileError, match=r"^no-processor: has no preprocessor_config\.json"):
        load_depth_model(manager, no_processor)


def test_damaged_weights_fail_naming_the_folder(manager: ModelManager, tmp_path: Path, depth_folder: Path) -> None:
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    for path in depth_folder.iterdir():
        (damaged / path.name).write_bytes(path.read_bytes())
    weights = damaged / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(CorruptModelFileError, match=r"^damaged: transformers could not load the model"):
        load_depth_model(manager, damaged)
