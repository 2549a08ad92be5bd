"""The shipped SkyReels-V2 diffusion-forcing workflow: it keeps its real-use settings (a long video in overlapping
chunks), lists the models its loaders name, and runs headless on the tiny stand-ins (sized down, two steps, chunks
small enough that the video still takes several) to an mp4 of the expected frame count, size and frame rate."""

from __future__ import annotations

from pathlib import Path

import av
import pytest

import main
from graph.registry import NodeRegistry
from graph.workflow_file import load_workflow
from models.folders import ModelFolders
from models.requirements import required_models
from nodes import register_builtin_nodes
from nodes.folders import Folders

REPO = Path(__file__).resolve().parents[2]
WORKFLOW = REPO / "workflows" / "skyreels_v2_df_t2v.json"
SAMPLER = "7"
SETTINGS = {
    "1": {"unet_name": "Wan2_1-SkyReels-V2-DF-1_3B-540P_fp32.safetensors"},
    "2": {"clip_name": "umt5_xxl_fp8_e4m3fn_scaled.safetensors", "type": "wan"},
    "6": {"width": 960, "height": 544, "length": 257, "batch_size": 1},
    SAMPLER: {
        "steps": 30,
        "cfg": 6,
        "shift": 8,
        "base_num_frames": 97,
        "overlap_history": 17,
        "ar_step": 0,
        "causal_block_size": 1,
        "addnoise_condition": 20,
        "fps": 24,
    },
    "9": {"fps": 24},
}
WIDTH, HEIGHT, LENGTH = 64, 48, 17
TINY_RUN = {"6.width": WIDTH, "6.height": HEIGHT, "6.length": LENGTH}
TINY_RUN |= {f"{SAMPLER}.steps": 2, f"{SAMPLER}.base_num_frames": 9, f"{SAMPLER}.overlap_history": 5}


@pytest.fixture(scope="module")
def registry(tiny_models_dir: Path) -> NodeRegistry:
    registry = NodeRegistry()
    register_builtin_nodes(registry, Folders.under(REPO), ModelFolders(tiny_models_dir))
    return registry


def test_the_workflow_keeps_its_settings_and_lists_its_models(registry: NodeRegistry, tiny_models_dir: Path) -> None:
    loaded = load_workflow(WORKFLOW, registry)
    assert loaded.ui is not None and loaded.ui["version"] == 0.4
    for node_id, expected in SETTINGS.items():
        inputs = loaded.api[node_id]["inputs"]
        assert {key: inputs.get(key) for key in expected} == expected, node_id
    listed = required_models(loaded.ui)
    assert all(entry.repo_id is not None for entry in listed)
    named = {value for body in loaded.api.values() for key, value in body["inputs"].items() if key.endswith("_name")}
    assert {entry.name for entry in listed} == named
    assert all((tiny_models_dir / entry.folder / entry.name).is_file() for entry in listed)


def test_the_workflow_runs_headless_to_an_mp4(
    tiny_models_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [str(WORKFLOW), "--models-dir", str(tiny_models_dir), "--output-dir", str(tmp_path / "out")]
    args += ["--temp-dir", str(tmp_path / "temp"), "--no-progress", "--cpu"]
    args += [f"--set={key}={value}" for key, value in TINY_RUN.items()]
    assert main.main(["run", *args]) == 0, capsys.readouterr().err
    (mp4,) = (tmp_path / "out" / "video").glob("skyreels_v2_df_t2v_*.mp4")
    with av.open(str(mp4)) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height, stream.average_rate) == (WIDTH, HEIGHT, 24)
        assert sum(1 for _ in container.decode(stream)) == LENGTH
