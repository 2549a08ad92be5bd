"""The shipped control workflows: Wan 2.1 VACE steered by Canny edges of a video, by a camera move warped from a
start image, and by OpenPose keypoints; the same camera guide repainted by a text-to-video model (video-to-video);
and Wan 2.1 ATI steered by drawn tracks. Each keeps its real-use settings
and wiring, lists the models its loaders name, and runs headless on the tiny stand-ins (sized down through its
Width / Height / Frames inputs) to an mp4 of the asked size and frame count; the camera guide and the tracks drawn
over the ATI result come out as second videos, checked too."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from graph.registry import NodeRegistry
from graph.workflow_file import LoadedWorkflow, load_workflow
from tests.workflows.shipped import (
    WORKFLOWS,
    check_listed_models,
    check_settings_and_wiring,
    run_headless,
)

VACE = "wan2.1_vace_1.3B_fp16.safetensors"
ATI = "Wan2_1-I2V-ATI-14B_fp8_e4m3fn.safetensors"
WIDTH, HEIGHT, FRAMES, STEPS, FPS = 64, 48, 9, 2, 16  # not square, so a swapped width and height shows
MODEL_INPUTS = ("unet_name", "clip_name", "vae_name")
SIZE_PRIMITIVES = ("60.value={w}", "61.value={h}", "62.value={n}", "3.steps={s}")


@dataclass(frozen=True)
class Control:
    """A shipped control workflow: its saved video prefixes (the result first), the overrides that size it down, the
    input files it loads, and settings and links (API-format inputs by node id) it must keep."""

    file: str
    prefixes: tuple[str, ...]
    overrides: tuple[str, ...]
    inputs: tuple[str, ...]
    settings: dict[str, dict[str, Any]]


VACE_SAMPLING = {
    "37": {"unet_name": VACE},
    "48": {"shift": 8},
    "3": {"steps": 20, "cfg": 6, "sampler_name": "uni_pc", "scheduler": "simple", "latent_image": ["40", 2]},
    "40": {"width": ["60", 0], "height": ["61", 0], "length": ["62", 0], "strength": 1.0},
    "41": {"samples": ["3", 0], "trim_amount": ["40", 3]},
    "8": {"samples": ["41", 0]},
    "49": {"fps": FPS},
}
CONTROLS = {
    "canny": Control(
        "wan2.1_vace_canny_control.json",
        ("wan2.1_vace_canny",),
        SIZE_PRIMITIVES,
        ("reelgraph_sample.mp4",),
        {
            **VACE_SAMPLING,
            "60": {"value": 832},
            "61": {"value": 480},
            "62": {"value": 33},
            "70": {"video": "reelgraph_sample.mp4", "force_rate": 16, "frame_load_cap": ["62", 0]},
            "71": {"image": ["70", 0], "width": ["60", 0], "height": ["61", 0], "crop": "center"},
            "72": {"image": ["71", 0], "low_threshold": 0.4, "high_threshold": 0.8},
            "40": {**VACE_SAMPLING["40"], "control_video": ["72", 0]},
        },
    ),
    "camera": Control(
        "wan2.1_vace_camera_guide.json",
        ("wan2.1_vace_camera", "wan2.1_vace_camera_guide"),
        SIZE_PRIMITIVES,
        ("reelgraph_wan_start.jpg",),
        {
            **VACE_SAMPLING,
            "60": {"value": 832},
            "61": {"value": 480},
            "62": {"value": 81},
            "71": {"image": ["52", 0], "width": ["60", 0], "height": ["61", 0], "crop": "center"},
            "73": {"preset": "pan_right", "frames": ["62", 0], "easing": "ease_in_out", "width": ["60", 0]},
            "74": {"image": ["71", 0], "camera_path": ["73", 0]},
            "40": {
                **VACE_SAMPLING["40"],
                "control_video": ["74", 0],
                "control_masks": ["74", 1],
                "reference_image": ["71", 0],
            },
            "75": {"images": ["74", 0]},
        },
    ),
    "camera_v2v": Control(
        "wan2.1_camera_guide_v2v.json",
        ("wan2.1_camera_guide_v2v",),
        SIZE_PRIMITIVES,
        ("reelgraph_wan_start.jpg",),
        {
            "37": {"unet_name": "wan2.1_t2v_1.3B_fp16.safetensors"},
            "73": {"preset": "pan_right", "frames": ["62", 0], "width": ["60", 0]},
            "74": {"image": ["71", 0], "camera_path": ["73", 0]},
            "42": {"pixels": ["74", 0]},
            "3": {"latent_image": ["42", 0], "denoise": 0.7, "model": ["48", 0]},
            "8": {"samples": ["3", 0]},
        },
    ),
    "pose": Control(
        "wan2.1_vace_pose.json",
        ("wan2.1_vace_pose",),
        SIZE_PRIMITIVES,
        (),
        {
            **VACE_SAMPLING,
            "60": {"value": 832},
            "61": {"value": 480},
            "62": {"value": 81},
            "77": {"width": ["60", 0], "height": ["61", 0]},
            "78": {"image": ["77", 0], "amount": 6},
            "40": {**VACE_SAMPLING["40"], "control_video": ["78", 0]},
        },
    ),
    "ati": Control(
        "wan2.1_ati_tracks.json",
        ("wan2.1_ati", "wan2.1_ati_tracks_check"),
        ("50.width={w}", "50.height={h}", "62.value={n}", "3.steps={s}"),
        ("reelgraph_wan_start.jpg",),
        {
            "37": {"unet_name": ATI},
            "49": {"clip_name": "clip_vision_h.safetensors"},
            "62": {"value": 81},
            "70": {"width": 832, "height": 480, "frames": ["62", 0]},
            "50": {
                "width": 832,
                "height": 480,
                "length": ["62", 0],
                "start_image": ["52", 0],
                "clip_vision_output": ["51", 0],
                "tracks_data": ["70", 0],
            },
            "3": {"steps": 20, "cfg": 6, "sampler_name": "uni_pc", "scheduler": "simple", "latent_image": ["50", 2]},
            "71": {"images": ["8", 0], "tracks": ["70", 0]},
        },
    ),
}


def _load(control: Control, registry: NodeRegistry) -> LoadedWorkflow:
    return load_workflow(WORKFLOWS / control.file, registry)


def _run(control: Control, models_dir: Path, out: Path) -> dict[str, np.ndarray]:
    """Run the workflow headless, sized down through its overrides."""
    overrides = dict(item.format(w=WIDTH, h=HEIGHT, n=FRAMES, s=STEPS).split("=", 1) for item in control.overrides)
    return run_headless(control.file, models_dir, out, overrides, control.prefixes, (WIDTH, HEIGHT, FRAMES, FPS))


@pytest.mark.parametrize("name", sorted(CONTROLS))
def test_control_workflow_keeps_its_settings_and_wiring(name: str, registry: NodeRegistry) -> None:
    control = CONTROLS[name]
    check_settings_and_wiring(_load(control, registry), control.settings, control.prefixes, control.inputs)


@pytest.mark.parametrize("name", sorted(CONTROLS))
def test_control_workflow_lists_every_model_its_loaders_name(
    name: str, registry: NodeRegistry, tiny_models_dir: Path
) -> None:
    check_listed_models(_load(CONTROLS[name], registry), tiny_models_dir, MODEL_INPUTS)


@pytest.mark.parametrize("name", ["canny", "pose", "camera_v2v"])
def test_control_workflow_runs_headless_to_an_mp4(name: str, tiny_models_dir: Path, tmp_path: Path) -> None:
    (frames,) = _run(CONTROLS[name], tiny_models_dir, tmp_path).values()
    assert frames.std() > 0  # decoded pictures, not an empty stream


def test_camera_guide_workflow_pans_its_guide_and_trims_the_reference_frame(
    tiny_models_dir: Path, tmp_path: Path
) -> None:
    """The result has Frames frames although VACE sampled one more (the reference image's latent frame); the guide
    starts as the whole start image and, the camera having turned right, ends with the picture moved left and unknown
    (black) pixels at the right edge."""
    control = CONTROLS["camera"]
    guide = _run(control, tiny_models_dir, tmp_path)[control.prefixes[1]].astype(np.float32) / 255.0
    first, last = guide[0], guide[-1]
    assert first[:, -1].mean() > 0.3  # the start image fills the first frame
    assert last[:, -1].mean() < 0.1  # nothing of it is left at the right edge
    assert _best_shift_left(first, last, max_shift=4) >= 1  # the picture moved left, not only the edge went dark


def _best_shift_left(first: np.ndarray, last: np.ndarray, max_shift: int) -> int:
    """The whole-pixel shift to the left (0..max_shift) that best lines ``first`` up with ``last``."""
    kept = first.shape[1] - max_shift
    errors = [np.abs(first[:, shift : shift + kept] - last[:, :kept]).mean() for shift in range(max_shift + 1)]
    return int(np.argmin(errors))


def test_ati_workflow_runs_headless_and_draws_its_tracks_over_the_result(tiny_models_dir: Path, tmp_path: Path) -> None:
    control = CONTROLS["ati"]
    videos = _run(control, tiny_models_dir, tmp_path)
    result, checked = (videos[prefix].astype(np.int16) for prefix in control.prefixes)
    drawn = np.abs(checked - result).max(axis=-1) > 64  # [frames, H, W]: where a track line or point covers it
    assert drawn.any(axis=(1, 2)).all()  # every frame shows its track points
    assert drawn.mean() < 0.5  # and the video is still seen around them
