"""The depth nodes: the loader lists and loads model folders of depth_estimation/, DepthEstimation returns gray
depth images (near bright) normalised over the clip, and bad inputs fail naming the node and the input."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from graph.spec import NodeSpec
from models.folders import ModelFolders
from models.memory import MODELS_SERVICE, ModelManager
from models.tiny.depth import DEPTH_ANYTHING_V2_SMALL, DEPTH_FOLDER, write_tiny_depth_models
from nodes import depth
from nodes.depth import DepthEstimation, DepthEstimationModelLoader
from nodes.folders import Folders
from nodes.model_files import MODEL_FOLDERS_SERVICE
from tests.nodes.node_runner import NodeRunner

NOT_A_DEPTH_MODEL = "clip-text"


@pytest.fixture(scope="module")
def depth_models(tmp_path_factory: pytest.TempPathFactory) -> ModelFolders:
    """The tiny depth model, a transformers model of another kind, a hidden folder and loose files."""
    from transformers import CLIPTextConfig

    models_dir = tmp_path_factory.mktemp("depth_node_weights")
    write_tiny_depth_models(models_dir)
    folder = models_dir / DEPTH_FOLDER
    CLIPTextConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=1).save_pretrained(
        folder / NOT_A_DEPTH_MODEL
    )
    (folder / ".cache" / "partial").mkdir(parents=True)
    (folder / ".cache" / "partial" / "config.json").write_text("{}")
    (folder / "notes.txt").write_text("not a model")
    return ModelFolders(models_dir)


@pytest.fixture
def runner(tmp_path: Path, depth_models: ModelFolders, manager: ModelManager) -> NodeRunner:
    services = {MODELS_SERVICE: manager, MODEL_FOLDERS_SERVICE: depth_models}
    return NodeRunner(Folders.under(tmp_path), services=services)


def _frames(count: int, height: int, width: int) -> torch.Tensor:
    return torch.rand(count, height, width, 3, generator=torch.Generator().manual_seed(0))


def test_sockets_and_choices(depth_models: ModelFolders) -> None:
    loader = DepthEstimationModelLoader.bound_to_models(depth_models)
    spec = NodeSpec.from_class("DepthEstimationModelLoader", loader)
    assert spec.inputs["model_name"].model_folder == DEPTH_FOLDER
    (choices, _options) = loader.INPUT_TYPES()["required"]["model_name"]
    assert choices == [DEPTH_ANYTHING_V2_SMALL, NOT_A_DEPTH_MODEL] == depth_models.list_files(DEPTH_FOLDER)
    assert loader.RETURN_TYPES == ("DEPTH_MODEL",)
    inputs = DepthEstimation.INPUT_TYPES()
    assert [(name, kind) for name, (kind, _options) in inputs["required"].items()] == [
        ("depth_model", "DEPTH_MODEL"),
        ("image", "IMAGE"),
    ]
    assert list(inputs["optional"]) == ["batch_size"]
    assert DepthEstimation.RETURN_TYPES == ("IMAGE",)
    assert set(depth.NODE_CLASS_MAPPINGS) == set(depth.NODE_DISPLAY_NAME_MAPPINGS)


def test_depth_images_are_gray_near_bright_over_the_clip(runner: NodeRunner) -> None:
    (model,) = runner.result(DepthEstimationModelLoader, model_name=DEPTH_ANYTHING_V2_SMALL)
    frames = _frames(3, 24, 40)
    (image,) = runner.result(DepthEstimation, depth_model=model, image=frames, batch_size=2)
    assert image.shape == (3, 24, 40, 3) and image.dtype == torch.float32
    assert torch.equal(image[..., 0], image[..., 1]) and torch.equal(image[..., 0], image[..., 2])
    assert image.min() == 0 and image.max() == 1
    assert runner.progress[-2:] == [(2, 3), (3, 3)]
    distance_model = dataclasses.replace(model, inverse=False)  # a metric model: near is small, so it is flipped
    (flipped,) = runner.result(DepthEstimation, depth_model=distance_model, image=frames)
    torch.testing.assert_close(flipped, 1 - image, atol=1e-5, rtol=0)


def test_bad_inputs_name_the_node_and_input(runner: NodeRunner) -> None:
    loader = "DepthEstimationModelLoader"
    with pytest.raises(ValueError, match=rf"^{loader}: model_name: 'nope' is not a folder in the depth_estimation"):
        runner.result(DepthEstimationModelLoader, model_name="nope")
    with pytest.raises(ValueError, match=rf"^{loader}: model_name: .*'\.\.'"):
        runner.result(DepthEstimationModelLoader, model_name="../elsewhere")
    with pytest.raises(ValueError, match=rf"^{loader}: model_name: {NOT_A_DEPTH_MODEL}: holds a 'clip_text_model'"):
        runner.result(DepthEstimationModelLoader, model_name=NOT_A_DEPTH_MODEL)
    (model,) = runner.result(DepthEstimationModelLoader, model_name=DEPTH_ANYTHING_V2_SMALL)
    with pytest.raises(ValueError, match=r"^DepthEstimation: image must be an IMAGE tensor"):
        runner.result(DepthEstimation, depth_model=model, image=torch.rand(8, 8))
    with pytest.raises(ValueError, match=r"^DepthEstimation: image must have 3 channels \(RGB\), got 4"):
        runner.result(DepthEstimation, depth_model=model, image=torch.rand(1, 8, 8, 4))
    with pytest.raises(ValueError, match=r"^DepthEstimation: depth_model must be a DEPTH_MODEL, got str"):
        runner.result(DepthEstimation, depth_model="model", image=_frames(1, 8, 8))
    with pytest.raises(ValueError, match=r"^DepthEstimation: batch_size \(0\) must be between 1 and 256"):
        runner.result(DepthEstimation, depth_model=model, image=_frames(1, 8, 8), batch_size=0)


def test_the_choices_skip_hidden_folders_and_files(depth_models: ModelFolders) -> None:
    names = depth_models.list_files(DEPTH_FOLDER)
    root = depth_models.folder(DEPTH_FOLDER)
    assert all(json.loads((root / name / "config.json").read_text()) for name in names)
    assert not any(name.startswith(".") or name.endswith(".txt") for name in names)
