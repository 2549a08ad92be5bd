"""ControlNetLoader: ComfyUI's sockets, the controlnet folder's files as choices, a CONTROL_NET in the memory manager,
and errors naming the node, the input and the file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from graph.spec import NodeSpec
from models.controlnet.loading import ControlNet
from models.families.sd15.unet_checkpoint import sd15_unet_to_original
from models.folders import ModelFolders
from models.memory import MODELS_SERVICE, ModelManager
from models.tiny.animatediff import tiny_sd15_unet
from models.tiny.controlnet import (
    CONTROLNET_FOLDER,
    DIFFUSERS_FILE,
    LDM_FILE,
    TINY_CONTROLNET_NAMES,
    write_tiny_controlnet_files,
)
from nodes import controlnet
from nodes.controlnet import ControlNetLoader
from nodes.folders import Folders
from nodes.model_files import MODEL_FOLDERS_SERVICE
from tests.nodes.node_runner import NodeRunner

UNET_FILE = "v1-5-unet.safetensors"
NOT_A_MODEL = "notes.safetensors"


@pytest.fixture(scope="module")
def controlnet_models(tmp_path_factory: pytest.TempPathFactory) -> ModelFolders:
    """The tiny ControlNets, and two files that are none: a UNet and tensors of no model."""
    models_dir = tmp_path_factory.mktemp("controlnet_node_weights")
    write_tiny_controlnet_files(models_dir)
    folder = models_dir / CONTROLNET_FOLDER
    save_file(sd15_unet_to_original(tiny_sd15_unet()), str(folder / UNET_FILE))
    save_file({"scores": torch.rand(4, 4)}, str(folder / NOT_A_MODEL))
    return ModelFolders(models_dir)


@pytest.fixture
def runner(tmp_path: Path, controlnet_models: ModelFolders, manager: ModelManager) -> NodeRunner:
    services = {MODELS_SERVICE: manager, MODEL_FOLDERS_SERVICE: controlnet_models}
    return NodeRunner(Folders.under(tmp_path), services=services)


def test_sockets_match_comfyui(controlnet_models: ModelFolders) -> None:
    loader = ControlNetLoader.bound_to_models(controlnet_models)
    NodeSpec.from_class("ControlNetLoader", loader)
    inputs = loader.INPUT_TYPES()
    assert list(inputs) == ["required"] and list(inputs["required"]) == ["control_net_name"]
    choices, _options = inputs["required"]["control_net_name"]
    assert sorted(choices) == sorted([*TINY_CONTROLNET_NAMES, UNET_FILE, NOT_A_MODEL])
    assert (loader.RETURN_TYPES, loader.CATEGORY, loader.FUNCTION) == (("CONTROL_NET",), "loaders", "load_controlnet")
    assert set(controlnet.NODE_CLASS_MAPPINGS) == {
        "ControlNetLoader",
        "ControlNetApplyAdvanced",
        "ControlNetApply",
        "SparseCtrlApply",
    }


@pytest.mark.parametrize(("name", "layout"), [(LDM_FILE, "LDM layout"), (DIFFUSERS_FILE, "diffusers layout")])
def test_loads_a_controlnet_into_the_manager(runner: NodeRunner, manager: ModelManager, name: str, layout: str) -> None:
    (loaded,) = runner.result(ControlNetLoader, control_net_name=name)
    assert isinstance(loaded, ControlNet) and loaded.name == name
    assert loaded.describe() == f"{name}: Stable Diffusion 1.5 ControlNet ({layout}), widths 32/64, text width 32"
    assert loaded.spec.widths == (32, 64) and loaded.compute_dtype == torch.float32
    assert [model.key for model in manager.snapshot()] == [loaded.handle.key]
    (again,) = runner.result(ControlNetLoader, control_net_name=name)
    assert again.handle is loaded.handle


def test_errors_name_the_node_the_input_and_the_file(runner: NodeRunner) -> None:
    start = "^ControlNetLoader: control_net_name: "
    with pytest.raises(ValueError, match=start + r"'nope\.pth' is not in the controlnet folder"):
        runner.result(ControlNetLoader, control_net_name="nope.pth")
    unet = re.escape(f"{UNET_FILE}: this is a Stable Diffusion 1.5 UNet, not a ControlNet")
    with pytest.raises(ValueError, match=start + unet):
        runner.result(ControlNetLoader, control_net_name=UNET_FILE)
    with pytest.raises(ValueError, match=start + re.escape(NOT_A_MODEL) + r": not a ControlNet: .* tensors: scores\)"):
        runner.result(ControlNetLoader, control_net_name=NOT_A_MODEL)
