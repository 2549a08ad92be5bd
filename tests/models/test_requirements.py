"""``models.requirements``: the models an editor workflow lists, and which of them the model folders hold."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from models.extra_paths import ExtraModelPaths
from models.folders import ModelFolders
from models.requirements import (
    ModelRequirement,
    ModelRequirementsError,
    missing_models,
    partition_models,
    repo_id_from_url,
    required_models,
)

HF = "https://huggingface.co"
VAE_URL = f"{HF}/Comfy-Org/Wan_2.1_ComfyUI_repackaged/resolve/main/split_files/vae/wan_2.1_vae.safetensors"
TE_URL = f"{HF}/Comfy-Org/Wan_2.1_ComfyUI_repackaged/resolve/main/split_files/text_encoders/umt5.safetensors"
LORA_URL = "https://hf.co/someone/loras/blob/v2/style%20lora.safetensors?download=true"
CIVITAI_URL = "https://civitai.com/api/download/models/12345"


def node(node_id: int, node_type: str, *models: dict[str, Any], **properties: Any) -> dict[str, Any]:
    if models:
        properties["models"] = list(models)
    return {"id": node_id, "type": node_type, "properties": properties, "widgets_values": []}


def model(name: str, directory: str, url: str | None = None) -> dict[str, Any]:
    entry = {"name": name, "directory": directory}
    if url is not None:
        entry["url"] = url
    return entry


def workflow() -> dict[str, Any]:
    return {
        "last_node_id": 6,
        "nodes": [
            node(
                1, "VAELoader", model("wan_2.1_vae.safetensors", "vae", VAE_URL), **{"Node name for S&R": "VAELoader"}
            ),
            node(2, "CLIPLoader", model("umt5.safetensors", "clip", TE_URL)),  # ComfyUI's legacy folder name
            node(3, "VAEDecode"),
            node(4, "VAELoader", model("wan_2.1_vae.safetensors", "vae")),  # listed again, without a URL
            node(5, "UNETLoader", model("wan_t2v.safetensors", "diffusion_models", CIVITAI_URL)),
            {"id": 6, "type": "Note"},  # no properties at all
        ],
        "links": [],
        "models": [model("tiny-pipe", "diffusers", f"{HF}/org/tiny-pipe/resolve/main/model_index.json")],
        "extra": {"models": [model("style lora.safetensors", "loras", LORA_URL)], "ds": {"scale": 1}},
    }


def test_models_are_read_from_nodes_and_workflow_lists() -> None:
    found = required_models(workflow())
    assert found == [
        ModelRequirement("wan_2.1_vae.safetensors", "vae", VAE_URL, "Comfy-Org/Wan_2.1_ComfyUI_repackaged", ("1", "4")),
        ModelRequirement("umt5.safetensors", "text_encoders", TE_URL, "Comfy-Org/Wan_2.1_ComfyUI_repackaged", ("2",)),
        ModelRequirement("wan_t2v.safetensors", "diffusion_models", CIVITAI_URL, None, ("5",)),
        ModelRequirement(
            "tiny-pipe", "diffusers", f"{HF}/org/tiny-pipe/resolve/main/model_index.json", "org/tiny-pipe"
        ),
        ModelRequirement("style lora.safetensors", "loras", LORA_URL, "someone/loras"),
    ]
    assert found[0].to_json() == {
        "name": "wan_2.1_vae.safetensors",
        "folder": "vae",
        "url": VAE_URL,
        "repo_id": "Comfy-Org/Wan_2.1_ComfyUI_repackaged",
        "nodes": ["1", "4"],
    }


def test_a_later_mention_fills_in_the_url() -> None:
    nodes = [
        node(7, "VAELoader", model("v.safetensors", "vae")),
        node(8, "VAELoader", model("v.safetensors", "vae", VAE_URL)),
    ]
    (only,) = required_models({"nodes": nodes})
    assert (only.url, only.repo_id, only.node_ids) == (VAE_URL, "Comfy-Org/Wan_2.1_ComfyUI_repackaged", ("7", "8"))


def test_a_workflow_without_model_lists_needs_nothing() -> None:
    assert required_models({"nodes": [node(1, "EmptyImage")], "links": []}) == []


@pytest.mark.parametrize(
    ("url", "repo_id"),
    [
        (VAE_URL, "Comfy-Org/Wan_2.1_ComfyUI_repackaged"),
        (LORA_URL, "someone/loras"),
        ("http://www.huggingface.co/a/b/resolve/main/c.gguf", "a/b"),
        (f"{HF}/datasets/a/b/resolve/main/c.safetensors", None),  # not a model repo
        (f"{HF}/a/b", None),  # the repo page, not a file
        (f"{HF}/a/b/tree/main/c", None),
        (CIVITAI_URL, None),
        ("ftp://huggingface.co/a/b/resolve/main/c", None),
        ("http://[broken/a/b/resolve/main/c", None),
    ],
)
def test_repo_ids_come_from_hub_file_urls(url: str, repo_id: str | None) -> None:
    assert repo_id_from_url(url) == repo_id


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"prompt": {}}, r"no 'nodes' list; send the editor's \(UI\) format"),
        ({"nodes": {}}, r"no 'nodes' list"),
        ({"nodes": ["x"]}, r"^nodes\[0\] is not an object$"),
        (
            {"nodes": [{"id": 3, "properties": {"models": "vae.safetensors"}}]},
            r"^node 3: properties.models must be a list",
        ),
        ({"nodes": [{"id": 3, "properties": {"models": [7]}}]}, r"^node 3: properties.models\[0\] must be an object"),
        ({"nodes": [node(3, "X", {"directory": "vae"})]}, r"properties.models\[0\] has no 'name'"),
        ({"nodes": [node(3, "X", {"name": "v.safetensors"})]}, r"\('v.safetensors'\) has no 'directory'"),
        ({"nodes": [node(3, "X", model("../v.safetensors", "vae"))]}, r"^node 3: properties.models\[0\]: .*'\.\.'"),
        ({"nodes": [node(3, "X", {"name": "v", "directory": "vae", "url": 5})]}, r"'url' must be a string"),
        ({"nodes": [], "extra": {"models": {}}}, r"^extra.models must be a list, got dict$"),
        ({"nodes": [], "models": [model("", "vae")]}, r"^the workflow's models\[0\] has no 'name'"),
    ],
)
def test_malformed_model_lists_are_named(bad: dict[str, Any], message: str) -> None:
    with pytest.raises(ModelRequirementsError, match=message):
        required_models(bad)


def put(path: Path, data: bytes = b"weights") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def test_missing_and_present_follow_the_model_folders(tmp_path: Path) -> None:
    extra_te = tmp_path / "elsewhere" / "text_encoders"
    folders = ModelFolders(tmp_path / "models", ExtraModelPaths(first={}, last={"text_encoders": (extra_te,)}))
    put(folders.folder("vae") / "wan_2.1_vae.safetensors")
    put(extra_te / "umt5.safetensors")  # found in an extra folder
    put(folders.folder("diffusers") / "tiny-pipe" / "model_index.json", b"{}")
    (folders.folder("loras") / "style lora.safetensors").mkdir(parents=True)  # a folder is not a model file
    requirements = required_models(workflow())
    missing, present = partition_models(requirements, folders)
    assert [r.name for r in present] == ["wan_2.1_vae.safetensors", "umt5.safetensors", "tiny-pipe"]
    assert [r.name for r in missing] == ["wan_t2v.safetensors", "style lora.safetensors"]
    assert missing_models(requirements, folders) == missing


def test_unknown_folders_and_escaping_links_count_as_missing(tmp_path: Path) -> None:
    folders = ModelFolders(tmp_path / "models")
    put(tmp_path / "outside.safetensors")
    folders.folder("vae").mkdir(parents=True)
    (folders.folder("vae") / "linked.safetensors").symlink_to(tmp_path / "outside.safetensors")
    put(folders.folder("diffusers") / "not-a-pipeline" / "unet.safetensors")
    requirements = [
        ModelRequirement("ip.safetensors", "ipadapter", None, None),
        ModelRequirement("linked.safetensors", "vae", None, None),
        ModelRequirement("not-a-pipeline", "diffusers", None, None),
    ]
    assert missing_models(requirements, folders) == requirements


def test_a_malformed_subgraph_definitions_list_is_a_requirements_error() -> None:
    workflow = {"nodes": [], "definitions": {"subgraphs": {"not": "a list"}}}
    with pytest.raises(ModelRequirementsError, match=r"definitions\.subgraphs must be a list"):
        required_models(workflow)


def test_depth_model_folders_count_as_present_when_they_hold_their_config(tmp_path: Path) -> None:
    folders = ModelFolders(tmp_path / "models")
    put(folders.folder("depth_estimation") / "Depth-Anything-V2-Small-hf" / "config.json", b"{}")
    put(folders.folder("depth_estimation") / "half-copied" / "model.safetensors")
    present = ModelRequirement("Depth-Anything-V2-Small-hf", "depth_estimation", None, None)
    incomplete = ModelRequirement("half-copied", "depth_estimation", None, None)
    missing, found = partition_models([present, incomplete], folders)
    assert (found, missing) == ([present], [incomplete])
    assert folders.list_files("depth_estimation") == ["Depth-Anything-V2-Small-hf"]
