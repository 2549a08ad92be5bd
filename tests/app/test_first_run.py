"""The offline first run: ``run`` on a workflow whose models are missing offers tiny stand-ins (asks on a terminal,
accepts with ``--tiny-models``, else prints the commands), ``serve`` logs the offer, and real files are never
replaced."""

from __future__ import annotations

import io
import json
import logging
import shutil
from pathlib import Path

import av
import pytest

import main
from app.first_run import (
    MANIFEST_NAME,
    check_models,
    install_tiny_models,
    log_serve_offer,
    offer_tiny_models,
    read_manifest,
    serve_start_offer,
    tiny_stand_in_names,
)
from models.extra_paths import ExtraModelPaths
from models.folders import ModelFolders

REPO = Path(__file__).resolve().parents[2]
T2V = REPO / "workflows" / "wan2.1_t2v_1.3B.json"
T2V_FILES = (
    "diffusion_models/wan2.1_t2v_1.3B_fp16.safetensors",
    "text_encoders/umt5_xxl_fp8_e4m3fn_scaled.safetensors",
    "vae/wan_2.1_vae.safetensors",
)
SMALL = ["--set", "40.width=64", "--set", "40.height=64", "--set", "40.length=5", "--set", "3.steps=1"]


class Terminal(io.StringIO):
    """Typed answers on a terminal."""

    def isatty(self) -> bool:
        return True


def _workflow(*files: str) -> dict:
    """A UI workflow whose one node lists ``files`` (``folder/name``) as its models."""
    models = [{"name": f.split("/", 1)[1], "directory": f.split("/", 1)[0], "url": None} for f in files]
    return {"nodes": [{"id": 1, "type": "UNETLoader", "properties": {"models": models}}], "links": []}


@pytest.fixture
def fake_writer(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """``write_tiny_models`` writing three small stand-ins (two files, a tokenizer folder) marked with the seed;
    returns the seeds it was called with."""
    calls: list[int] = []

    def write(models_dir: Path, seed: int = 0) -> list[Path]:
        calls.append(seed)
        paths = []
        for entry in ("vae/wan_2.1_vae.safetensors", "diffusion_models/wan2.1_t2v_1.3B_fp16.safetensors"):
            path = models_dir / entry
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"stand-in {seed}")
            paths.append(path)
        tokenizer = models_dir / "tokenizers" / "umt5-xxl"
        tokenizer.mkdir(parents=True)
        (tokenizer / "tokenizer.json").write_text(f"stand-in {seed}")
        return [*paths, tokenizer]

    monkeypatch.setattr("models.tiny.write_tiny_models", write)
    return calls


@pytest.fixture
def copying_writer(monkeypatch: pytest.MonkeyPatch, tiny_models_dir: Path) -> None:
    """``write_tiny_models`` copying the session's real stand-ins (the same files, without building them again)."""

    def write(models_dir: Path, seed: int = 0) -> list[Path]:
        shutil.copytree(tiny_models_dir, models_dir, dirs_exist_ok=True)
        return [entry for folder in sorted(models_dir.iterdir()) for entry in sorted(folder.iterdir())]

    monkeypatch.setattr("models.tiny.write_tiny_models", write)


def _run(models_dir: Path, tmp_path: Path, *extra: str) -> int:
    args = ["run", str(T2V), "--models-dir", str(models_dir), "--output-dir", str(tmp_path / "out")]
    return main.main([*args, "--temp-dir", str(tmp_path / "temp"), "--no-progress", "--cpu", *SMALL, *extra])


def test_run_without_models_names_them_and_the_way_to_stand_ins(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    models_dir = tmp_path / "weights"
    assert _run(models_dir, tmp_path) == 2  # not a terminal: nothing asked, nothing written
    err = capsys.readouterr().err
    for entry in T2V_FILES:
        assert entry in err
    assert "Comfy-Org/Wan_2.1_ComfyUI_repackaged" in err
    assert "--tiny-models" in err and f"./start.sh make-tiny-models {models_dir}" in err
    assert "#37 UNETLoader" in err  # then validation names the loader
    assert not models_dir.exists() or not any(p.is_file() for p in models_dir.rglob("*"))


def test_run_with_tiny_models_writes_the_stand_ins_and_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], copying_writer: None
) -> None:
    models_dir = tmp_path / "weights"
    assert _run(models_dir, tmp_path, "--tiny-models") == 0, capsys.readouterr().err
    err = capsys.readouterr().err
    assert "tiny stand-ins" in err and "noise" in err
    assert set(T2V_FILES) <= read_manifest(models_dir)
    (mp4,) = (tmp_path / "out" / "video").glob("wan2.1_t2v_*.mp4")
    with av.open(str(mp4)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 5
    assert _run(models_dir, tmp_path) == 0  # the next run says what it runs on and writes nothing
    err = capsys.readouterr().err
    assert "note: running on tiny random-weight stand-ins" in err and "wrote" not in err


def test_a_terminal_is_asked_and_only_yes_writes(tmp_path: Path, fake_writer: list[int]) -> None:
    models_dir = tmp_path / "weights"
    folders = ModelFolders(models_dir)
    workflow = _workflow("vae/wan_2.1_vae.safetensors")
    err = io.StringIO()
    offer_tiny_models(workflow, folders, models_dir, accept=False, stdin=Terminal("n\n"), err=err)
    assert "[y/N]" in err.getvalue() and fake_writer == []
    offer_tiny_models(workflow, folders, models_dir, accept=False, stdin=Terminal(""), err=io.StringIO())
    assert fake_writer == []  # end of input is a no
    offer_tiny_models(workflow, folders, models_dir, accept=False, stdin=Terminal("Y\n"), err=err)
    assert (models_dir / "vae" / "wan_2.1_vae.safetensors").read_text() == "stand-in 0"
    assert "wrote 3 tiny stand-ins" in err.getvalue()


def test_stand_ins_never_replace_real_files(tmp_path: Path, fake_writer: list[int]) -> None:
    models_dir, shared = tmp_path / "weights", tmp_path / "shared"
    (models_dir / "vae").mkdir(parents=True)
    (models_dir / "vae" / "wan_2.1_vae.safetensors").write_text("real")
    (shared / "diffusion_models").mkdir(parents=True)
    (shared / "diffusion_models" / "wan2.1_t2v_1.3B_fp16.safetensors").write_text("real, shared")
    folders = ModelFolders(
        models_dir, ExtraModelPaths(first={}, last={"diffusion_models": (shared / "diffusion_models",)})
    )
    result = install_tiny_models(models_dir, folders)
    assert result.written == [models_dir / "tokenizers" / "umt5-xxl"]
    assert sorted(result.kept) == sorted(
        [
            (models_dir / "vae/wan_2.1_vae.safetensors").resolve(),
            (shared / "diffusion_models/wan2.1_t2v_1.3B_fp16.safetensors").resolve(),
        ]
    )
    assert (models_dir / "vae" / "wan_2.1_vae.safetensors").read_text() == "real"
    assert not (models_dir / "diffusion_models" / "wan2.1_t2v_1.3B_fp16.safetensors").exists()  # not shadowed
    assert read_manifest(models_dir) == {"tokenizers/umt5-xxl"}
    assert not [p for p in models_dir.iterdir() if p.name.startswith(".")]  # the staging folder is gone
    install_tiny_models(models_dir, folders, seed=3)  # recorded stand-ins are refreshed, real files still kept
    assert (models_dir / "tokenizers" / "umt5-xxl" / "tokenizer.json").read_text() == "stand-in 3"
    assert (models_dir / "vae" / "wan_2.1_vae.safetensors").read_text() == "real"


def test_no_stand_ins_are_offered_beside_real_models(tmp_path: Path, fake_writer: list[int]) -> None:
    """A tiny transformer cannot take a real text encoder's output: with any real model present, only the list."""
    models_dir = tmp_path / "weights"
    (models_dir / "vae").mkdir(parents=True)
    (models_dir / "vae" / "wan_2.1_vae.safetensors").write_text("real")
    folders = ModelFolders(models_dir)
    workflow = _workflow(*T2V_FILES)
    check = check_models(workflow, folders, models_dir)
    assert [r.name for r in check.present] == ["wan_2.1_vae.safetensors"] and not check.can_offer
    err = io.StringIO()
    offer_tiny_models(workflow, folders, models_dir, accept=True, stdin=Terminal("y\n"), err=err)
    assert fake_writer == [] and "2 model file(s)" in err.getvalue() and "--tiny-models" not in err.getvalue()
    err = io.StringIO()
    offer_tiny_models(
        _workflow("loras/my_style.safetensors"), folders, models_dir, accept=True, stdin=Terminal(), err=err
    )
    assert fake_writer == [] and "loras/my_style.safetensors" in err.getvalue()  # no stand-in for it: no offer


def test_api_workflows_and_complete_ones_pass_silently(tmp_path: Path, fake_writer: list[int]) -> None:
    folders = ModelFolders(tmp_path)
    err = io.StringIO()
    offer_tiny_models(None, folders, tmp_path, accept=True, stdin=Terminal(), err=err)
    offer_tiny_models(_workflow(), folders, tmp_path, accept=True, stdin=Terminal(), err=err)
    assert err.getvalue() == "" and fake_writer == []


def test_serve_logs_the_offer_while_the_model_folders_are_empty(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folders = ModelFolders(tmp_path)
    with caplog.at_level(logging.WARNING, logger="app.first_run"):
        log_serve_offer(folders, tmp_path)
    assert f"./start.sh make-tiny-models {tmp_path}" in caplog.text and "noise" in caplog.text
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "mine.safetensors").write_bytes(b"")
    assert serve_start_offer(folders, tmp_path) is None


def test_make_tiny_models_keeps_real_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fake_writer: list[int]
) -> None:
    (tmp_path / "vae").mkdir()
    (tmp_path / "vae" / "wan_2.1_vae.safetensors").write_text("real")
    assert main.main(["make-tiny-models", str(tmp_path), "--seed", "2"]) == 0
    captured = capsys.readouterr()
    assert "wan_2.1_vae.safetensors" not in captured.out and "umt5-xxl" in captured.out
    assert "kept" in captured.err and "wan_2.1_vae.safetensors" in captured.err
    assert (tmp_path / "vae" / "wan_2.1_vae.safetensors").read_text() == "real"
    assert "tokenizers/umt5-xxl" in (tmp_path / MANIFEST_NAME).read_text() and fake_writer == [2]


@pytest.mark.parametrize("path", sorted((REPO / "workflows").glob("wan*.json")), ids=lambda p: p.name)
def test_every_shipped_wan_workflow_gets_the_offer_on_a_first_run(path: Path, tmp_path: Path) -> None:
    check = check_models(json.loads(path.read_text()), ModelFolders(tmp_path), tmp_path)
    assert check.missing and check.offerable == check.missing and check.can_offer


def test_the_stand_in_names_cover_every_file_make_tiny_models_writes(tiny_models_dir: Path) -> None:
    """Model files and pipeline folders (tokenizer folders are recorded as they are written)."""
    written = {f"{path.parent.name}/{path.name}" for path in tiny_models_dir.glob("*/*")}
    written = {name for name in written if not name.startswith("tokenizers/")}
    assert written and written == set(tiny_stand_in_names())
