"""The shipped Stable Video Diffusion workflow: it keeps ComfyUI's SVD XT template settings and lists its checkpoint,
and runs headless on the tiny stand-in (64x64, 3 frames, two steps) to an mp4 of the expected frames, size and rate.

It uses a models folder holding only the tiny SVD checkpoint (what ``make-tiny-models`` writes for it), so that it
runs in seconds on its own."""

from __future__ import annotations

from pathlib import Path

import av
import pytest

import main
from graph.registry import NodeRegistry
from graph.workflow_file import load_workflow
from models.folders import ModelFolders
from models.requirements import required_models
from models.tiny.svd import write_tiny_svd_files
from nodes import register_builtin_nodes
from nodes.folders import Folders

REPO = Path(__file__).resolve().parents[2]
WORKFLOW = REPO / "workflows" / "svd_img2vid.json"
START = "reelgraph_wan_start.jpg"
WIDTH, HEIGHT, FRAMES, FPS = 64, 64, 3, 6
SETTINGS = {
    "1": {"ckpt_name": "svd_xt.safetensors"},
    "2": {"min_cfg": 1.0},
    "3": {"image": START},
    "4": {
        "width": 1024,
        "height": 576,
        "video_frames": 25,
        "motion_bucket_id": 127,
        "fps": 6,
        "augmentation_level": 0.0,
    },
    "5": {"steps": 20, "cfg": 2.5, "sampler_name": "euler", "scheduler": "karras", "denoise": 1},
    "7": {"fps": FPS},
    "8": {"filename_prefix": "video/svd_img2vid"},
}


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("svd_models")
    write_tiny_svd_files(folder)
    return folder


def test_svd_workflow_keeps_its_settings_and_lists_its_checkpoint(models_dir: Path) -> None:
    registry = NodeRegistry()
    register_builtin_nodes(registry, Folders.under(REPO), ModelFolders(models_dir))
    loaded = load_workflow(WORKFLOW, registry)
    assert loaded.ui is not None and loaded.ui["version"] == 0.4
    for node_id, expected in SETTINGS.items():
        inputs = loaded.api[node_id]["inputs"]
        assert {key: inputs.get(key) for key in expected} == expected, node_id
    assert "9" not in loaded.api  # the MarkdownNote is shown in the editor, never run
    listed = required_models(loaded.ui)
    assert [(entry.folder, entry.name) for entry in listed] == [("checkpoints", "svd_xt.safetensors")]
    assert all(entry.repo_id is not None for entry in listed)
    assert all((models_dir / entry.folder / entry.name).is_file() for entry in listed)


def test_svd_workflow_runs_headless_to_an_mp4(
    models_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [str(WORKFLOW), "--models-dir", str(models_dir), "--output-dir", str(tmp_path / "out")]
    args += ["--temp-dir", str(tmp_path / "temp"), "--input-dir", str(REPO / "input"), "--no-progress", "--cpu"]
    sets = {"4.width": WIDTH, "4.height": HEIGHT, "4.video_frames": FRAMES, "5.steps": 2}
    args += [f"--set={key}={value}" for key, value in sets.items()]
    code = main.main(["run", *args])
    assert code == 0, capsys.readouterr().err
    (mp4,) = (tmp_path / "out" / "video").glob("svd_img2vid_*.mp4")
    with av.open(str(mp4)) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height, stream.average_rate) == (WIDTH, HEIGHT, FPS)
        assert sum(1 for _ in container.decode(stream)) == FRAMES
        assert "workflow" in container.metadata
