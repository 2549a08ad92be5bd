"""The shipped two-pass LTX-Video text-to-video workflow (``workflows/ltxv_t2v_upsample.json``): a low-resolution
first pass, ``LTXVLatentUpsampler`` doubling the latent's width and height, a partial second pass over the upscaled
latent, decode and save. It keeps its real-use settings, lists the models its loaders name, and runs headless on the
tiny stand-ins (sized down, two steps a pass) to an mp4 twice the first pass's size."""

from __future__ import annotations

from pathlib import Path

import pytest

import main
from graph.registry import NodeRegistry
from graph.workflow_file import load_workflow
from models.requirements import required_models
from tests.workflows.test_shipped_family_workflows import (
    LTX_LOADERS,
    LTX_SCHEDULE,
    MODEL_INPUTS,
    WORKFLOWS,
    Shipped,
    _check_video,
    _run_args,
)

UPSCALER = "ltxv-spatial-upscaler-0.9.7.safetensors"
FIRST_PASS, UPSAMPLER, SECOND_SCHEDULE, SPLIT, SECOND_PASS = "12", "13", "14", "15", "16"
SHIPPED = Shipped(
    "ltxv_t2v_upsample.json",
    "6",
    {"8": {"steps": 2}, SECOND_SCHEDULE: {"steps": 2}, SPLIT: {"step": 1}},
    24,
    "ltxv_t2v_upsample",
    {
        **LTX_LOADERS,
        "3": {"model_name": UPSCALER},
        "6": {"width": 512, "height": 352, "length": 97, "batch_size": 1},
        "7": {"frame_rate": 25},
        "8": LTX_SCHEDULE,
        SECOND_SCHEDULE: LTX_SCHEDULE,
        SPLIT: {"step": 17},
        "11": {"cfg": 3},
        "18": {"fps": 24},
    },
    size=(64, 64, 9),
    scale=2,
)


def test_the_workflow_keeps_its_settings_and_lists_its_models(registry: NodeRegistry, tiny_models_dir: Path) -> None:
    loaded = load_workflow(WORKFLOWS / SHIPPED.file, registry)
    assert loaded.ui is not None and loaded.ui["version"] == 0.4
    for node_id, expected in SHIPPED.settings.items():
        inputs = loaded.api[node_id]["inputs"]
        assert {key: inputs.get(key) for key in expected} == expected, node_id
    api = loaded.api
    assert api[UPSAMPLER]["class_type"] == "LTXVLatentUpsampler"
    assert api[UPSAMPLER]["inputs"]["samples"] == [FIRST_PASS, 0]  # the first pass's sampled latent
    second = api[SECOND_PASS]["inputs"]
    assert second["latent_image"] == [UPSAMPLER, 0] and second["sigmas"] == [SPLIT, 1]  # refined from step 17
    assert api[SECOND_SCHEDULE]["inputs"]["latent"] == [UPSAMPLER, 0]  # scheduled for the upscaled size
    assert [body["inputs"]["filename_prefix"] for body in api.values() if body["class_type"] == "SaveVideo"] == [
        f"video/{SHIPPED.prefix}"
    ]
    notes = [node for node in loaded.ui["nodes"] if node["type"] == "MarkdownNote"]
    assert len(notes) == 1 and str(notes[0]["id"]) not in api
    listed = required_models(loaded.ui)
    assert all(entry.repo_id is not None for entry in listed)
    named = {value for body in api.values() for key, value in body["inputs"].items() if key in MODEL_INPUTS}
    assert {entry.name for entry in listed} == named and UPSCALER in named
    assert all((tiny_models_dir / entry.folder / entry.name).is_file() for entry in listed)


def test_the_workflow_runs_headless_to_an_mp4_twice_the_size(
    tiny_models_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main.main(["run", *_run_args(SHIPPED, tiny_models_dir, tmp_path)])
    assert code == 0, capsys.readouterr().err
    _check_video(SHIPPED, tmp_path)
