"""ModelFolders: ComfyUI's folder keys, model-file listing, and name resolution that cannot leave a folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from models.extra_paths import ExtraModelPaths, ExtraPathsError
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
    expected = {"vae", "loras", "upscale_models", "frame_interpolation", "diffusers", "embeddings", "tokenizers"}
    assert expected <= set(keys)
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


def test_listing_leaves_out_broken_and_looping_links(folders: ModelFolders) -> None:
    checkpoints = folders.models_dir / "checkpoints"
    touch(checkpoints / "real.safetensors")
    os.symlink(checkpoints / "gone.safetensors", checkpoints / "dangling.safetensors")
    os.symlink(checkpoints / "loop.safetensors", checkpoints / "loop.safetensors")
    assert folders.list_files("checkpoints") == ["real.safetensors"]


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


def test_listing_is_read_afresh_on_every_call(folders: ModelFolders) -> None:
    assert folders.list_files("loras") == []
    touch(folders.models_dir / "loras" / "new.safetensors")
    assert folders.list_files("loras") == ["new.safetensors"]
    (folders.models_dir / "loras" / "new.safetensors").unlink()
    assert folders.list_files("loras") == []


@pytest.fixture
def layered(tmp_path: Path) -> ModelFolders:
    """Primary ``models/``, a default (searched first) ``early/`` and a later ``late/`` folder set."""
    extra = ExtraModelPaths(
        first={"loras": (tmp_path / "early" / "loras",)},
        last={"loras": (tmp_path / "late" / "loras", tmp_path / "late2"), "vae": (tmp_path / "late" / "vae",)},
    )
    return ModelFolders(tmp_path / "models", extra)


def test_folders_are_in_search_order(layered: ModelFolders, tmp_path: Path) -> None:
    assert layered.folders("loras") == (
        tmp_path / "early" / "loras",
        tmp_path / "models" / "loras",
        tmp_path / "late" / "loras",
        tmp_path / "late2",
    )
    assert layered.folders("checkpoints") == (tmp_path / "models" / "checkpoints",)
    assert layered.folder("loras") == tmp_path / "models" / "loras"
    assert ModelFolders(tmp_path / "models").folders("vae") == (tmp_path / "models" / "vae",)
    with pytest.raises(UnknownModelFolderError):
        layered.folders("nope")


def test_folders_are_deduplicated_by_real_path(tmp_path: Path) -> None:
    (tmp_path / "models" / "vae").mkdir(parents=True)
    os.symlink(tmp_path / "models" / "vae", tmp_path / "vae-link")
    extra = ExtraModelPaths(
        first={}, last={"vae": (tmp_path / "vae-link", tmp_path / "other", tmp_path / "models" / "x" / ".." / "vae")}
    )
    folders = ModelFolders(tmp_path / "models", extra)
    assert folders.folders("vae") == (tmp_path / "models" / "vae", tmp_path / "other")


def test_describe_lists_every_key_with_its_folders(layered: ModelFolders, tmp_path: Path) -> None:
    described = layered.describe()
    assert list(described) == list(layered.keys())
    assert described["vae"] == [str(tmp_path / "models" / "vae"), str(tmp_path / "late" / "vae")]
    assert described["loras"][0] == str(tmp_path / "early" / "loras")


def test_list_files_is_the_union_over_all_folders(layered: ModelFolders, tmp_path: Path) -> None:
    touch(tmp_path / "early" / "loras" / "shared.safetensors")
    touch(tmp_path / "models" / "loras" / "shared.safetensors")
    touch(tmp_path / "models" / "loras" / "main.safetensors")
    touch(tmp_path / "late" / "loras" / "sub" / "late.gguf")
    touch(tmp_path / "late2" / "a.pt")
    touch(tmp_path / "late2" / "notes.txt")
    assert layered.list_files("loras") == ["a.pt", "main.safetensors", "shared.safetensors", "sub/late.gguf"]
    touch(tmp_path / "late2" / "b.safetensors")
    assert "b.safetensors" in layered.list_files("loras")


def test_diffusers_pipelines_are_listed_from_extra_folders(tmp_path: Path) -> None:
    extra = ExtraModelPaths(first={}, last={"diffusers": (tmp_path / "hub",)})
    folders = ModelFolders(tmp_path / "models", extra)
    touch(tmp_path / "hub" / "org" / "pipe" / "model_index.json", b"{}")
    touch(tmp_path / "models" / "diffusers" / "local" / "model_index.json", b"{}")
    assert folders.list_files("diffusers") == ["local", "org/pipe"]
    assert folders.resolve("diffusers", "org/pipe") == (tmp_path / "hub" / "org" / "pipe").resolve()


def test_resolve_takes_the_first_folder_holding_the_name(layered: ModelFolders, tmp_path: Path) -> None:
    early = touch(tmp_path / "early" / "loras" / "shared.safetensors")
    touch(tmp_path / "models" / "loras" / "shared.safetensors")
    main = touch(tmp_path / "models" / "loras" / "main.safetensors")
    late = touch(tmp_path / "late" / "loras" / "main.safetensors")
    only_late = touch(tmp_path / "late2" / "sub" / "only.safetensors")
    assert layered.resolve("loras", "shared.safetensors") == early.resolve()
    assert layered.resolve("loras", "main.safetensors") == main.resolve()
    assert layered.resolve("loras", "sub/only.safetensors") == only_late.resolve()
    main.unlink()
    assert layered.resolve("loras", "main.safetensors") == late.resolve()
    assert layered.resolve("loras", "absent.safetensors") == (tmp_path / "models/loras/absent.safetensors").resolve()


@pytest.mark.parametrize("name", ["", ".", "../models/loras/x.safetensors", "/etc/passwd", "a\\b"])
def test_resolve_refuses_escapes_with_extra_folders(layered: ModelFolders, tmp_path: Path, name: str) -> None:
    touch(tmp_path / "early" / "loras" / "x.safetensors")
    with pytest.raises(UnsafeModelPathError):
        layered.resolve("loras", name)


def test_extra_folder_links_leading_outside_are_neither_listed_nor_resolved(
    layered: ModelFolders, tmp_path: Path
) -> None:
    touch(tmp_path / "outside" / "secret.safetensors")
    (tmp_path / "late2").mkdir()
    os.symlink(tmp_path / "outside", tmp_path / "late2" / "link")
    assert layered.list_files("loras") == []
    with pytest.raises(UnsafeModelPathError, match="outside"):
        layered.resolve("loras", "link/secret.safetensors")


def test_from_config_reads_the_given_file(tmp_path: Path) -> None:
    yaml_file = tmp_path / "conf" / "paths.yaml"
    touch(yaml_file, b"comfy:\n  base_path: /srv/comfy\n  is_default: true\n  unet: models/unet\n")
    default = touch(tmp_path / "repo" / "extra_model_paths.yaml", b"s:\n  vae: v\n")
    folders = ModelFolders.from_config(tmp_path / "models", yaml_file, default_extra_file=default)
    assert folders.folders("diffusion_models") == (
        Path("/srv/comfy/models/unet"),
        tmp_path / "models" / "diffusion_models",
    )
    assert folders.folders("vae") == (tmp_path / "models" / "vae",)


def test_from_config_reads_the_default_file_only_when_it_exists(tmp_path: Path) -> None:
    default = tmp_path / "repo" / "extra_model_paths.yaml"
    assert ModelFolders.from_config(tmp_path / "models", None, default_extra_file=default).extra is None
    assert ModelFolders.from_config(tmp_path / "models", None).extra is None
    touch(default, b"s:\n  vae: v\n")
    folders = ModelFolders.from_config(tmp_path / "models", None, default_extra_file=default)
    assert folders.folders("vae") == (tmp_path / "models" / "vae", tmp_path / "repo" / "v")


def test_from_config_refuses_a_given_file_that_is_missing_or_malformed(tmp_path: Path) -> None:
    with pytest.raises(ExtraPathsError, match=r"absent\.yaml"):
        ModelFolders.from_config(tmp_path / "models", tmp_path / "absent.yaml")
    bad = touch(tmp_path / "bad.yaml", b"s:\n  vae: [\n")
    with pytest.raises(ExtraPathsError, match="line"):
        ModelFolders.from_config(tmp_path / "models", None, default_extra_file=bad)


def test_models_imports_neither_the_server_nor_torch() -> None:
    code = (
        "import sys, models.folders; assert not {'server', 'aiohttp', 'torch'} & {m.split('.')[0] for m in sys.modules}"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])
