"""``main.py download WORKFLOW_FILE``: the missing models a workflow lists are fetched from a (fake) Hub into their
folders under their listed names; the others are listed to download by hand."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

import main
from app.workflow_download import ModelDownloads, ModelDownloadState
from app.workflow_report import MissingModel
from models.download import HubSettings
from models.folders import ModelFolders
from models.requirements import hub_file_from_url
from tests.app.check_samples import (
    HF,
    MODEL_FILES,
    REPO,
    TEXT_ENCODER,
    UNET,
    VAE,
    hub_url,
    png_with_workflow,
    ui_node,
    unsupported_workflow,
    wan_workflow,
    write_json,
)
from tests.models.fake_hub import FakeHub, running_hub, use_hub

PIPE_REPO = "org/tiny-pipe"
PIPE_FILES = {
    "model_index.json": json.dumps({"_class_name": "WanPipeline"}).encode(),
    "transformer/config.json": b"{}",
    "transformer/diffusion_pytorch_model.safetensors": b"pipe weights",
    "README.md": b"# pipe",
}
CIVITAI = "https://civitai.com/api/download/models/1"


def contents(name: str) -> bytes:
    return f"weights of {name}".encode()


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeHub]:
    with running_hub() as hub:
        hub.add_repo(REPO, {repo_path: contents(name) for name, (_, repo_path) in MODEL_FILES.items()})
        hub.add_repo(PIPE_REPO, PIPE_FILES)
        use_hub(monkeypatch, hub.url, tmp_path / "hf-home")
        yield hub


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    return tmp_path / "models"


def download(workflow: Path, models_dir: Path) -> int:
    return main.main(["download", str(workflow), "--models-dir", str(models_dir)])


def test_missing_models_are_fetched_into_their_folders_and_the_rest_listed(
    hub: FakeHub, tmp_path: Path, models_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    workflow = unsupported_workflow()  # a missing pack and a bad sampler do not stop the downloads
    workflow["nodes"].append(
        ui_node(10, "LoraLoaderModelOnly", ["style.safetensors", 1.0], {"model": None}),
    )
    workflow["nodes"][-1]["properties"]["models"] = [
        {"name": "style.safetensors", "url": CIVITAI, "directory": "loras"}
    ]
    path = write_json(tmp_path / "shared.json", workflow)

    assert download(path, models_dir) == 1  # one model must be fetched by hand
    out, err = capsys.readouterr()
    targets = [models_dir / folder / name for name, (folder, _) in MODEL_FILES.items()]
    assert out.splitlines() == [str(target) for target in targets]
    for name, target in zip(MODEL_FILES, targets, strict=True):
        assert target.read_bytes() == contents(name)
    assert err.splitlines()[0] == "3 model(s) to download, 1 to download by hand"
    assert f"vae/{VAE} <- {hub_url(MODEL_FILES[VAE][1])}" in err
    assert (
        f"download by hand: loras/style.safetensors from {CIVITAI} -> {models_dir / 'loras' / 'style.safetensors'}"
        in err
    )
    fetched = len(hub.file_gets(MODEL_FILES[VAE][1]))

    (models_dir / "loras").mkdir()
    (models_dir / "loras" / "style.safetensors").write_bytes(b"lora")
    assert download(path, models_dir) == 0
    assert capsys.readouterr().err == "nothing to download: the models this workflow names are all there\n"
    assert len(hub.file_gets(MODEL_FILES[VAE][1])) == fetched


def test_a_png_workflow_and_a_name_with_a_subfolder(
    hub: FakeHub, tmp_path: Path, models_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    workflow = wan_workflow()
    for node in workflow["nodes"]:
        for entry in node["properties"].get("models", []):
            entry["name"] = f"wan/{entry['name']}"
        if node["type"] in ("UNETLoader", "CLIPLoader", "VAELoader"):
            node["widgets_values"][0] = f"wan/{node['widgets_values'][0]}"
    image = png_with_workflow(tmp_path / "shared.png", workflow)
    assert download(image, models_dir) == 0
    assert (models_dir / "vae" / "wan" / VAE).read_bytes() == contents(VAE)
    assert str(models_dir / "diffusion_models" / "wan" / UNET) in capsys.readouterr().out
    assert main.main(["check", str(image), "--models-dir", str(models_dir)]) == 0


def test_a_listed_pipeline_folder_fetches_its_repo(
    hub: FakeHub, tmp_path: Path, models_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    loader = ui_node(1, "DiffusersPipelineLoader", ["tiny-pipe", "transformer", "default"])
    url = hub_url("model_index.json", repo=PIPE_REPO)
    loader["properties"]["models"] = [{"name": "tiny-pipe", "url": url, "directory": "diffusers"}]
    path = write_json(tmp_path / "pipe.json", {"nodes": [loader], "links": []})
    assert download(path, models_dir) == 0
    folder = models_dir / "diffusers" / "tiny-pipe"
    assert (folder / "model_index.json").read_bytes() == PIPE_FILES["model_index.json"]
    assert (folder / "transformer" / "diffusion_pytorch_model.safetensors").is_file()
    assert not (folder / "README.md").exists()
    assert str(folder / "model_index.json") in capsys.readouterr().out


def test_failures_are_one_line_per_model_and_the_others_still_come(
    hub: FakeHub, tmp_path: Path, models_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    workflow = wan_workflow()
    workflow["nodes"][0]["properties"]["models"][0]["url"] = hub_url("nope.safetensors")
    assert download(write_json(tmp_path / "wan.json", workflow), models_dir) == 1
    err = capsys.readouterr().err
    assert f"error: diffusion_models/{UNET}: {REPO}@main has no file 'nope.safetensors'\n" in err
    assert (models_dir / "vae" / VAE).is_file() and (models_dir / "text_encoders" / TEXT_ENCODER).is_file()


def test_offline_is_one_error_line(
    tmp_path: Path, models_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert download(write_json(tmp_path / "wan.json", wan_workflow()), models_dir) == 1
    err = capsys.readouterr().err
    assert err.splitlines()[1].startswith("error: offline: HF_HUB_OFFLINE") and err.count("error:") == 1
    assert not models_dir.exists() or not any(models_dir.rglob("*.safetensors"))


def test_repo_options_are_refused_with_a_workflow_and_repo_ids_still_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_json(tmp_path / "wan.json", wan_workflow())
    with pytest.raises(SystemExit) as raised:
        main.main(["download", str(path), "--folder", "vae"])
    assert raised.value.code == 2
    assert "a workflow file names its own" in capsys.readouterr().err
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main.main(["download", "org/some-repo", "--models-dir", str(tmp_path / "models")]) == 1
    assert capsys.readouterr().err.startswith("error: offline")


def test_a_stopped_job_stops_between_models(hub: FakeHub, models_dir: Path) -> None:
    models = [MissingModel(name, folder, hub_url(repo_path), REPO) for name, (folder, repo_path) in MODEL_FILES.items()]
    seen: list[tuple[str, str]] = []

    def changed(state: ModelDownloadState) -> None:
        seen.append((state.model.name, state.status))
        if state.status == "done":
            downloads.stop()

    downloads = ModelDownloads(models, ModelFolders(models_dir), HubSettings.from_env(), on_change=changed)
    states = downloads.run()
    assert [state.status for state in states] == ["done", "stopped", "stopped"]
    assert seen[-2:] == [(TEXT_ENCODER, "stopped"), (VAE, "stopped")]
    assert not (models_dir / "vae" / VAE).exists()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            f"{HF}/org/repo/resolve/main/split_files/vae/x.safetensors?download=true",
            ("org/repo", "main", "split_files/vae/x.safetensors"),
        ),
        ("https://hf.co/org/repo/blob/refs%2Fpr%2F1/a%20b.safetensors", ("org/repo", "refs/pr/1", "a b.safetensors")),
        (f"{HF}/org/repo", None),
        (f"{HF}/datasets/org/repo/resolve/main/x.json", None),
        (CIVITAI, None),
    ],
)
def test_hub_file_urls_are_parsed(url: str, expected: tuple[str, str, str] | None) -> None:
    found = hub_file_from_url(url)
    assert (None if found is None else (found.repo_id, found.revision, found.path)) == expected
