"""The shipped CogVideoX workflows (2B text-to-video, 1.5 image-to-video, from diffusers pipeline folders): each
keeps its real-use settings and lists its pipeline folder, and runs headless on the tiny stand-ins (sized down, two
steps) to an mp4 of the expected frame count, size and frame rate, the 1.5 padding frame dropped."""

from __future__ import annotations

from pathlib import Path

import av
import pytest

import main
from graph.registry import NodeRegistry
from graph.workflow_file import load_workflow
from models.requirements import required_models

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO / "workflows"
INPUT = REPO / "input"
SAMPLER = {"steps": 50, "cfg": 6.0, "sampler_name": "euler", "scheduler": "simple", "denoise": 1}
SHIPPED = {
    "cogvideox_t2v": {
        "folder": "CogVideoX-2b",
        "size_node": "6",
        "padding_output": 1,
        "fps": 8,
        "settings": {"6": {"width": 720, "height": 480, "length": 49, "batch_size": 1}, "7": SAMPLER},
        "images": set(),
    },
    "cogvideox_i2v": {
        "folder": "CogVideoX1.5-5B-I2V",
        "size_node": "5",
        "padding_output": 3,
        "fps": 16,
        "settings": {"5": {"width": 1360, "height": 768, "length": 81, "batch_size": 1}, "7": SAMPLER},
        "images": {"reelgraph_wan_start.jpg"},
    },
}
SIZE = (64, 48, 9)  # width, height, frames for the runs: 3 latent frames, padded to 4 for 1.5


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_workflow_keeps_its_settings_and_lists_its_folder(
    name: str, registry: NodeRegistry, tiny_models_dir: Path
) -> None:
    shipped = SHIPPED[name]
    loaded = load_workflow(WORKFLOWS / f"{name}.json", registry)
    assert loaded.ui is not None and loaded.ui["version"] == 0.4
    for node_id, expected in shipped["settings"].items():
        inputs = loaded.api[node_id]["inputs"]
        assert {key: inputs.get(key) for key in expected} == expected, node_id
    (loader,) = [body for body in loaded.api.values() if body["class_type"] == "DiffusersPipelineLoader"]
    assert loader["inputs"]["model_path"] == shipped["folder"]
    (trim,) = [body for body in loaded.api.values() if body["class_type"] == "TrimVideoLatent"]
    assert trim["inputs"]["trim_amount"] == [shipped["size_node"], shipped["padding_output"]]
    (creator,) = [body for body in loaded.api.values() if body["class_type"] == "CreateVideo"]
    assert creator["inputs"]["fps"] == shipped["fps"]
    (listed,) = required_models(loaded.ui)
    assert (listed.name, listed.folder, listed.repo_id) == (shipped["folder"], "diffusers", f"THUDM/{listed.name}")
    assert (tiny_models_dir / "diffusers" / listed.name / "model_index.json").is_file()
    used = {body["inputs"]["image"] for body in loaded.api.values() if body["class_type"] == "LoadImage"}
    assert used == shipped["images"]


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_workflow_runs_headless_to_an_mp4(
    name: str, tiny_models_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shipped = SHIPPED[name]
    width, height, length = SIZE
    args = [str(WORKFLOWS / f"{name}.json"), "--models-dir", str(tiny_models_dir), "--output-dir", str(tmp_path)]
    args += ["--temp-dir", str(tmp_path / "temp"), "--input-dir", str(INPUT), "--no-progress", "--cpu"]
    node = shipped["size_node"]
    args += [f"--set={node}.width={width}", f"--set={node}.height={height}", f"--set={node}.length={length}"]
    args += ["--set=7.steps=2"]
    assert main.main(["run", *args]) == 0, capsys.readouterr().err
    (mp4,) = (tmp_path / "video").glob(f"{name}_*.mp4")
    with av.open(str(mp4)) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height, stream.average_rate) == (width, height, shipped["fps"])
        assert sum(1 for _ in container.decode(stream)) == length
