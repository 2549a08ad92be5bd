"""The shipped LTX-Video, HunyuanVideo and Mochi workflows: each keeps its real-use settings and lists the models its
loaders name, and runs headless on the tiny stand-ins (sized down, two steps) to an mp4 of the expected frame count,
size and frame rate."""

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
WORKFLOWS = REPO / "workflows"
INPUT = REPO / "input"
START, END = "reelgraph_wan_start.jpg", "reelgraph_wan_end.jpg"
MODEL_INPUTS = ("ckpt_name", "unet_name", "clip_name", "clip_name1", "clip_name2", "vae_name", "model_name")


@dataclass(frozen=True)
class Shipped:
    """A shipped workflow: the node holding its video size, the inputs that cut its sampling short, what it keeps."""

    file: str
    size_node: str
    steps: dict[str, dict[str, int]]
    fps: int
    prefix: str
    settings: dict[str, dict[str, Any]]
    size: tuple[int, int, int]  # width, height, frames set on size_node for the run
    scale: int = 1  # the output's width and height over size's (a latent upscale doubles them)
    images: tuple[str, ...] = ()


LTX_SCHEDULE = {"steps": 30, "max_shift": 2.05, "base_shift": 0.95, "stretch": True, "terminal": 0.1}
LTX_LOADERS = {
    "1": {"ckpt_name": "ltx-video-2b-v0.9.5.safetensors"},
    "2": {"clip_name": "t5xxl_fp16.safetensors", "type": "ltxv"},
}
HUNYUAN_LOADERS = {
    "2": {"clip_name1": "clip_l.safetensors", "clip_name2": "llava_llama3_fp8_scaled.safetensors"},
    "3": {"vae_name": "hunyuan_video_vae_bf16.safetensors"},
    "5": {"guidance": 6},
    "6": {"shift": 7},
    "7": {"scheduler": "simple", "steps": 20, "denoise": 1},
    "8": {"sampler_name": "euler"},
}

SHIPPED = {
    "ltxv_t2v": Shipped(
        "ltxv_t2v.json",
        "5",
        {"7": {"steps": 2}},
        24,
        "ltxv_t2v",
        {
            **LTX_LOADERS,
            "5": {"width": 768, "height": 512, "length": 97, "batch_size": 1},
            "6": {"frame_rate": 25},
            "7": LTX_SCHEDULE,
            "8": {"sampler_name": "euler"},
            "10": {"cfg": 3},
            "13": {"fps": 24},
        },
        size=(96, 64, 9),
    ),
    "ltxv_i2v": Shipped(
        "ltxv_i2v.json",
        "7",
        {"9": {"steps": 2}},
        24,
        "ltxv_i2v",
        {
            **LTX_LOADERS,
            "5": {"image": START},
            "6": {"img_compression": 40},
            "7": {"width": 768, "height": 512, "length": 97, "strength": 1.0},
            "8": {"frame_rate": 25},
            "9": LTX_SCHEDULE,
            "12": {"cfg": 3},
        },
        size=(96, 64, 9),
        images=(START,),
    ),
    "ltxv_keyframes_upscale": Shipped(
        "ltxv_keyframes_upscale.json",
        "9",
        {"13": {"steps": 2}, "21": {"steps": 2}, "22": {"step": 1}},
        24,
        "ltxv_keyframes_upscale",
        {
            **LTX_LOADERS,
            "20": {"model_name": "ltxv-spatial-upscaler-0.9.7.safetensors"},
            "9": {"width": 512, "height": 352, "length": 97},
            "11": {"frame_idx": 0, "strength": 1.0},
            "12": {"frame_idx": -1, "strength": 1.0},
            "13": LTX_SCHEDULE,
            "21": LTX_SCHEDULE,
            "22": {"step": 17},
        },
        size=(64, 64, 9),
        scale=2,
        images=(START, END),
    ),
    "hunyuan_video_t2v": Shipped(
        "hunyuan_video_t2v.json",
        "15",
        {"7": {"steps": 2}},
        24,
        "hunyuan_video_t2v",
        {
            "1": {"unet_name": "hunyuan_video_t2v_720p_bf16.safetensors"},
            **HUNYUAN_LOADERS,
            "15": {"width": 848, "height": 480, "length": 73, "batch_size": 1},
        },
        size=(96, 64, 5),
    ),
    "hunyuan_video_i2v": Shipped(
        "hunyuan_video_i2v.json",
        "16",
        {"7": {"steps": 2}},
        24,
        "hunyuan_video_i2v",
        {
            "1": {"unet_name": "hunyuan_video_image_to_video_720p_bf16.safetensors"},
            **HUNYUAN_LOADERS,
            "15": {"image": START},
            "16": {"width": 848, "height": 480, "length": 53, "guidance_type": "v1 (concat)"},
        },
        size=(96, 64, 5),
        images=(START,),
    ),
    "mochi_t2v": Shipped(
        "mochi_t2v.json",
        "6",
        {"7": {"steps": 2}},
        24,
        "mochi_t2v",
        {
            "1": {"unet_name": "mochi_preview_bf16.safetensors"},
            "2": {"clip_name": "t5xxl_fp16.safetensors", "type": "mochi"},
            "3": {"vae_name": "mochi_vae.safetensors"},
            "6": {"width": 848, "height": 480, "length": 37, "batch_size": 1},
            "7": {"steps": 30, "cfg": 4.5, "sampler_name": "euler", "scheduler": "simple", "denoise": 1},
        },
        size=(96, 64, 7),
    ),
}


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_family_workflow_keeps_its_settings_and_lists_its_models(
    name: str, registry: NodeRegistry, tiny_models_dir: Path
) -> None:
    shipped = SHIPPED[name]
    loaded = load_workflow(WORKFLOWS / shipped.file, registry)
    assert loaded.ui is not None and loaded.ui["version"] == 0.4
    for node_id, expected in shipped.settings.items():
        inputs = loaded.api[node_id]["inputs"]
        assert {key: inputs.get(key) for key in expected} == expected, node_id
    savers = [body for body in loaded.api.values() if body["class_type"] == "SaveVideo"]
    assert [body["inputs"]["filename_prefix"] for body in savers] == [f"video/{shipped.prefix}"]
    creators = [body for body in loaded.api.values() if body["class_type"] == "CreateVideo"]
    assert [body["inputs"]["fps"] for body in creators] == [shipped.fps]
    notes = [node for node in loaded.ui["nodes"] if node["type"] == "MarkdownNote"]
    assert len(notes) == 1 and str(notes[0]["id"]) not in loaded.api  # shown in the editor, never run
    listed = required_models(loaded.ui)
    assert all(entry.repo_id is not None for entry in listed)  # each with a Hugging Face download URL
    named = {value for body in loaded.api.values() for key, value in body["inputs"].items() if key in MODEL_INPUTS}
    assert {entry.name for entry in listed} == named  # every file a loader names is in the model list
    assert all((tiny_models_dir / entry.folder / entry.name).is_file() for entry in listed)  # the offline first run
    used_images = {body["inputs"]["image"] for body in loaded.api.values() if body["class_type"] == "LoadImage"}
    assert used_images == set(shipped.images)


def _run_args(shipped: Shipped, models_dir: Path, tmp_path: Path) -> list[str]:
    width, height, length = shipped.size
    args = [str(WORKFLOWS / shipped.file), "--models-dir", str(models_dir), "--output-dir", str(tmp_path / "out")]
    args += ["--temp-dir", str(tmp_path / "temp"), "--input-dir", str(INPUT), "--no-progress", "--cpu"]
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
        expected = (width * shipped.scale, height * shipped.scale, shipped.fps)
        assert (stream.width, stream.height, stream.average_rate) == expected
        assert sum(1 for _ in container.decode(stream)) == length
        assert "workflow" in container.metadata  # dropping it on the editor restores the graph


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_family_workflow_runs_headless_to_an_mp4(
    name: str, tiny_models_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shipped = SHIPPED[name]
    code = main.main(["run", *_run_args(shipped, tiny_models_dir, tmp_path)])
    assert code == 0, capsys.readouterr().err
    _check_video(shipped, tmp_path)
