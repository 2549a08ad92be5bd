"""``models.download`` and ``main.py download`` against a local fake Hub: folders, filters, resume, refusals, errors."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from huggingface_hub import constants, snapshot_download
from safetensors.torch import save

import main
from models.download import DownloadError, HubSettings, download_repo, select_files
from models.folders import ModelFolders
from tests.models.fake_hub import Drop, FakeHub, Status, running_hub, use_hub

MIB = 1024 * 1024
PIPE = "org/tiny-pipe"
SPLIT = "org/split-files"


def tensors(seed: int, count: int = 4) -> bytes:
    """A real safetensors file of ``count`` random float32 values."""
    generator = torch.Generator().manual_seed(seed)
    return save({"weight": torch.randn(count, generator=generator)})


PIPE_FILES = {
    "model_index.json": json.dumps({"_class_name": "WanPipeline"}).encode(),
    "unet/config.json": b'{"in_channels": 4}',
    "unet/diffusion_pytorch_model.safetensors": tensors(1),
    "unet/diffusion_pytorch_model.bin": b"pickled weights",
    "text_encoder/config.json": b'{"d_model": 8}',
    "text_encoder/model.safetensors": tensors(2),
    "tokenizer/spiece.model": b"sentencepiece",
    "tokenizer/merges.txt": b"a b",
    "README.md": b"# tiny",
    ".gitattributes": b"*.safetensors filter=lfs",
}
SPLIT_FILES = {
    "split_files/vae/tiny_vae.safetensors": tensors(3),
    "split_files/text_encoders/tiny_te.safetensors": tensors(4),
    "split_files/text_encoders/tiny_te.gguf": b"GGUF tiny",
    "legacy/tiny_vae.pt": b"pickled vae",
    "README.md": b"# split",
}


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeHub]:
    with running_hub() as hub:
        hub.add_repo(PIPE, PIPE_FILES)
        hub.add_repo(SPLIT, SPLIT_FILES)
        use_hub(monkeypatch, hub.url, tmp_path / "hf-home")
        yield hub


@pytest.fixture
def folders(tmp_path: Path) -> ModelFolders:
    return ModelFolders(tmp_path / "models")


def files_under(root: Path) -> dict[str, bytes]:
    """Every file below ``root`` outside hidden folders, by POSIX path."""
    found = {}
    for path in root.rglob("*"):
        relative = path.relative_to(root)
        if path.is_file() and not any(part.startswith(".") for part in relative.parts):
            found[relative.as_posix()] = path.read_bytes()
    return found


def test_whole_repo_keeps_its_layout_in_the_diffusers_folder(hub: FakeHub, folders: ModelFolders) -> None:
    result = download_repo(PIPE, folders)
    pipeline = folders.folder("diffusers") / "tiny-pipe"
    wanted = {name: data for name, data in PIPE_FILES.items() if name.rsplit(".", 1)[-1] in {"json", "txt", "model"}}
    wanted |= {name: data for name, data in PIPE_FILES.items() if name.endswith(".safetensors")}
    assert files_under(pipeline) == wanted  # no README, .gitattributes or pickle
    assert result.plan.skipped_pickles == ()  # .bin is not a default format: not even considered
    assert sorted(result.paths) == sorted(pipeline / name for name in wanted)
    assert folders.list_files("diffusers") == ["tiny-pipe"]


def test_a_depth_model_repo_keeps_its_layout_in_the_depth_folder(hub: FakeHub, folders: ModelFolders) -> None:
    files = {
        "config.json": b'{"model_type": "depth_anything"}',
        "preprocessor_config.json": b"{}",
        "model.safetensors": tensors(3),
        "README.md": b"# depth",
    }
    hub.add_repo("org/tiny-depth", files)
    download_repo("org/tiny-depth", folders, "depth_estimation")
    assert files_under(folders.folder("depth_estimation") / "tiny-depth") == {
        name: data for name, data in files.items() if name != "README.md"
    }
    assert folders.list_files("depth_estimation") == ["tiny-depth"]


def test_a_pattern_puts_the_files_directly_in_the_folder(hub: FakeHub, folders: ModelFolders) -> None:
    result = download_repo(SPLIT, folders, "vae", include=["*vae*"])
    vae = folders.folder("vae")
    assert files_under(vae) == {"tiny_vae.safetensors": SPLIT_FILES["split_files/vae/tiny_vae.safetensors"]}
    assert result.plan.skipped_pickles == ("legacy/tiny_vae.pt",)  # matched, but the repo has safetensors
    assert result.paths == (vae / "tiny_vae.safetensors",)
    assert list(vae.iterdir()) == [vae / "tiny_vae.safetensors"]  # the staging folder is gone
    assert folders.list_files("vae") == ["tiny_vae.safetensors"]


def test_flat_folders_default_to_weight_files(hub: FakeHub, folders: ModelFolders) -> None:
    download_repo(SPLIT, folders, "text_encoders", include=["split_files/text_encoders/*"])
    assert folders.list_files("text_encoders") == ["tiny_te.gguf", "tiny_te.safetensors"]
    with pytest.raises(DownloadError, match=r"would both be saved as .*config\.json"):
        download_repo(PIPE, folders, "text_encoders", include=["*.json"])
    download_repo(PIPE, folders, "text_encoders")  # no pattern: weights only, no colliding configs
    assert "model.safetensors" in folders.list_files("text_encoders")


UMT5_FILES = {
    "config.json": b'{"model_type": "umt5"}',
    "generation_config.json": b"{}",
    "pytorch_model.bin": b"pickled weights",
    "special_tokens_map.json": b"{}",
    "spiece.model": b"sentencepiece",
    "tokenizer_config.json": b'{"tokenizer_class": "T5Tokenizer"}',
    "README.md": b"# umt5",
}


def test_tokenizers_keep_the_repo_layout_and_fetch_only_tokenizer_files(
    hub: FakeHub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hub.add_repo("google/umt5-xxl", UMT5_FILES)
    models = tmp_path / "models"
    assert main.main(["download", "google/umt5-xxl", "--folder", "tokenizers", "--models-dir", str(models)]) == 0
    folder = models / "tokenizers" / "umt5-xxl"
    wanted = {name: data for name, data in UMT5_FILES.items() if name.endswith((".json", ".model"))}
    assert files_under(models) == {f"tokenizers/umt5-xxl/{name}": data for name, data in wanted.items()}
    assert sorted(capsys.readouterr().out.splitlines()) == sorted(str(folder / name) for name in wanted)
    folders = ModelFolders(models)
    hub.add_repo("org/weights-only", {"model.safetensors": tensors(7)})
    with pytest.raises(DownloadError, match=r"^org/weights-only@main has no tokenizer files \(\*\.json .*model\.safe"):
        download_repo("org/weights-only", folders, "tokenizers")
    download_repo(SPLIT, folders, "tokenizers", include=["README.md"])  # patterns choose, the layout is kept
    assert (folders.folder("tokenizers") / "split-files" / "README.md").read_bytes() == b"# split"


def test_a_second_run_fetches_nothing(hub: FakeHub, folders: ModelFolders) -> None:
    download_repo(PIPE, folders)
    download_repo(SPLIT, folders, "vae", include=["*.safetensors"])
    gets = len([r for r in hub.requests if "/resolve/" in r.path and r.method == "GET"])
    again = download_repo(PIPE, folders)
    flat = download_repo(SPLIT, folders, "vae", include=["*.safetensors"])
    assert len([r for r in hub.requests if "/resolve/" in r.path and r.method == "GET"]) == gets
    assert again.already_present == again.paths and flat.already_present == flat.paths


def test_a_dropped_connection_resumes_with_a_range_request(hub: FakeHub, folders: ModelFolders) -> None:
    big = tensors(5, count=3 * MIB)  # 12 MiB: huggingface_hub writes in 10 MiB chunks, so 10 MiB are kept
    hub.add_repo("org/big", {"big.safetensors": big})
    hub.queue_faults("org/big", "big.safetensors", Drop(after_bytes=11 * MIB))
    download_repo("org/big", folders, "checkpoints", include=["*.safetensors"])
    assert (folders.folder("checkpoints") / "big.safetensors").read_bytes() == big
    first, second = hub.file_gets("big.safetensors")
    assert (first.range, first.status) == (None, 200)
    assert (second.range, second.status) == (f"bytes={10 * MIB}-", 206)  # only the rest was sent again


def test_a_failed_download_leaves_nothing_and_a_rerun_completes(hub: FakeHub, folders: ModelFolders) -> None:
    hub.queue_faults(SPLIT, "split_files/vae/tiny_vae.safetensors", Drop(after_bytes=10), Status(500))
    with pytest.raises(DownloadError, match=r"downloading 'split_files/vae/tiny_vae\.safetensors' .* 500"):
        download_repo(SPLIT, folders, "vae", include=["*vae*.safetensors"])
    vae = folders.folder("vae")
    assert list(vae.iterdir()) == []  # no partial file, no staging folder
    download_repo(SPLIT, folders, "vae", include=["*vae*.safetensors"])
    assert (vae / "tiny_vae.safetensors").read_bytes() == SPLIT_FILES["split_files/vae/tiny_vae.safetensors"]


def test_an_unknown_repo_or_revision_is_named(hub: FakeHub, folders: ModelFolders) -> None:
    with pytest.raises(DownloadError) as raised:
        download_repo("org/nope", folders)
    assert str(raised.value).startswith(f"repository 'org/nope' was not found on {hub.url} (HTTP 404)")
    with pytest.raises(DownloadError, match=r"^revision 'v9' was not found in org/tiny-pipe$"):
        download_repo(PIPE, folders, revision="v9")


def test_offline_mode_is_said_and_nothing_is_asked(
    hub: FakeHub, folders: ModelFolders, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DownloadError, match=r"^offline: HF_HUB_OFFLINE .* unset it to download$"):
        download_repo(PIPE, folders)
    assert hub.requests == []
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # as read by huggingface_hub when it was imported
    with pytest.raises(DownloadError, match=r"^offline: "):
        download_repo(PIPE, folders)
    assert not (folders.models_dir / "diffusers").exists()


def test_no_network_is_said(hub: FakeHub, folders: ModelFolders) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = HubSettings(endpoint=f"http://127.0.0.1:{port}")
    with pytest.raises(DownloadError, match=rf"^no network: cannot reach http://127.0.0.1:{port} while listing"):
        download_repo(PIPE, folders, settings=settings)


def test_patterns_that_match_nothing_are_refused(hub: FakeHub, folders: ModelFolders) -> None:
    with pytest.raises(DownloadError, match=r"^no file of org/tiny-pipe@main matches --include '\*\.onnx'; its files"):
        download_repo(PIPE, folders, include=["*.onnx"])
    with pytest.raises(DownloadError, match=r"^only pickled weights \(unet/diffusion_pytorch_model\.bin\) match"):
        download_repo(PIPE, folders, "checkpoints", include=["*.bin"])
    hub.add_repo("org/docs", {"README.md": b"nothing to load"})
    with pytest.raises(DownloadError, match=r"^org/docs@main has no safetensors/gguf weights; choose files"):
        download_repo("org/docs", folders, "loras")
    hub.add_repo("org/old", {"model_index.json": b"{}", "unet/old.bin": b"pickled"})
    with pytest.raises(DownloadError, match=r"only pickled ones \(unet/old\.bin\); .* --include '\*\.bin'"):
        download_repo("org/old", folders)  # the configs alone would be no pipeline
    with pytest.raises(DownloadError, match=r"^org/split-files is not a diffusers pipeline"):
        download_repo(SPLIT, folders)  # the default folder wants a pipeline
    assert not folders.models_dir.exists()


@pytest.mark.parametrize("folder", ["diffusers", "vae"])
def test_file_names_that_leave_the_folder_are_refused(hub: FakeHub, folders: ModelFolders, folder: str) -> None:
    hub.add_repo("org/evil", {"model_index.json": b"{}", "../evil.safetensors": tensors(6)})
    with pytest.raises(DownloadError, match=r"^refusing to download org/evil: repo file name '\.\./evil\.safetensors'"):
        download_repo("org/evil", folders, folder, include=["*"])
    assert not list(folders.models_dir.parent.rglob("evil*"))
    assert not [r for r in hub.requests if "/resolve/" in r.path]


def test_pickles_are_used_only_without_safetensors(hub: FakeHub, folders: ModelFolders) -> None:
    names = ["a.safetensors", "a.bin", "b.pt", "config.json", "README.md"]
    assert select_files(names) == (["a.safetensors", "config.json"], [])
    assert select_files(names, weights_only=True) == (["a.safetensors"], [])
    assert select_files(names, ["*"]) == (["README.md", "a.safetensors", "config.json"], ["a.bin", "b.pt"])
    assert select_files(["old.bin", "config.json"], ["*.bin"]) == (["old.bin"], [])
    hub.add_repo("org/old", {"old.bin": b"pickled", "config.json": b"{}"})
    download_repo("org/old", folders, "checkpoints", include=["*.bin"])  # asked for, and nothing safer exists
    assert folders.list_files("checkpoints") == ["old.bin"]


def test_an_existing_different_file_is_not_overwritten(hub: FakeHub, folders: ModelFolders) -> None:
    mine = folders.folder("vae") / "tiny_vae.safetensors"
    mine.parent.mkdir(parents=True)
    mine.write_bytes(b"my own vae")
    with pytest.raises(DownloadError, match=r"tiny_vae\.safetensors already exists and differs .* move it away"):
        download_repo(SPLIT, folders, "vae", include=["*vae*.safetensors"])
    assert mine.read_bytes() == b"my own vae"


def test_settings_are_read_from_the_environment() -> None:
    assert HubSettings.from_env({}) == HubSettings("https://huggingface.co", offline=False)
    assert HubSettings.from_env({"HF_ENDPOINT": "http://mirror:8080/", "HF_HUB_OFFLINE": "0"}) == HubSettings(
        "http://mirror:8080", offline=False
    )
    assert HubSettings.from_env({"TRANSFORMERS_OFFLINE": "yes"}).offline


def test_the_fake_hub_also_serves_snapshot_download(hub: FakeHub, tmp_path: Path) -> None:
    local = Path(snapshot_download(PIPE, local_dir=tmp_path / "snapshot", allow_patterns=["*.json"]))
    assert files_under(local) == {name: data for name, data in PIPE_FILES.items() if name.endswith(".json")}


def test_cli_downloads_and_prints_the_paths(hub: FakeHub, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    models = tmp_path / "models"
    assert main.main(["download", SPLIT, "--folder", "vae", "--include", "*vae*", "--models-dir", str(models)]) == 0
    out, err = capsys.readouterr()
    target = models / "vae" / "tiny_vae.safetensors"
    assert out.splitlines() == [str(target)]
    assert target.read_bytes() == SPLIT_FILES["split_files/vae/tiny_vae.safetensors"]
    assert "skipping pickled weights (the repo has safetensors): legacy/tiny_vae.pt" in err
    assert "[1/1] split_files/vae/tiny_vae.safetensors" in err
    assert main.main(["download", PIPE, "--models-dir", str(models)]) == 0
    out, _ = capsys.readouterr()
    assert str(models / "diffusers" / "tiny-pipe" / "model_index.json") in out.splitlines()


def test_cli_errors_are_one_line(
    hub: FakeHub, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    models = ["--models-dir", str(tmp_path / "models")]
    assert main.main(["download", "org/nope", *models]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("error: repository 'org/nope' was not found") and err.count("\n") == 1
    assert main.main(["download", PIPE, "--include", "*.onnx", *models]) == 1
    assert capsys.readouterr().err.startswith("error: no file of org/tiny-pipe@main matches --include '*.onnx'")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main.main(["download", PIPE, *models]) == 1
    assert capsys.readouterr().err.startswith("error: offline: HF_HUB_OFFLINE")
    with pytest.raises(SystemExit) as raised:
        main.main(["download", PIPE, "--folder", "weights", *models])
    assert raised.value.code == 2
    assert "invalid choice: 'weights'" in capsys.readouterr().err


def test_a_file_in_place_of_the_folder_is_one_error_line(hub: FakeHub, folders: ModelFolders) -> None:
    folders.models_dir.mkdir()
    folders.folder("vae").write_bytes(b"not a folder")
    with pytest.raises(DownloadError, match=r"^cannot write into .*vae: File exists$"):
        download_repo(SPLIT, folders, "vae", include=["*vae*.safetensors"])


def test_cli_ctrl_c_exits_130_and_leaves_no_staging_folder(
    hub: FakeHub, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(*args: object, **kwargs: object) -> str:
        raise KeyboardInterrupt

    monkeypatch.setattr("models.download.hf_hub_download", interrupted)
    models = tmp_path / "models"
    assert main.main(["download", SPLIT, "--folder", "vae", "--include", "*vae*", "--models-dir", str(models)]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert list((models / "vae").iterdir()) == []
