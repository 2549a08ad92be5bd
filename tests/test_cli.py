"""``main.py run``: the shipped workflows write the expected PNGs; bad workflows exit non-zero naming node and input."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import av
import pytest
from PIL import Image

import main

REPO = Path(__file__).resolve().parent.parent
API_WORKFLOW = REPO / "workflows" / "invert_crop_api.json"
UI_WORKFLOW = REPO / "workflows" / "blend_scale_ui.json"


def run_cli(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "main.py", "run", *args, "--output-dir", str(tmp_path / "out")]
    command += ["--temp-dir", str(tmp_path / "temp"), "--input-dir", str(tmp_path / "in")]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120, env=env)


def test_api_workflow_writes_pngs_with_both_jsons(tmp_path: Path) -> None:
    completed = run_cli(str(API_WORKFLOW), tmp_path=tmp_path)
    assert completed.returncode == 0, completed.stderr
    files = sorted((tmp_path / "out" / "examples").glob("inverted_*.png"))
    assert [f.name for f in files] == ["inverted_00001_.png", "inverted_00002_.png"]  # batch of 2
    assert str(files[0]) in completed.stdout
    assert "node/s" in completed.stderr  # the progress bar
    with Image.open(files[0]) as image:
        assert image.size == (128, 128)
        assert image.convert("RGB").getpixel((5, 5)) == (0, 153, 255)  # orange 0xFF6600 inverted
        embedded_prompt = json.loads(image.text["prompt"])
        embedded_workflow = json.loads(image.text["workflow"])
    assert embedded_prompt == json.loads(API_WORKFLOW.read_text())
    assert {node["type"] for node in embedded_workflow["nodes"]} == {
        "EmptyImage",
        "ImageInvert",
        "ImageCrop",
        "SaveImage",
    }


def test_ui_workflow_writes_png_with_both_jsons(tmp_path: Path) -> None:
    completed = run_cli(str(UI_WORKFLOW), tmp_path=tmp_path)
    assert completed.returncode == 0, completed.stderr
    (file,) = (tmp_path / "out" / "examples").glob("blend_*.png")
    with Image.open(file) as image:
        assert image.size == (128, 128)  # 256 scaled by 0.5
        red, green, blue = image.convert("RGB").getpixel((10, 10))
        # red (1,0,0) multiplied by gray 128/255, mixed half-and-half with red; the bypassed invert did nothing
        assert abs(red - round(255 * (0.5 + 0.5 * 128 / 255))) <= 1 and green == 0 and blue == 0
        prompt = json.loads(image.text["prompt"])
        workflow = json.loads(image.text["workflow"])
    assert workflow == json.loads(UI_WORKFLOW.read_text())
    assert sorted(body["class_type"] for body in prompt.values()) == [
        "EmptyImage",
        "EmptyImage",
        "ImageBlend",
        "ImageScaleBy",
        "SaveImage",
    ]
    assert prompt["5"]["inputs"]["images"] == ["4", 0]  # rewired around the bypassed node


def test_set_overrides_an_input(tmp_path: Path) -> None:
    completed = run_cli(
        str(API_WORKFLOW), "--set", "3.width=64", "--set", "4.filename_prefix=custom", tmp_path=tmp_path
    )
    assert completed.returncode == 0, completed.stderr
    (first, _) = sorted((tmp_path / "out").glob("custom_*.png"))
    with Image.open(first) as image:
        assert image.size == (64, 128)


def api_with(change: Any) -> dict[str, Any]:
    api = copy.deepcopy(json.loads(API_WORKFLOW.read_text()))
    change(api)
    return api


def _set(node: str, name: str, value: Any) -> Any:
    return lambda api: api[node]["inputs"].__setitem__(name, value)


def _drop(node: str, name: str) -> Any:
    return lambda api: api[node]["inputs"].pop(name)


def _retype(node: str, class_type: str, inputs: dict[str, Any]) -> Any:
    return lambda api: api.__setitem__(node, {"class_type": class_type, "inputs": inputs})


BAD_WORKFLOWS = {
    "missing_node_type": (_retype("2", "NoSuchNode", {"image": ["1", 0]}), ["NoSuchNode", "not found", "#2"]),
    "required_input_missing": (_drop("3", "width"), ['#3 ImageCrop "Crop"', "'width'", "Required input is missing"]),
    "link_to_missing_node": (_set("3", "image", ["99", 0]), ["#3 ImageCrop", "'image'", "node 99"]),
    "bad_output_slot": (_set("3", "image", ["2", 4]), ["#3 ImageCrop", "'image'", "output 4"]),
    "malformed_link": (_set("3", "image", ["2"]), ["#3 ImageCrop", "'image'", "Bad linked input"]),
    "type_mismatch": (
        lambda api: (
            api.__setitem__("9", {"class_type": "PrimitiveInt", "inputs": {"value": 3}}),
            _set("2", "image", ["9", 0])(api),
        ),
        ["#2 ImageInvert", "'image'", "INT", "IMAGE"],
    ),
    "below_min": (_set("3", "width", 0), ["#3 ImageCrop", "'width'", "smaller than min of 1"]),
    "above_max": (_set("3", "height", 20000), ["#3 ImageCrop", "'height'", "bigger than max of 16384"]),
    "wrong_type": (_set("3", "x", "left"), ["#3 ImageCrop", "'x'", "INT"]),
    "not_in_list": (
        _retype("2", "ImageScaleBy", {"image": ["1", 0], "upscale_method": "magic", "scale_by": 1.0}),
        ["#2 ImageScaleBy", "'upscale_method'", "magic"],
    ),
    "cycle": (_set("2", "image", ["3", 0]), ["#2 ImageInvert", "cycle"]),
    "no_outputs": (lambda api: api.pop("4"), ["no outputs"]),
}


@pytest.mark.parametrize("case", sorted(BAD_WORKFLOWS))
def test_bad_workflows_exit_non_zero_naming_node_and_input(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    change, expected = BAD_WORKFLOWS[case]
    path = tmp_path / f"{case}.json"
    path.write_text(json.dumps(api_with(change)))
    code = main.main(["run", str(path), "--output-dir", str(tmp_path / "out"), "--no-progress"])
    stderr = capsys.readouterr().err
    assert code == 2, stderr
    for fragment in expected:
        assert fragment in stderr, f"{fragment!r} missing from:\n{stderr}"
    assert not (tmp_path / "out" / "examples").exists()


def test_invalid_json_file_names_file_and_position(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"1": {"class_type": "EmptyImage",\n  "inputs": }')
    assert main.main(["run", str(path), "--no-progress"]) == 2
    stderr = capsys.readouterr().err
    assert "broken.json" in stderr and "line 2" in stderr


@pytest.mark.parametrize(
    ("override", "expected"),
    [("42.width=5", "no node 42"), ("3.depth=5", "no input 'depth'"), ("width=5", "NODE_ID.INPUT=VALUE")],
)
def test_bad_overrides_are_refused(override: str, expected: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main.main(["run", str(API_WORKFLOW), "--set", override, "--no-progress"]) == 2
    assert expected in capsys.readouterr().err


def test_node_failure_exits_1_naming_the_node(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "escape.json"
    path.write_text(json.dumps(api_with(_set("4", "filename_prefix", "../../outside"))))
    code = main.main(["run", str(path), "--output-dir", str(tmp_path / "out"), "--no-progress"])
    stderr = capsys.readouterr().err
    assert code == 1
    assert '#4 SaveImage "Save" failed' in stderr and "filename_prefix" in stderr
    escaped = (tmp_path / "out" / "../../outside_00001_.png").resolve()
    assert escaped.parent == tmp_path.parent and not escaped.exists()


@pytest.mark.parametrize("flags", [["--cache-ram", "0"], ["--cache-none", "--cache-all"], ["--cache-ram", "lots"]])
def test_bad_arguments_exit_2(flags: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main.main(["run", str(API_WORKFLOW), *flags])
    assert exited.value.code == 2
    assert "--cache" in capsys.readouterr().err


def test_extract_workflow_prints_the_embedded_workflow_or_prompt(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from PIL.PngImagePlugin import PngInfo

    workflow = {"last_node_id": 1, "nodes": [{"id": 1, "type": "EmptyImage"}], "links": [], "version": 0.4}
    prompt = {"1": {"class_type": "EmptyImage", "inputs": {}}}
    info = PngInfo()
    info.add_text("prompt", json.dumps(prompt))
    info.add_text("workflow", json.dumps(workflow))
    Image.new("RGB", (2, 2)).save(tmp_path / "shot.png", pnginfo=info)
    assert main.main(["extract-workflow", str(tmp_path / "shot.png")]) == 0
    assert json.loads(capsys.readouterr().out) == workflow
    assert main.main(["extract-workflow", str(tmp_path / "shot.png"), "--api"]) == 0
    assert json.loads(capsys.readouterr().out) == prompt


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "no such file"), (b"", "plain.png"), (b"hello, not an image", "notes.txt")],
)
def test_extract_workflow_fails_clearly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes | None, message: str
) -> None:
    if content == b"":
        Image.new("RGB", (2, 2)).save(tmp_path / "plain.png")
        path = tmp_path / "plain.png"
    else:
        path = tmp_path / "notes.txt"
        if content is not None:
            path.write_bytes(content)
    assert main.main(["extract-workflow", str(path)]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and message in captured.err


def test_video_workflow_runs_headless_and_saves_mp4_and_gif(tmp_path: Path) -> None:
    """The shipped frame-ops workflow on the shipped sample clip (the repo's input folder)."""
    command = [sys.executable, "main.py", "run", str(REPO / "workflows" / "video_frame_ops_api.json")]
    command += ["--output-dir", str(tmp_path / "out"), "--temp-dir", str(tmp_path / "temp"), "--no-progress"]
    completed = subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"}
    )
    assert completed.returncode == 0, completed.stderr
    (mp4,) = (tmp_path / "out" / "examples").glob("frame_ops_*.mp4")
    (gif,) = (tmp_path / "out" / "examples").glob("frame_ops_*.gif")
    with av.open(str(mp4)) as container:
        video = container.streams.video[0]
        assert (video.width, video.height, video.average_rate) == (256, 128, 12)
        assert sum(1 for _ in container.decode(video)) == 46  # 24 frames ping-ponged without repeating the turns
        assert container.streams.audio and json.loads(container.metadata["prompt"])["5"]["class_type"] == "SaveVideoAs"
    with Image.open(gif) as image:
        assert image.size == (256, 128) and image.n_frames == 46
    assert str(mp4) in completed.stdout and str(gif) in completed.stdout


def test_extra_model_paths_config_is_read_by_run_and_bad_files_are_argument_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shared = tmp_path / "shared_models"
    (shared / "checkpoints").mkdir(parents=True)
    (shared / "checkpoints" / "shared.safetensors").write_bytes(b"")
    config_file = tmp_path / "extra.yaml"
    config_file.write_text(f"mine:\n  base_path: {shared}\n  checkpoints: checkpoints/\n")
    args = main.build_parser().parse_args(["run", "w.json", "--extra-model-paths-config", str(config_file)])
    config = main.app_config_from_args(args)
    assert "shared.safetensors" in config.model_folders.list_files("checkpoints")
    config_file.write_text("mine:\n  checkpoints: [unclosed\n")
    with pytest.raises(SystemExit) as exited:
        main.main(["run", "w.json", "--extra-model-paths-config", str(config_file)])
    assert exited.value.code == 2 and "extra.yaml" in capsys.readouterr().err


def test_check_reads_extra_model_paths_and_refuses_bad_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A loader file found only in an extra model folder is there for ``check``; a bad file is an argument error."""
    shared = tmp_path / "shared_models"
    (shared / "vae").mkdir(parents=True)
    (shared / "vae" / "shared_vae.safetensors").write_bytes(b"")
    config_file = tmp_path / "extra.yaml"
    config_file.write_text(f"mine:\n  base_path: {shared}\n  vae: vae/\n")
    prompt = {
        "1": {"class_type": "VAELoader", "inputs": {"vae_name": "shared_vae.safetensors"}},
        "2": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
        "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}},
    }
    workflow = tmp_path / "w.json"
    workflow.write_text(json.dumps(prompt))
    models = ["--models-dir", str(tmp_path / "models")]
    assert main.main(["check", str(workflow), *models, "--extra-model-paths-config", str(config_file)]) == 0
    assert main.main(["check", str(workflow), *models]) == 1
    assert "vae/shared_vae.safetensors (used by node 1 vae_name)" in capsys.readouterr().out
    config_file.write_text("mine:\n  vae: [unclosed\n")
    with pytest.raises(SystemExit) as exited:
        main.main(["check", str(workflow), "--extra-model-paths-config", str(config_file)])
    assert exited.value.code == 2 and "extra.yaml" in capsys.readouterr().err


def test_memory_options_reach_the_engine_config() -> None:
    args = main.build_parser().parse_args(["run", "w.json", "--vram-budget", "1.5", "--ram-budget", "4", "--cpu"])
    memory = main.app_config_from_args(args).memory
    assert memory.device_budget_bytes == int(1.5 * 1024**3) and memory.ram_budget_bytes == 4 * 1024**3
    assert memory.mode == "cpu"
    with pytest.raises(SystemExit):
        main.main(["run", "w.json", "--vram-budget", "0"])


@pytest.mark.parametrize(
    ("flags", "mode"),
    [([], "auto"), (["--highvram"], "highvram"), (["--lowvram"], "lowvram"), (["--novram"], "novram")],
)
def test_memory_mode_flags_set_the_manager_mode(flags: list[str], mode: str) -> None:
    args = main.build_parser().parse_args(["serve", *flags])
    assert main.app_config_from_args(args).memory.mode == mode


def test_memory_mode_flags_exclude_each_other(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main.main(["run", "w.json", "--lowvram", "--cpu"])
    assert exited.value.code == 2 and "not allowed with argument" in capsys.readouterr().err


def test_make_tiny_models_writes_the_release_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main.main(["make-tiny-models", str(tmp_path / "weights")]) == 0
    printed = capsys.readouterr().out.split()
    names = {Path(line).relative_to(tmp_path / "weights").as_posix() for line in printed}
    assert {
        "diffusion_models/wan2.1_t2v_1.3B_fp16.safetensors",
        "diffusion_models/wan2.2_i2v_high_noise_14B_fp8_scaled.safetensors",
        "text_encoders/umt5_xxl_fp8_e4m3fn_scaled.safetensors",
        "vae/wan2.2_vae.safetensors",
        "clip_vision/clip_vision_h.safetensors",
    } <= names
    assert all((tmp_path / "weights" / name).exists() for name in names)
    (tmp_path / "file").write_text("x")
    assert main.main(["make-tiny-models", str(tmp_path / "file")]) == 1
    assert "not a folder" in capsys.readouterr().err
