"""The shipped SkyReels-V2 diffusion-forcing workflows (text-to-video, and image-to-video from a start image): each
keeps its real-use settings (a long video in overlapping chunks), lists the models its loaders name, and runs
headless on the tiny stand-ins (sized down, two steps, chunks small enough that the video still takes several) to an
mp4 of the expected frame count, size and frame rate."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import pytest

import main
from graph.registry import NodeRegistry
from graph.workflow_file import load_workflow
from models.requirements import required_models

REPO = Path(__file__).resolve().parents[2]
INPUT = REPO / "input"
START = "reelgraph_wan_start.jpg"
SAMPLER = "7"
LOADERS = {
    "1": {"unet_name": "Wan2_1-SkyReels-V2-DF-1_3B-540P_fp32.safetensors"},
    "2": {"clip_name": "umt5_xxl_fp8_e4m3fn_scaled.safetensors", "type": "wan"},
    "6": {"width": 960, "height": 544, "length": 257, "batch_size": 1},
    "9": {"fps": 24},
}
FORCING = {"base_num_frames": 97, "overlap_history": 17, "ar_step": 0, "causal_block_size": 1}
FORCING |= {"addnoise_condition": 20, "fps": 24, "steps": 30}
WIDTH, HEIGHT, LENGTH = 64, 48, 17
TINY_RUN = {"6.width": WIDTH, "6.height": HEIGHT, "6.length": LENGTH}
TINY_RUN |= {f"{SAMPLER}.steps": 2, f"{SAMPLER}.base_num_frames": 9, f"{SAMPLER}.overlap_history": 5}


@dataclass(frozen=True)
class Shipped:
    """A shipped workflow: its settings by node id, the run's overrides beyond ``TINY_RUN``, the images it loads."""

    name: str
    settings: dict[str, dict[str, Any]]
    tiny_run: dict[str, Any]
    images: frozenset[str] = frozenset()


SHIPPED = (
    Shipped(
        "skyreels_v2_df_t2v",
        {**LOADERS, SAMPLER: {**FORCING, "cfg": 6, "shift": 8}},
        TINY_RUN,
    ),
    Shipped(
        "skyreels_v2_i2v",
        {
            **LOADERS,
            SAMPLER: {**FORCING, "cfg": 5, "shift": 5},
            "12": {"image": START},
            "13": {"width": 960, "height": 544, "crop": "center"},
        },
        {**TINY_RUN, "13.width": WIDTH, "13.height": HEIGHT},
        frozenset({START}),
    ),
)


@pytest.mark.parametrize("shipped", SHIPPED, ids=lambda shipped: shipped.name)
def test_the_workflow_keeps_its_settings_and_lists_its_models(
    registry: NodeRegistry, tiny_models_dir: Path, shipped: Shipped
) -> None:
    loaded = load_workflow(REPO / "workflows" / f"{shipped.name}.json", registry)
    assert loaded.ui is not None and loaded.ui["version"] == 0.4
    for node_id, expected in shipped.settings.items():
        inputs = loaded.api[node_id]["inputs"]
        assert {key: inputs.get(key) for key in expected} == expected, node_id
    listed = required_models(loaded.ui)
    assert all(entry.repo_id is not None for entry in listed)
    named = {value for body in loaded.api.values() for key, value in body["inputs"].items() if key.endswith("_name")}
    assert {entry.name for entry in listed} == named
    assert all((tiny_models_dir / entry.folder / entry.name).is_file() for entry in listed)
    loads = {body["inputs"]["image"] for body in loaded.api.values() if body["class_type"] == "LoadImage"}
    assert loads == shipped.images
    assert all((INPUT / image).is_file() for image in loads)


@pytest.mark.parametrize("shipped", SHIPPED, ids=lambda shipped: shipped.name)
def test_the_workflow_runs_headless_to_an_mp4(
    tiny_models_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], shipped: Shipped
) -> None:
    args = [str(REPO / "workflows" / f"{shipped.name}.json"), "--models-dir", str(tiny_models_dir)]
    args += ["--output-dir", str(tmp_path / "out"), "--temp-dir", str(tmp_path / "temp")]
    args += ["--input-dir", str(INPUT), "--no-progress", "--cpu"]
    args += [f"--set={key}={value}" for key, value in shipped.tiny_run.items()]
    assert main.main(["run", *args]) == 0, capsys.readouterr().err
    (mp4,) = (tmp_path / "out" / "video").glob(f"{shipped.name}_*.mp4")
    with av.open(str(mp4)) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height, stream.average_rate) == (WIDTH, HEIGHT, 24)
        assert sum(1 for _ in container.decode(stream)) == LENGTH
