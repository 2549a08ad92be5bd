"""read_extra_model_paths: ComfyUI's extra_model_paths.yaml sections, base paths, aliases, and clear errors."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from models.extra_paths import ExtraModelPaths, ExtraPathsError, read_extra_model_paths


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_sections_base_paths_and_multi_line_values(tmp_path: Path) -> None:
    yaml_file = write(
        tmp_path / "conf" / "extra_model_paths.yaml",
        """
a111:
    base_path: ../webui
    checkpoints: models/Stable-diffusion
    loras: |
        models/Lora

        models/LyCORIS
    vae: /abs/vae
comfyui:
    base_path: /srv/comfy/
    is_default: true
    checkpoints: models/checkpoints/
    upscale_models: models/upscale_models
nobase:
    embeddings: emb
""",
    )
    extra = read_extra_model_paths(yaml_file)
    webui = tmp_path / "conf" / ".." / "webui"
    assert extra == ExtraModelPaths(
        first={
            "checkpoints": (Path("/srv/comfy/models/checkpoints"),),
            "upscale_models": (Path("/srv/comfy/models/upscale_models"),),
        },
        last={
            "checkpoints": (webui / "models/Stable-diffusion",),
            "loras": (webui / "models/Lora", webui / "models/LyCORIS"),
            "vae": (Path("/abs/vae"),),
            "embeddings": (tmp_path / "conf" / "emb",),
        },
    )


def test_relative_yaml_path_gives_absolute_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "extra.yaml", "s:\n  vae: v\n")
    monkeypatch.chdir(tmp_path)
    assert read_extra_model_paths(Path("extra.yaml")).last == {"vae": (tmp_path / "v",)}


def test_home_is_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    yaml_file = write(tmp_path / "extra.yaml", "s:\n  base_path: ~/webui\n  vae: models/VAE\n  loras: ~/loras\n")
    extra = read_extra_model_paths(yaml_file)
    assert extra.last == {"vae": (tmp_path / "home/webui/models/VAE",), "loras": (tmp_path / "home/loras",)}


def test_legacy_keys_are_aliases_and_lists_are_accepted(tmp_path: Path) -> None:
    yaml_file = write(
        tmp_path / "extra.yaml",
        "s:\n  clip: models/clip\n  text_encoders: [models/te1, models/te2]\n  unet: models/unet\n",
    )
    extra = read_extra_model_paths(yaml_file)
    assert extra.last == {
        "text_encoders": (tmp_path / "models/clip", tmp_path / "models/te1", tmp_path / "models/te2"),
        "diffusion_models": (tmp_path / "models/unet",),
    }


def test_unknown_keys_are_warned_and_ignored(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    yaml_file = write(tmp_path / "extra.yaml", "s:\n  hypernetworks: h\n  custom_nodes: c\n  vae: v\n")
    with caplog.at_level(logging.WARNING, logger="models.extra_paths"):
        extra = read_extra_model_paths(yaml_file)
    assert extra.last == {"vae": (tmp_path / "v",)}
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert "'hypernetworks'" in warnings[0] and str(yaml_file) in warnings[0]
    assert "'custom_nodes'" in warnings[1]


def test_empty_file_and_empty_values_give_nothing(tmp_path: Path) -> None:
    assert read_extra_model_paths(write(tmp_path / "a.yaml", "# nothing yet\n")) == ExtraModelPaths({}, {})
    assert read_extra_model_paths(write(tmp_path / "b.yaml", "s:\nt:\n  vae:\n")) == ExtraModelPaths({}, {})


def test_yaml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    yaml_file = write(tmp_path / "extra.yaml", "s:\n  vae: v\n  loras: [unclosed\n  x: y\n")
    with pytest.raises(ExtraPathsError) as caught:
        read_extra_model_paths(yaml_file)
    message = str(caught.value)
    assert isinstance(caught.value, ValueError)
    assert str(yaml_file) in message and "line 4" in message and "invalid YAML" in message


@pytest.mark.parametrize(
    ("text", "section", "key", "words"),
    [
        ("- a\n- b\n", None, None, "top level must be a mapping"),
        ("s: just a string\n", "s", None, "must be a mapping"),
        ("s:\n  is_default: yes please\n", "s", "is_default", "true or false"),
        ("s:\n  base_path: 3\n", "s", "base_path", "non-empty path"),
        ("s:\n  vae: {a: b}\n", "s", "vae", "one per line"),
        ("s:\n  vae: [a, 3]\n", "s", "vae", "one per line"),
        ("s:\n  1: a\n", "s", None, "not a string"),
    ],
)
def test_wrong_shapes_name_file_section_and_key(
    tmp_path: Path, text: str, section: str | None, key: str | None, words: str
) -> None:
    yaml_file = write(tmp_path / "extra.yaml", text)
    with pytest.raises(ExtraPathsError) as caught:
        read_extra_model_paths(yaml_file)
    error = caught.value
    assert (error.file, error.section, error.key) == (yaml_file, section, key)
    assert str(yaml_file) in str(error) and words in str(error)
    if key is not None:
        assert f"key {key!r}" in str(error)


def test_missing_or_undecodable_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ExtraPathsError, match="cannot read"):
        read_extra_model_paths(tmp_path / "absent.yaml")
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes(b"s:\n  vae: caf\xe9\n")
    with pytest.raises(ExtraPathsError, match="cannot read"):
        read_extra_model_paths(bad)


def test_missing_folders_are_only_debug_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    yaml_file = write(tmp_path / "extra.yaml", "s:\n  vae: not/there\n")
    with caplog.at_level(logging.DEBUG, logger="models.extra_paths"):
        assert read_extra_model_paths(yaml_file).last == {"vae": (tmp_path / "not/there",)}
    assert [record.levelno for record in caplog.records] == [logging.DEBUG]
    assert "not/there" in caplog.records[0].getMessage()
