"""Checks the shipped control workflow tests share: the built-in node registry over the tiny models, a workflow's
settings, savers and input files, the models its loaders name, and a headless run sized down whose mp4s are decoded
and checked (size, frame rate, frame count, the embedded graph)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

import main
from graph.registry import NodeRegistry
from graph.workflow_file import LoadedWorkflow
from models.folders import ModelFolders
from models.requirements import ModelRequirement, required_models
from nodes import register_builtin_nodes
from nodes.folders import Folders

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO / "workflows"
INPUT = REPO / "input"


def builtin_registry(models_dir: Path) -> NodeRegistry:
    """The built-in nodes, listing the repo's input folder and the model files under ``models_dir``."""
    registry = NodeRegistry()
    register_builtin_nodes(registry, Folders.under(REPO), ModelFolders(models_dir))
    return registry


def check_settings_and_wiring(
    loaded: LoadedWorkflow,
    settings: Mapping[str, Mapping[str, Any]],
    prefixes: Iterable[str],
    inputs: Iterable[str],
) -> None:
    """The workflow keeps ``settings`` (API-format inputs by node id), saves videos under ``prefixes`` and loads
    exactly ``inputs`` from the input folder, which a fresh clone has."""
    assert loaded.ui is not None and loaded.ui["version"] == 0.4
    for node_id, expected in settings.items():
        given = loaded.api[node_id]["inputs"]
        assert {key: given.get(key) for key in expected} == expected, node_id
    savers = [body["inputs"]["filename_prefix"] for body in loaded.api.values() if body["class_type"] == "SaveVideo"]
    assert sorted(savers) == sorted(f"video/{prefix}" for prefix in prefixes)
    loaded_files = {
        body["inputs"].get("image") or body["inputs"].get("video")
        for body in loaded.api.values()
        if body["class_type"] in ("LoadImage", "LoadVideoFrames")
    }
    assert loaded_files == set(inputs)
    assert all((INPUT / file).is_file() for file in loaded_files)


def check_listed_models(
    loaded: LoadedWorkflow, models_dir: Path, model_inputs: Sequence[str]
) -> list[ModelRequirement]:
    """Every model the loaders name (inputs ``model_inputs``) is listed with a Hugging Face URL, exists among the
    models of ``models_dir`` (a file or a folder) and is named in the workflow's one note, which never runs."""
    assert loaded.ui is not None
    listed = required_models(loaded.ui)
    named = {value for body in loaded.api.values() for key, value in body["inputs"].items() if key in model_inputs}
    assert {entry.name for entry in listed} == named
    assert all(entry.url and entry.url.startswith("https://huggingface.co/") for entry in listed)
    assert all((models_dir / entry.folder / entry.name).exists() for entry in listed)
    notes = [node for node in loaded.ui["nodes"] if node["type"] == "MarkdownNote"]
    assert len(notes) == 1 and str(notes[0]["id"]) not in loaded.api  # shown in the editor, never run
    assert all(entry.name in notes[0]["widgets_values"][0] for entry in listed)
    return listed


def run_headless(
    file: str,
    models_dir: Path,
    out: Path,
    overrides: Mapping[str, Any],
    prefixes: Sequence[str],
    expected: tuple[int, int, int, int],
) -> dict[str, np.ndarray]:
    """Run the workflow ``file`` with ``main run`` and the ``--set`` ``overrides``; the decoded frames
    ``[N, H, W, 3]`` of each saved video by prefix, after checking it is ``expected`` (width, height, frames, fps)
    and embeds the graph (dropping it on the editor restores it)."""
    args = [str(WORKFLOWS / file), "--models-dir", str(models_dir), "--output-dir", str(out / "out")]
    args += ["--temp-dir", str(out / "temp"), "--input-dir", str(INPUT), "--no-progress", "--cpu"]
    args += [f"--set={key}={value}" for key, value in overrides.items()]
    assert main.main(["run", *args]) == 0
    width, height, frames, fps = expected
    videos = {}
    for prefix in prefixes:
        (mp4,) = (out / "out" / "video").glob(f"{prefix}_[0-9]*_.mp4")
        with av.open(str(mp4)) as container:
            stream = container.streams.video[0]
            decoded = np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(stream)])
            assert (stream.width, stream.height, Fraction(stream.average_rate)) == (width, height, Fraction(fps))
            assert "workflow" in container.metadata, prefix
        assert decoded.shape[0] == frames, prefix
        videos[prefix] = decoded
    return videos
