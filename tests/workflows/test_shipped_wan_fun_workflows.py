"""The shipped Wan 2.1 Fun workflows: Fun Control 1.3B steered by the depth maps of a video (Depth Anything V2, with
the video's first frame as the start image), and Fun Camera 1.3B moving a start image along a preset camera move.
Each keeps its real-use settings and wiring, lists the models its loaders name, and runs headless on the tiny
stand-ins (sized down through its Width / Height / Frames inputs, two steps) to an mp4 of the asked size and frame
count; the depth maps come out as a second video, checked too."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from graph.registry import NodeRegistry
from graph.workflow_file import LoadedWorkflow, load_workflow
from models.requirements import required_models
from tests.workflows.shipped import (
    WORKFLOWS,
    check_listed_models,
    check_settings_and_wiring,
    run_headless,
)

MODEL_INPUTS = ("unet_name", "clip_name", "vae_name", "model_name")
WIDTH, HEIGHT, FRAMES, STEPS, FPS = 64, 48, 9, 2, 16  # not square, so a swapped width and height shows


@dataclass(frozen=True)
class Shipped:
    """A shipped Wan Fun workflow: its saved video prefixes (the result first), the input files it loads, and
    settings and links (API-format inputs by node id) it must keep."""

    file: str
    prefixes: tuple[str, ...]
    inputs: tuple[str, ...]
    settings: dict[str, dict[str, Any]]


WAN_SAMPLING = {
    "38": {"clip_name": "umt5_xxl_fp8_e4m3fn_scaled.safetensors", "type": "wan"},
    "39": {"vae_name": "wan_2.1_vae.safetensors"},
    "49": {"clip_name": "clip_vision_h.safetensors"},
    "48": {"model": ["37", 0], "shift": 8},
    "3": {
        "steps": 20,
        "cfg": 6,
        "sampler_name": "uni_pc",
        "scheduler": "simple",
        "denoise": 1,
        "model": ["48", 0],
        "positive": ["40", 0],
        "negative": ["40", 1],
        "latent_image": ["40", 2],
    },
    "8": {"samples": ["3", 0], "vae": ["39", 0]},
    "55": {"images": ["8", 0], "fps": FPS},
    "40": {"positive": ["6", 0], "negative": ["7", 0], "vae": ["39", 0], "batch_size": 1},
}
SHIPPED = {
    "control_depth": Shipped(
        "wan2.1_fun_control_depth.json",
        ("wan2.1_fun_control_depth", "wan2.1_fun_control_depth_map"),
        ("reelgraph_sample.mp4",),
        {
            **WAN_SAMPLING,
            "37": {"unet_name": "wan2.1_fun_control_1.3B_bf16.safetensors"},
            "60": {"value": 832},
            "61": {"value": 480},
            "62": {"value": 33},  # the 2 s sample's frames at 16 fps (4n + 1)
            "70": {"video": "reelgraph_sample.mp4", "force_rate": 16, "frame_load_cap": ["62", 0]},
            "71": {"image": ["70", 0], "width": ["60", 0], "height": ["61", 0], "crop": "center"},
            "80": {"model_name": "Depth-Anything-V2-Small-hf"},
            "72": {"depth_model": ["80", 0], "image": ["71", 0]},
            "73": {"image": ["71", 0], "batch_index": 0, "length": 1},
            "51": {"clip_vision": ["49", 0], "image": ["73", 0]},
            "40": {
                **WAN_SAMPLING["40"],
                "width": ["60", 0],
                "height": ["61", 0],
                "length": ["62", 0],
                "clip_vision_output": ["51", 0],
                "start_image": ["73", 0],
                "control_video": ["72", 0],
            },
            "74": {"images": ["72", 0], "fps": FPS},
        },
    ),
    "camera": Shipped(
        "wan2.1_fun_camera.json",
        ("wan2.1_fun_camera",),
        ("reelgraph_wan_start.jpg",),
        {
            **WAN_SAMPLING,
            "37": {"unet_name": "wan2.1_fun_camera_v1.1_1.3B_bf16.safetensors"},
            "60": {"value": 832},
            "61": {"value": 480},
            "62": {"value": 81},
            "71": {"image": ["52", 0], "width": ["60", 0], "height": ["61", 0], "crop": "center"},
            "51": {"clip_vision": ["49", 0], "image": ["71", 0]},
            "57": {
                "camera_pose": "Zoom In",
                "speed": 1.0,
                "width": ["60", 0],
                "height": ["61", 0],
                "length": ["62", 0],
            },
            "40": {
                **WAN_SAMPLING["40"],
                "width": ["57", 1],  # the embedding passes its size on, so the two cannot disagree
                "height": ["57", 2],
                "length": ["57", 3],
                "clip_vision_output": ["51", 0],
                "start_image": ["71", 0],
                "camera_conditions": ["57", 0],
            },
        },
    ),
}


def _load(shipped: Shipped, registry: NodeRegistry) -> LoadedWorkflow:
    return load_workflow(WORKFLOWS / shipped.file, registry)


def _run(shipped: Shipped, models_dir: Path, out: Path) -> dict[str, np.ndarray]:
    sizes = {"60.value": WIDTH, "61.value": HEIGHT, "62.value": FRAMES, "3.steps": STEPS}
    return run_headless(shipped.file, models_dir, out, sizes, shipped.prefixes, (WIDTH, HEIGHT, FRAMES, FPS))


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_workflow_keeps_its_settings_and_wiring(name: str, registry: NodeRegistry) -> None:
    shipped = SHIPPED[name]
    check_settings_and_wiring(_load(shipped, registry), shipped.settings, shipped.prefixes, shipped.inputs)


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_workflow_lists_every_model_its_loaders_name(name: str, registry: NodeRegistry, tiny_models_dir: Path) -> None:
    listed = check_listed_models(_load(SHIPPED[name], registry), tiny_models_dir, MODEL_INPUTS)
    wan_files = [entry for entry in listed if entry.folder != "depth_estimation"]
    assert {entry.repo_id for entry in wan_files} == {"Comfy-Org/Wan_2.1_ComfyUI_repackaged"}
    assert all(entry.url and entry.url.endswith(f"/split_files/{entry.folder}/{entry.name}") for entry in wan_files)


def test_depth_workflow_lists_its_depth_model_folder(registry: NodeRegistry, tiny_models_dir: Path) -> None:
    listed = required_models(_load(SHIPPED["control_depth"], registry).ui)
    (depth,) = [entry for entry in listed if entry.folder == "depth_estimation"]
    assert (depth.name, depth.repo_id) == ("Depth-Anything-V2-Small-hf", "depth-anything/Depth-Anything-V2-Small-hf")
    assert (tiny_models_dir / "depth_estimation" / depth.name / "config.json").is_file()


def test_camera_workflow_runs_headless_to_an_mp4(tiny_models_dir: Path, tmp_path: Path) -> None:
    (result,) = _run(SHIPPED["camera"], tiny_models_dir, tmp_path).values()
    assert result.std() > 0  # decoded pictures, not an empty stream


def test_depth_workflow_runs_headless_and_saves_the_depth_video(tiny_models_dir: Path, tmp_path: Path) -> None:
    """The depth video is a gray picture of the filmed scene, changing from frame to frame as the scene moves."""
    result, depth = _run(SHIPPED["control_depth"], tiny_models_dir, tmp_path).values()
    assert result.std() > 0
    depth = depth.astype(np.float32) / 255.0
    assert depth.std(axis=(1, 2, 3)).min() > 0.01  # every frame shows something, not one flat gray
    assert np.abs(depth - depth.mean(axis=-1, keepdims=True)).mean() < 0.02  # gray: the channels agree
    assert np.abs(depth[1:] - depth[:-1]).mean() > 0.001
