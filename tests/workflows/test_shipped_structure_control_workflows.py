"""The shipped structure-control workflows outside Wan: AnimateDiff steered by an OpenPose ControlNet (keypoints drawn
as a pose video) and by an RGB SparseCtrl key frame, and CogVideoX-Fun 2B Control steered by the Canny edges of a
video. Each keeps its real-use settings and wiring, lists the models its loaders name, and runs headless on the tiny
stand-ins (sized down through its Width / Height / Frames inputs, two steps) to an mp4 of the asked size and frame
count; the pose video and the edge video come out as second videos, checked too."""

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

MODEL_INPUTS = ("ckpt_name", "model_name", "control_net_name", "model_path")
WIDTH, HEIGHT, STEPS, FPS = 64, 48, 2, 8  # not square, so a swapped width and height shows


@dataclass(frozen=True)
class Shipped:
    """A shipped structure-control workflow: its saved video prefixes (the result first), the frame count it is run
    with (CogVideoX needs 4n + 1), the input files it loads, and settings and links (API-format inputs by node id)
    it must keep."""

    file: str
    prefixes: tuple[str, ...]
    frames: int
    inputs: tuple[str, ...]
    settings: dict[str, dict[str, Any]]


ANIMATEDIFF = {
    "1": {"ckpt_name": "v1-5-pruned-emaonly-fp16.safetensors"},
    "2": {"model_name": "mm_sd_v15_v2.ckpt"},
    "3": {"model": ["1", 0], "motion_model": ["2", 0], "context_length": 0},
    "60": {"value": 512},
    "61": {"value": 512},
    "62": {"value": 16},
    "6": {"width": ["60", 0], "height": ["61", 0], "length": ["62", 0], "batch_size": 1},
    "7": {
        "steps": 20,
        "cfg": 7.5,
        "sampler_name": "euler",
        "scheduler": "simple",
        "denoise": 1,
        "model": ["3", 0],
        "positive": ["81", 0],
        "negative": ["81", 1],
        "latent_image": ["6", 0],
    },
    "8": {"samples": ["7", 0], "vae": ["1", 2]},
    "9": {"fps": FPS},
}
CONTROL_WINDOW = {"strength": 1.0, "start_percent": 0.0, "end_percent": 1.0, "positive": ["4", 0], "negative": ["5", 0]}
SHIPPED = {
    "controlnet_pose": Shipped(
        "animatediff_controlnet_pose.json",
        ("animatediff_controlnet_pose", "animatediff_controlnet_pose_skeleton"),
        8,
        (),
        {
            **ANIMATEDIFF,
            "77": {"width": ["60", 0], "height": ["61", 0]},
            "79": {"image": ["78", 0], "batch_index": 0, "length": ["62", 0]},
            "80": {"control_net_name": "control_v11p_sd15_openpose_fp16.safetensors"},
            "81": {**CONTROL_WINDOW, "control_net": ["80", 0], "image": ["79", 0]},
            "82": {"images": ["79", 0], "fps": FPS},
        },
    ),
    "sparsectrl_rgb": Shipped(
        "animatediff_sparsectrl_rgb.json",
        ("animatediff_sparsectrl_rgb",),
        8,
        ("reelgraph_wan_start.jpg",),
        {
            **ANIMATEDIFF,
            "71": {"image": ["52", 0], "width": ["60", 0], "height": ["61", 0], "crop": "center"},
            "80": {"control_net_name": "v3_sd15_sparsectrl_rgb.ckpt"},
            "81": {
                **CONTROL_WINDOW,
                "control_net": ["80", 0],
                "image": ["71", 0],
                "frame_indices": "0",
                "vae": ["1", 2],
            },
        },
    ),
    "cogvideox_canny": Shipped(
        "cogvideox_fun_control_canny.json",
        ("cogvideox_fun_control_canny", "cogvideox_fun_control_canny_edges"),
        9,
        ("reelgraph_sample.mp4",),
        {
            "1": {"model_path": "CogVideoX-Fun-V1.1-2b-Control"},
            "60": {"value": 720},
            "61": {"value": 480},
            "62": {"value": 49},
            "70": {"video": "reelgraph_sample.mp4", "force_rate": 8, "frame_load_cap": ["62", 0]},
            "71": {"image": ["70", 0], "width": ["60", 0], "height": ["61", 0], "crop": "center"},
            "72": {"image": ["71", 0], "low_threshold": 0.4, "high_threshold": 0.8},
            "40": {
                "width": ["60", 0],
                "height": ["61", 0],
                "length": ["62", 0],
                "model": ["1", 0],
                "vae": ["1", 2],
                "control_video": ["72", 0],
            },
            "7": {"steps": 50, "cfg": 6.0, "sampler_name": "euler", "scheduler": "simple", "latent_image": ["40", 2]},
            "41": {"samples": ["7", 0], "trim_amount": ["40", 3]},
            "8": {"samples": ["41", 0], "vae": ["1", 2]},
            "49": {"fps": FPS},
            "73": {"images": ["72", 0], "fps": FPS},
        },
    ),
}


def _load(shipped: Shipped, registry: NodeRegistry) -> LoadedWorkflow:
    return load_workflow(WORKFLOWS / shipped.file, registry)


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_workflow_keeps_its_settings_and_wiring(name: str, registry: NodeRegistry) -> None:
    shipped = SHIPPED[name]
    check_settings_and_wiring(_load(shipped, registry), shipped.settings, shipped.prefixes, shipped.inputs)


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_workflow_lists_every_model_its_loaders_name(name: str, registry: NodeRegistry, tiny_models_dir: Path) -> None:
    listed = check_listed_models(_load(SHIPPED[name], registry), tiny_models_dir, MODEL_INPUTS)
    assert all(entry.repo_id is not None for entry in listed)


def test_cogvideox_workflow_lists_its_pipeline_folder(registry: NodeRegistry, tiny_models_dir: Path) -> None:
    (listed,) = required_models(_load(SHIPPED["cogvideox_canny"], registry).ui)
    assert (listed.folder, listed.repo_id) == ("diffusers", "alibaba-pai/CogVideoX-Fun-V1.1-2b-Control")
    assert (tiny_models_dir / "diffusers" / listed.name / "model_index.json").is_file()


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_workflow_runs_headless_to_an_mp4(name: str, tiny_models_dir: Path, tmp_path: Path) -> None:
    """The result is decoded pictures; a second video is the control itself (the pose skeleton, the edges): mostly
    black with bright strokes on every frame, changing from frame to frame as the stride or the filmed scene moves."""
    shipped = SHIPPED[name]
    sizes = {"60.value": WIDTH, "61.value": HEIGHT, "62.value": shipped.frames, "7.steps": STEPS}
    expected = (WIDTH, HEIGHT, shipped.frames, FPS)
    result, *controls = run_headless(
        shipped.file, tiny_models_dir, tmp_path, sizes, shipped.prefixes, expected
    ).values()
    assert result.std() > 0  # not an empty stream
    for control in (frames.astype(np.float32) / 255.0 for frames in controls):
        bright = control.max(axis=-1) > 0.5  # [frames, H, W]
        assert bright.any(axis=(1, 2)).all()
        assert bright.mean() < 0.5
        assert np.abs(control[1:] - control[:-1]).mean() > 0.001
