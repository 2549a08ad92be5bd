"""The shipped AnimateDiff workflow: it keeps its real-use settings and lists the models its loaders name, and runs
headless on the tiny stand-ins (sized down, two steps) to an mp4 of the expected frame count, size and frame rate."""

from __future__ import annotations

from pathlib import Path

import av
import pytest

import main
from graph.registry import NodeRegistry
from graph.workflow_file import load_workflow
from models.requirements import required_models

REPO = Path(__file__).resolve().parents[2]
WORKFLOW = REPO / "workflows" / "animatediff_t2v.json"
INPUT = REPO / "input"
MODEL_INPUTS = ("ckpt_name", "model_name", "lora_name")
SETTINGS = {
    "1": {"ckpt_name": "v1-5-pruned-emaonly-fp16.safetensors"},
    "2": {"model_name": "mm_sd_v15_v2.ckpt"},
    "3": {"context_length": 0, "context_stride": 4, "context_weighting": "pyramid"},
    "6": {"width": 512, "height": 512, "length": 16, "batch_size": 1},
    "7": {"steps": 20, "cfg": 7.5, "sampler_name": "euler", "scheduler": "simple", "denoise": 1},
    "9": {"fps": 8},
    "10": {"filename_prefix": "video/animatediff_t2v"},
}
WIDTH, HEIGHT, LENGTH, FPS = 64, 48, 8, 8


def test_the_workflow_keeps_its_settings_and_lists_its_models(registry: NodeRegistry, tiny_models_dir: Path) -> None:
    loaded = load_workflow(WORKFLOW, registry)
    assert loaded.ui is not None and loaded.ui["version"] == 0.4
    for node_id, expected in SETTINGS.items():
        inputs = loaded.api[node_id]["inputs"]
        assert {key: inputs.get(key) for key in expected} == expected, node_id
    notes = [node for node in loaded.ui["nodes"] if node["type"] == "MarkdownNote"]
    assert len(notes) == 1 and str(notes[0]["id"]) not in loaded.api
    listed = required_models(loaded.ui)
    assert all(entry.repo_id is not None for entry in listed)
    named = {value for body in loaded.api.values() for key, value in body["inputs"].items() if key in MODEL_INPUTS}
    assert {entry.name for entry in listed} == named
    assert all((tiny_models_dir / entry.folder / entry.name).is_file() for entry in listed)


@pytest.mark.parametrize("context_length", [0, 4], ids=["whole", "context-windows"])
def test_the_workflow_runs_headless_to_an_mp4(
    context_length: int, tiny_models_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sets = {"6.width": WIDTH, "6.height": HEIGHT, "6.length": LENGTH, "7.steps": 2, "3.context_length": context_length}
    args = [str(WORKFLOW), "--models-dir", str(tiny_models_dir), "--output-dir", str(tmp_path / "out")]
    args += ["--temp-dir", str(tmp_path / "temp"), "--input-dir", str(INPUT), "--no-progress", "--cpu"]
    args += [f"--set={key}={value}" for key, value in sets.items()]
    assert main.main(["run", *args]) == 0, capsys.readouterr().err
    (mp4,) = (tmp_path / "out" / "video").glob("animatediff_t2v_*.mp4")
    with av.open(str(mp4)) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height, stream.average_rate) == (WIDTH, HEIGHT, FPS)
        assert sum(1 for _ in container.decode(stream)) == LENGTH
