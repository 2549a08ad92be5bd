"""ModelFolders: ComfyUI's folder keys, model-file listing, and name resolution that cannot leave a folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from models.folders import ModelFolders, UnknownModelFolderError, UnsafeModelPathError


def touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture
def folders(tmp_path: Path) -> ModelFolders:
    return ModelFolders(tmp_path / "models")


def test_keys_are_comfyui_folder_names(folders: ModelFolders) -> None:
    keys = folders.keys()
    assert keys[:3] == ("checkpoints", "diffusion_models", "text_encoders")
    assert {"vae", "loras", "upscale_models", "frame_interpolation", "diffusers", "embeddings"} <= set(keys)
    assert len(set(keys)) == len(keys)


def test_list_files_is_recursive_sorted_posix_and_only_model_files(folders: ModelFolders) -> None:
    loras = folders.models_dir / "loras"
    for name in ("b.safetensors", "a.SFT", "sub/deep/c.gguf", "sub/d.ckpt", "e.pt2", "f.pth", "g.bin", "h.pt"):
        touch(loras / name)
    for name in ("notes.txt", "config.json", ".hidden.safetensors", ".cache/x.safetensors", "noext"):
        touch(loras / name)
    assert folders.list_files("loras") == [
        "a.SFT",
        "b.safetensors",
        "e.pt2",
        "f.pth",
        "g.bin",
        "h.pt",
        "sub/d.ckpt",
        "sub/deep/c.gguf",
    ]


def test_missing_folder_lists_nothing(folders: ModelFolders) -> None:
    assert folders.list_files("vae") == []


def test_diffusers_lists_pipeline_folders(folders: ModelFolders) -> None:
    root = folders.models_dir / "diffusers"
    touch(root / "wan-tiny" / "model_index.json", b"{}")
    touch(root / "wan-tiny" / "transformer" / "diffusion_pytorch_model.safetensors")
    touch(root / "vendor" / "ltx" / "model_index.json", b"{}")
    touch(root / "loose.safetensors")
    assert folders.list_files("diffusers") == ["vendor/ltx", "wan-tiny"]


def test_listing_leaves_out_links_leading_outside(folders: ModelFolders, tmp_path: Path) -> None:
    outside = touch(tmp_path / "elsewhere" / "secret.safetensors")
    checkpoints = folders.models_dir / "checkpoints"
    inside = touch(checkpoints / "real.safetensors")
    os.symlink(outside, checkpoints / "escape.safetensors")
    os.symlink(inside, checkpoints / "alias.safetensors")
    assert folders.list_files("checkpoints") == ["alias.safetensors", "real.safetensors"]


def test_unknown_key_names_the_known_keys(folders: ModelFolders) -> None:
    with pytest.raises(UnknownModelFolderError) as caught:
        folders.list_files("nope")
    assert isinstance(caught.value, KeyError)
    assert "'nope'" in str(caught.value) and "checkpoints" in str(caught.value) and "embeddings" in str(caught.value)
    with pytest.raises(KeyError):
        folders.resolve("nope", "a.safetensors")


def test_resolve_gives_the_real_path_inside_the_folder(folders: ModelFolders) -> None:
    path = touch(folders.models_dir / "vae" / "sub" / "v.safetensors")
    assert folders.resolve("vae", "sub/v.safetensors") == path.resolve()
    assert folders.resolve("vae", "not/yet.safetensors") == (folders.models_dir / "vae/not/yet.safetensors").resolve()


@pytest.mark.parametrize(
    "name",
    ["", "../checkpoints/x.safetensors", "sub/../../x", "/etc/passwd", "a\\..\\b", "C:x", "a\x00b", "sub/..", "."],
)
def test_resolve_refuses_escapes(folders: ModelFolders, name: str) -> None:
    with pytest.raises(UnsafeModelPathError) as caught:
        folders.resolve("loras", name)
    assert isinstance(caught.value, ValueError) and str(caught.value)


def test_resolve_refuses_a_symlink_leading_outside(folders: ModelFolders, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    touch(outside / "secret.safetensors")
    (folders.models_dir / "loras").mkdir(parents=True)
    os.symlink(outside, folders.models_dir / "loras" / "link")
    with pytest.raises(UnsafeModelPathError, match="outside"):
        folders.resolve("loras", "link/secret.safetensors")


def test_models_imports_neither_the_server_nor_torch() -> None:
    code = (
        "import sys, models.folders; assert not {'server', 'aiohttp', 'torch'} & {m.split('.')[0] for m in sys.modules}"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])
