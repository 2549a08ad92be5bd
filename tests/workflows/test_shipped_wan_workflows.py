"""The shipped workflows: every file converts and validates, the Wan ones keep their templates' settings, and each
Wan workflow runs headless on the tiny stand-ins (sized down) to an mp4 of the frame count and size asked for."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import pytest

import main
from graph.prompt import Prompt
from graph.registry import NodeRegistry
from graph.validation import validate_prompt
from graph.workflow_file import load_workflow
from models.requirements import required_models

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO / "workflows"
INPUT = REPO / "input"
EXAMPLE_IMAGES = ("reelgraph_wan_start.jpg", "reelgraph_wan_end.jpg")


@dataclass(frozen=True)
class Shipped:
    """A shipped Wan workflow: the node holding its video size, the sampler steps to cut, what it must keep."""

    file: str
    size_node: str
    steps: dict[str, dict[str, int]]
    fps: int
    prefix: str
    settings: dict[str, dict[str, Any]]
    needs: tuple[str, ...] = ()  # node classes landing separately: the run skips while they are not registered
    size: tuple[int, int, int] = (96, 64, 5)  # width, height, frames: multiples of 16 (2.1) or 32 (2.2 TI2V)
    images: tuple[str, ...] = ()


SHIPPED = {
    "t2v": Shipped(
        "wan2.1_t2v_1.3B.json",
        "40",
        {"3": {"steps": 2}},
        16,
        "wan2.1_t2v",
        {
            "37": {"unet_name": "wan2.1_t2v_1.3B_fp16.safetensors", "weight_dtype": "default"},
            "38": {"clip_name": "umt5_xxl_fp8_e4m3fn_scaled.safetensors", "type": "wan", "device": "default"},
            "39": {"vae_name": "wan_2.1_vae.safetensors"},
            "40": {"width": 832, "height": 480, "length": 33, "batch_size": 1},
            "48": {"shift": 8},
            "3": {"steps": 30, "cfg": 6, "sampler_name": "uni_pc", "scheduler": "simple", "denoise": 1},
            "49": {"fps": 16},
            "50": {"filename_prefix": "video/wan2.1_t2v", "format": "auto", "codec": "auto"},
        },
        size=(96, 64, 9),
    ),
    "i2v": Shipped(
        "wan2.1_i2v_480p.json",
        "50",
        {"3": {"steps": 2}},
        16,
        "wan2.1_i2v",
        {
            "37": {"unet_name": "wan2.1_i2v_480p_14B_fp16.safetensors"},
            "49": {"clip_name": "clip_vision_h.safetensors"},
            "51": {"crop": "none"},
            "52": {"image": "reelgraph_wan_start.jpg"},
            "50": {"width": 832, "height": 480, "length": 33},
            "54": {"shift": 8},
            "3": {"steps": 20, "cfg": 6, "sampler_name": "uni_pc", "scheduler": "simple"},
        },
        images=("reelgraph_wan_start.jpg",),
    ),
    "flf2v": Shipped(
        "wan2.1_flf2v_720p.json",
        "83",
        {"90": {"steps": 2}},
        16,
        "wan2.1_flf2v",
        {
            "37": {"unet_name": "wan2.1_flf2v_720p_14B_fp16.safetensors"},
            "52": {"image": "reelgraph_wan_start.jpg"},
            "72": {"image": "reelgraph_wan_end.jpg"},
            "83": {"width": 1280, "height": 720, "length": 33},
            "79": {"shift": 8},
            "90": {"steps": 20, "cfg": 3, "sampler_name": "uni_pc", "scheduler": "simple"},
        },
        images=EXAMPLE_IMAGES,
    ),
    "ti2v_5B": Shipped(
        "wan2.2_ti2v_5B.json",
        "55",
        {"3": {"steps": 2}},
        24,
        "wan2.2_ti2v_5B",
        {
            "37": {"unet_name": "wan2.2_ti2v_5B_fp16.safetensors"},
            "39": {"vae_name": "wan2.2_vae.safetensors"},
            "55": {"width": 1280, "height": 704, "length": 121, "batch_size": 1},
            "48": {"shift": 8},
            "3": {"steps": 20, "cfg": 5, "sampler_name": "uni_pc", "scheduler": "simple"},
            "57": {"fps": 24},
        },
        needs=("Wan22ImageToVideoLatent",),
        images=("reelgraph_wan_start.jpg",),
    ),
    "i2v_A14B": Shipped(
        "wan2.2_i2v_A14B.json",
        "63",
        {"57": {"steps": 2, "end_at_step": 1}, "58": {"steps": 2, "start_at_step": 1}},
        16,
        "wan2.2_i2v_A14B",
        {
            "37": {"unet_name": "wan2.2_i2v_high_noise_14B_fp8_scaled.safetensors"},
            "56": {"unet_name": "wan2.2_i2v_low_noise_14B_fp8_scaled.safetensors"},
            "39": {"vae_name": "wan_2.1_vae.safetensors"},
            "91": {"lora_name": "wan2.2_i2v_lightx2v_4steps_lora_v1_high_noise.safetensors", "strength_model": 1.0},
            "92": {"lora_name": "wan2.2_i2v_lightx2v_4steps_lora_v1_low_noise.safetensors", "strength_model": 1.0},
            "54": {"shift": 5},
            "55": {"shift": 5},
            "63": {"width": 640, "height": 640, "length": 81},
            "57": {
                "add_noise": "enable",
                "steps": 4,
                "cfg": 1,
                "sampler_name": "euler",
                "scheduler": "simple",
                "start_at_step": 0,
                "end_at_step": 2,
                "return_with_leftover_noise": "enable",
            },
            "58": {
                "add_noise": "disable",
                "steps": 4,
                "cfg": 1,
                "sampler_name": "euler",
                "scheduler": "simple",
                "start_at_step": 2,
                "end_at_step": 10000,
                "return_with_leftover_noise": "disable",
            },
        },
        needs=("LoraLoaderModelOnly",),
        images=("reelgraph_wan_start.jpg",),
    ),
}


def _skip_unless_registered(shipped: Shipped, registry: NodeRegistry) -> None:
    missing = [name for name in shipped.needs if name not in registry]
    if missing:
        pytest.skip(f"{shipped.file} needs {', '.join(missing)}, not registered yet")


def _needed_classes(path: Path) -> tuple[str, ...]:
    return next((s.needs for s in SHIPPED.values() if s.file == path.name), ())


@pytest.mark.parametrize("path", sorted(WORKFLOWS.glob("*.json")), ids=lambda p: p.name)
def test_every_shipped_workflow_converts_and_validates(path: Path, registry: NodeRegistry) -> None:
    missing = [name for name in _needed_classes(path) if name not in registry]
    if missing:
        pytest.skip(f"{path.name} needs {', '.join(missing)}, not registered yet")
    loaded = load_workflow(path, registry)
    validated = validate_prompt(Prompt.parse(loaded.api), registry)
    assert validated.ok and not validated.node_errors, (validated.error, validated.node_errors)


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_wan_workflow_keeps_its_template_settings_and_lists_its_models(
    name: str, registry: NodeRegistry, tiny_models_dir: Path
) -> None:
    shipped = SHIPPED[name]
    _skip_unless_registered(shipped, registry)
    loaded = load_workflow(WORKFLOWS / shipped.file, registry)
    assert loaded.ui is not None and loaded.ui["version"] == 0.4
    for node_id, expected in shipped.settings.items():
        inputs = loaded.api[node_id]["inputs"]
        assert {key: inputs.get(key) for key in expected} == expected, node_id
    savers = [body for body in loaded.api.values() if body["class_type"] == "SaveVideo"]
    assert [body["inputs"]["filename_prefix"] for body in savers] == [f"video/{shipped.prefix}"]
    notes = [node for node in loaded.ui["nodes"] if node["type"] == "MarkdownNote"]
    assert len(notes) == 1 and str(notes[0]["id"]) not in loaded.api  # shown in the editor, never run
    listed = {f"{r.folder}/{r.name}" for r in required_models(loaded.ui)}
    named = {  # every file a loader names is in the model list (what the first run and /models/missing read)
        value
        for body in loaded.api.values()
        for key, value in body["inputs"].items()
        if key in ("unet_name", "clip_name", "vae_name", "lora_name")
    }
    assert {entry.split("/", 1)[1] for entry in listed} == named
    assert all((tiny_models_dir / entry).is_file() for entry in listed)  # the offline first run covers it
    used_images = {body["inputs"]["image"] for body in loaded.api.values() if body["class_type"] == "LoadImage"}
    assert used_images == set(shipped.images)


def test_example_images_are_small_and_tracked() -> None:
    """A fresh clone has the start and end frames the workflows load, in the default input folder."""
    for name in EXAMPLE_IMAGES:
        assert 0 < (INPUT / name).stat().st_size < 100_000
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    ignored = subprocess.run(
        ["git", "check-ignore", "--no-index", *(f"input/{name}" for name in EXAMPLE_IMAGES)],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert ignored.returncode == 1 and ignored.stdout == "", ignored.stdout  # none of them is ignored


def _run_args(shipped: Shipped, models_dir: Path, tmp_path: Path) -> list[str]:
    width, height, length = shipped.size
    args = [str(WORKFLOWS / shipped.file), "--models-dir", str(models_dir), "--output-dir", str(tmp_path / "out")]
    args += ["--temp-dir", str(tmp_path / "temp"), "--no-progress", "--cpu"]
    sets = {"width": width, "height": height, "length": length}
    args += [f"--set={shipped.size_node}.{key}={value}" for key, value in sets.items()]
    for node_id, inputs in shipped.steps.items():
        args += [f"--set={node_id}.{key}={value}" for key, value in inputs.items()]
    return args


def _check_video(shipped: Shipped, tmp_path: Path) -> None:
    (mp4,) = (tmp_path / "out" / "video").glob(f"{shipped.prefix}_*.mp4")
    width, height, length = shipped.size
    with av.open(str(mp4)) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height, stream.average_rate) == (width, height, shipped.fps)
        assert sum(1 for _ in container.decode(stream)) == length
        assert "workflow" in container.metadata  # dropping it on the editor restores the graph


@pytest.mark.parametrize("name", ["i2v", "flf2v", "ti2v_5B", "i2v_A14B"])
def test_wan_workflow_runs_headless_to_an_mp4(
    name: str, registry: NodeRegistry, tiny_models_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shipped = SHIPPED[name]
    _skip_unless_registered(shipped, registry)
    code = main.main(["run", *_run_args(shipped, tiny_models_dir, tmp_path)])
    assert code == 0, capsys.readouterr().err
    _check_video(shipped, tmp_path)


def test_wan_t2v_workflow_runs_headless_in_a_subprocess(tiny_models_dir: Path, tmp_path: Path) -> None:
    """``python main.py run`` as a user types it, reading the example folder passed as --input-dir."""
    shipped = SHIPPED["t2v"]
    command = [sys.executable, "main.py", "run", *_run_args(shipped, tiny_models_dir, tmp_path)]
    command += ["--input-dir", str(INPUT)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    completed = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
    assert completed.returncode == 0, completed.stderr
    assert f"{shipped.prefix}_00001_.mp4" in completed.stdout
    _check_video(shipped, tmp_path)
