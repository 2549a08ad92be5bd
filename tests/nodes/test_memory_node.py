"""FreeModelMemory: frees idle models through the run's model manager, keeps models in use, always runs."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import torch

from app.config import AppConfig
from app.engine import build_engine
from graph.prompt import Prompt
from graph.validation import validate_prompt
from models.devices import DeviceProbe
from models.memory import MODELS_SERVICE, MemoryConfig, ModelManager
from nodes.folders import Folders
from nodes.memory import FreeModelMemory
from tests.nodes.node_runner import NodeRunner

MB = 1 << 20


def linear() -> torch.nn.Module:
    return torch.nn.Linear(512, 512)  # 1 MiB of float32 weights


@pytest.fixture
def manager() -> ModelManager:
    return ModelManager(MemoryConfig(device_budget_bytes=64 * MB, ram_budget_bytes=64 * MB, mode="cpu"), DeviceProbe())


@pytest.fixture
def runner(tmp_path: Path, manager: ModelManager) -> NodeRunner:
    return NodeRunner(Folders.under(tmp_path), services={MODELS_SERVICE: manager})


def test_unload_models_unloads_idle_models_and_passes_the_value_on(runner: NodeRunner, manager: ModelManager) -> None:
    handle = manager.load("a", linear)
    with handle.use():
        pass
    value = object()
    result = runner.call(FreeModelMemory, value=value, unload_models=True)
    assert result["result"] == (value,)
    assert handle.location == "unloaded" and manager.resident_bytes("device") == 0
    assert result["ui"]["text"] == ["1.0 MiB of idle models unloaded"]
    with handle.use() as module:  # loaded again on the next use
        assert isinstance(module, torch.nn.Linear)


def test_a_model_in_use_is_kept(runner: NodeRunner, manager: ModelManager) -> None:
    busy, idle = manager.load("busy", linear), manager.load("idle", linear)
    with idle.use():
        pass
    with busy.use():
        result = runner.call(FreeModelMemory, value=1, unload_models=True)
        assert busy.location == "device" and idle.location == "unloaded"
    assert result["ui"]["text"] == ["1.0 MiB of idle models unloaded"]


def test_it_runs_again_on_every_prompt_and_feeds_its_consumer(tmp_path: Path) -> None:
    config = AppConfig.from_dirs(tmp_path / "out", tmp_path / "in", tmp_path / "temp", models_dir=tmp_path / "w")
    engine = build_engine(config)
    prompt = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
        "2": {"class_type": "FreeModelMemory", "inputs": {"value": ["1", 0], "unload_models": True}},
        "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}},
    }
    validated = validate_prompt(Prompt.parse(prompt), engine.registry)
    assert validated.ok, validated
    for _ in range(2):  # the second prompt's inputs are the same: only an uncached node frees the new model
        handle = engine.models.load("a", linear)
        with handle.use():
            pass
        asyncio.run(engine.executor.execute(validated.prompt, validated.outputs))
        assert handle.location == "unloaded"
    assert len(list((tmp_path / "temp").glob("*.png"))) == 2
