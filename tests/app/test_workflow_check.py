"""``app.workflow_check`` and ``main.py check``: what stops a shared workflow from running here, named with the pack
to install, the input we lack and the model to fetch; embedded workflows in PNG and mp4 files are checked too."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

import main
from app.workflow_check import check_workflow
from app.workflow_report import WorkflowReport
from graph.registry import NodeRegistry
from graph.workflow_file import load_workflow
from models.folders import ModelFolders
from tests.app.check_samples import (
    PACK,
    PACK_VERSION,
    TEXT_ENCODER,
    UNET,
    UNSUPPORTED_SAMPLER,
    VAE,
    builtin_registry,
    hub_url,
    png_with_workflow,
    put_models,
    ui_node,
    unsupported_workflow,
    wan_workflow,
    write_json,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
SUBGRAPH = "11111111-1111-4111-8111-111111111111"


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    return tmp_path / "models"


@pytest.fixture
def registry(models_dir: Path, tmp_path: Path) -> NodeRegistry:
    return builtin_registry(models_dir, tmp_path)


def check(workflow: dict[str, Any], registry: NodeRegistry, models_dir: Path) -> WorkflowReport:
    return check_workflow(load_workflow(workflow, registry), registry, ModelFolders(models_dir))


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "main.py", "check", *args]
    return subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, env=env)


def test_the_cli_names_the_pack_the_model_and_the_sampler(tmp_path: Path) -> None:
    """The acceptance case, through the real command: all three problems, each with what to do about it."""
    workflow = write_json(tmp_path / "shared.json", unsupported_workflow())
    put_models(tmp_path / "models", (UNET, TEXT_ENCODER))  # only the VAE is missing
    completed = cli(str(workflow), "--models-dir", str(tmp_path / "models"))
    assert completed.returncode == 1, completed.stderr
    out = completed.stdout
    assert out.startswith("not ready: 3 problem(s)")
    assert f'node 9 "Video Combine": VHS_VideoCombine from pack {PACK} {PACK_VERSION}' in out
    assert f"https://registry.comfy.org/nodes/{PACK}" in out
    assert (
        f"node 6 KSampler: input 'sampler_name': choice not supported here (sampler_name: '{UNSUPPORTED_SAMPLER}'"
        in out
    )
    assert f"vae/{VAE} (used by node 7 vae_name): from {hub_url('split_files/vae/tiny_vae.safetensors')}" in out
    assert UNET not in out and TEXT_ENCODER not in out

    completed = cli(str(workflow), "--models-dir", str(tmp_path / "models"), "--json")
    assert completed.returncode == 1
    report = json.loads(completed.stdout)
    assert report["ready"] is False and report["source_format"] == "ui"
    (missing_type,) = report["missing_node_types"]
    assert missing_type["pack"] == {
        "id": PACK,
        "source": "registry",
        "version": PACK_VERSION,
        "url": f"https://registry.comfy.org/nodes/{PACK}",
    }
    (issue,) = report["input_issues"]
    assert (issue["node_id"], issue["input_name"], issue["type"], issue["value"]) == (
        "6",
        "sampler_name",
        "value_not_in_list",
        UNSUPPORTED_SAMPLER,
    )
    (model,) = report["missing_models"]
    assert model["name"] == VAE and model["folder"] == "vae" and model["repo_id"] == "org/wan-files"
    assert model["inputs"] == [{"node_id": "7", "input_name": "vae_name"}] and model["download"] == "hub"
    assert sorted(report["present_models"]) == [f"diffusion_models/{UNET}", f"text_encoders/{TEXT_ENCODER}"]


def test_a_runnable_workflow_is_ready(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    put_models(tmp_path / "models")
    workflow = write_json(tmp_path / "wan.json", wan_workflow())
    assert main.main(["check", str(workflow), "--models-dir", str(tmp_path / "models")]) == 0
    assert capsys.readouterr().out == (
        "ready: every node type, input and model this workflow uses is available here (3 listed model(s) present)\n"
    )
    assert main.main(["check", str(workflow), "--models-dir", str(tmp_path / "models"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ready"] is True and report["missing_models"] == [] and report["input_issues"] == []


def test_the_shipped_workflows_are_ready(capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("blend_scale_ui.json", "invert_crop_api.json"):
        assert main.main(["check", str(REPO_ROOT / "workflows" / name)]) == 0, capsys.readouterr().out
    assert capsys.readouterr().out.count("ready:") == 2


def test_a_png_carrying_the_workflow_is_checked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    image = png_with_workflow(tmp_path / "shared.png", unsupported_workflow())
    assert main.main(["check", str(image), "--models-dir", str(tmp_path / "models"), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["missing_node_types"][0]["pack"]["id"] == PACK
    assert report["input_issues"][0]["value"] == UNSUPPORTED_SAMPLER
    assert {model["name"] for model in report["missing_models"]} == {UNET, TEXT_ENCODER, VAE}


def test_an_mp4_carrying_the_workflow_is_checked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clip = tmp_path / "shared.mp4"
    with av.open(str(clip), "w", options={"movflags": "use_metadata_tags"}) as container:
        container.metadata["workflow"] = json.dumps(unsupported_workflow())
        stream = container.add_stream("libx264", rate=Fraction(8))
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for _ in range(2):
            frame = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    put_models(tmp_path / "models")
    assert main.main(["check", str(clip), "--models-dir", str(tmp_path / "models")]) == 1
    out = capsys.readouterr().out
    assert out.startswith("not ready: 2 problem(s)") and PACK in out and UNSUPPORTED_SAMPLER in out


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "no such file"),
        (b"GIF89a not really", "corrupt GIF"),
        (b"hello", "not a PNG, WebP, GIF"),
        (b'{"nodes": 3}', "not a workflow"),
        (b"{not json", "invalid JSON"),
    ],
)
def test_unreadable_input_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes | None, reason: str
) -> None:
    path = tmp_path / "thing"
    if content is not None:
        path.write_bytes(content)
    assert main.main(["check", str(path)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"error: {path}") and reason in captured.err and captured.err.count("\n") == 1


def test_a_png_without_a_workflow_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from PIL import Image

    Image.new("RGB", (2, 2)).save(tmp_path / "plain.png")
    assert main.main(["check", str(tmp_path / "plain.png")]) == 1
    assert capsys.readouterr().err == f"error: {tmp_path / 'plain.png'}: no workflow is embedded in this png file\n"


def test_inputs_of_every_node_are_checked_even_when_no_output_needs_them(
    registry: NodeRegistry, models_dir: Path
) -> None:
    """The output comes from a missing pack, so validation alone would check nothing; the check still looks."""
    put_models(models_dir)
    workflow = unsupported_workflow()
    workflow["nodes"][4]["widgets_values"] = [64, 64, 5, 99999]  # EmptyHunyuanLatentVideo batch_size
    report = check(workflow, registry, models_dir)
    assert [(item.node_id, item.input_name, item.type) for item in report.input_issues] == [
        ("5", "batch_size", "value_bigger_than_max"),
        ("6", "sampler_name", "value_not_in_list"),
    ]
    assert not report.missing_models


def test_a_missing_github_pack_and_a_missing_subgraph_definition(registry: NodeRegistry, models_dir: Path) -> None:
    workflow = wan_workflow()
    extra = ui_node(10, "Fancy Upscale", [2.0], {"model": 99}, aux_id="someone/fancy-nodes", ver="a1b2c3d")
    del extra["properties"]["cnr_id"]
    instance = ui_node(11, SUBGRAPH, [])  # unlinked, yet never left out: its missing inside may hold outputs
    instance["title"] = "My group"
    label = ui_node(12, "Label (rgthree)", [], aux_id="rgthree/rgthree-comfy")  # linked to nothing: left out
    workflow["nodes"] += [extra, instance, label]
    workflow["links"].append([99, 1, 0, 10, 0, "MODEL"])
    report = check(workflow, registry, models_dir)
    assert [(item.node_id, item.class_type) for item in report.left_out] == [("12", "Label (rgthree)")]
    assert "12" not in {item.node_id for item in report.missing_node_types}
    by_id = {item.node_id: item for item in report.missing_node_types}
    assert by_id["10"].pack is not None and by_id["10"].pack.url == "https://github.com/someone/fancy-nodes"
    assert by_id["10"].pack.version == "a1b2c3d" and not by_id["10"].subgraph_missing
    assert by_id["11"].subgraph_missing and by_id["11"].title == "My group"
    assert "subgraph definition missing" in "\n".join(report.lines())


def test_unknown_inputs_and_left_over_widget_values_are_named(registry: NodeRegistry, models_dir: Path) -> None:
    put_models(models_dir)
    workflow = wan_workflow()
    workflow["nodes"][5]["widgets_values"].append("extra")  # a KSampler of another version had one more widget
    workflow["nodes"][5]["inputs"].append({"name": "guider", "type": "GUIDER", "link": 10})
    workflow["nodes"][4]["outputs"][0]["links"].append(10)
    workflow["links"].append([10, 5, 0, 6, 4, "GUIDER"])
    report = check(workflow, registry, models_dir)
    messages = {item.type: item.message for item in report.input_issues}
    assert messages["left_over_widget"] == "widget value #7 ('extra') has no matching input in Reelgraph's KSampler"
    assert messages["unknown_input"].startswith("input 'guider' is not an input of Reelgraph's KSampler (its inputs:")
    assert not report.ready


def test_an_api_prompt_reports_loader_files_missing_from_their_folders(
    registry: NodeRegistry, models_dir: Path
) -> None:
    prompt = {
        "1": {"class_type": "VAELoader", "inputs": {"vae_name": "other_vae.safetensors"}},
        "2": {"class_type": "VHS_LoadVideo", "inputs": {"video": "x.mp4"}},
        "3": {
            "class_type": "LoraLoaderModelOnly",
            "inputs": {"model": ["9", 0], "lora_name": "style.safetensors", "strength_model": 1.0},
        },
    }
    report = check(prompt, registry, models_dir)
    assert report.source_format == "api"
    assert [(item.class_type, item.pack) for item in report.missing_node_types] == [("VHS_LoadVideo", None)]
    assert [(m.folder, m.name, m.inputs, m.url) for m in report.missing_models] == [
        ("vae", "other_vae.safetensors", (("1", "vae_name"),), None),
        ("loras", "style.safetensors", (("3", "lora_name"),), None),
    ]
    assert [(item.node_id, item.type) for item in report.input_issues] == [("3", "bad_linked_input")]
    assert "the workflow gives no URL" in "\n".join(report.lines())


def test_models_listed_inside_subgraph_definitions_are_found(registry: NodeRegistry, models_dir: Path) -> None:
    """A VAELoader inside a subgraph lists its model; the loader is reported under its flattened id."""
    inner = ui_node(7, "VAELoader", [VAE], outputs={"VAE": [2]})
    inner["properties"]["models"] = [{"name": VAE, "url": hub_url("vae.safetensors"), "directory": "vae"}]
    definition = {
        "id": SUBGRAPH,
        "name": "Loaders",
        "inputs": [],
        "outputs": [{"id": "out-0", "name": "VAE", "type": "VAE", "linkIds": [2]}],
        "nodes": [inner],
        "links": [{"id": 2, "origin_id": 7, "origin_slot": 0, "target_id": -20, "target_slot": 0, "type": "VAE"}],
    }
    workflow = {
        "version": 1,
        "nodes": [
            ui_node(4, SUBGRAPH, [], outputs={"VAE": [1]}),
            ui_node(5, "VAEDecode", [], {"samples": None, "vae": 1}),
        ],
        "links": [{"id": 1, "origin_id": 4, "origin_slot": 0, "target_id": 5, "target_slot": 1, "type": "VAE"}],
        "definitions": {"subgraphs": [definition]},
    }
    report = check(workflow, registry, models_dir)
    (model,) = report.missing_models
    assert (model.name, model.node_ids, model.inputs, model.listed) == (VAE, ("4:7",), (("4:7", "vae_name"),), True)
    assert model.url == hub_url("vae.safetensors")


def test_no_output_node_is_a_workflow_problem(registry: NodeRegistry, models_dir: Path) -> None:
    report = check({"1": {"class_type": "EmptyImage", "inputs": {}}}, registry, models_dir)
    assert len(report.problems) == 1 and report.problems[0].startswith("no output node")
    assert report.to_json()["problems"] == list(report.problems) and not report.ready


def test_a_cycle_is_a_problem_even_where_no_output_needs_it(registry: NodeRegistry, models_dir: Path) -> None:
    prompt = {
        "1": {"class_type": "ImageInvert", "inputs": {"image": ["2", 0]}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
        "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "x"}},
    }
    report = check(prompt, registry, models_dir)
    assert report.problems == ("dependency cycle: nodes 1, 2 feed each other, so none of them can run first",)


def test_loader_inputs_carry_their_model_folder(registry: NodeRegistry) -> None:
    folders = {
        name: registry.get(name).inputs[key].model_folder  # type: ignore[union-attr]
        for name, key in [
            ("UNETLoader", "unet_name"),
            ("CLIPLoader", "clip_name"),
            ("VAELoader", "vae_name"),
            ("CLIPVisionLoader", "clip_name"),
            ("LoraLoader", "lora_name"),
            ("DiffusersPipelineLoader", "model_path"),
            ("KSampler", "sampler_name"),
        ]
    }
    assert folders == {
        "UNETLoader": "diffusion_models",
        "CLIPLoader": "text_encoders",
        "VAELoader": "vae",
        "CLIPVisionLoader": "clip_vision",
        "LoraLoader": "loras",
        "DiffusersPipelineLoader": "diffusers",
        "KSampler": None,
    }
