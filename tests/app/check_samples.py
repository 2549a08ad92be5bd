"""Shared ComfyUI-style workflows for the workflow check and download tests: a Wan text-to-video graph in the
editor's format whose loaders list their models (with Hugging Face URLs) the way ComfyUI's templates do."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from PIL import Image
from PIL.PngImagePlugin import PngInfo

from graph.registry import NodeRegistry
from models.folders import ModelFolders
from nodes import register_builtin_nodes
from nodes.folders import Folders

HF = "https://huggingface.co"
REPO = "org/wan-files"
UNET = "tiny_unet.safetensors"
TEXT_ENCODER = "tiny_te.safetensors"
VAE = "tiny_vae.safetensors"
# listed name -> (folder key, path in REPO)
MODEL_FILES = {
    UNET: ("diffusion_models", "split_files/diffusion_models/tiny_unet.safetensors"),
    TEXT_ENCODER: ("text_encoders", "split_files/text_encoders/tiny_te.safetensors"),
    VAE: ("vae", "split_files/vae/tiny_vae.safetensors"),
}
PACK = "comfyui-videohelpersuite"
PACK_VERSION = "1.6.1"
UNSUPPORTED_SAMPLER = "res_multistep"


def hub_url(repo_path: str, repo: str = REPO) -> str:
    return f"{HF}/{repo}/resolve/main/{repo_path}?download=true"


def listed(name: str) -> list[dict[str, str]]:
    folder, repo_path = MODEL_FILES[name]
    return [{"name": name, "url": hub_url(repo_path), "directory": folder}]


def ui_node(
    node_id: int,
    node_type: str,
    widgets: list[Any] | dict[str, Any],
    inputs: dict[str, int] | None = None,
    outputs: dict[str, list[int]] | None = None,
    **properties: Any,
) -> dict[str, Any]:
    """A UI node: ``inputs`` maps input names to link ids, ``outputs`` output types to link ids."""
    return {
        "id": node_id,
        "type": node_type,
        "mode": 0,
        "inputs": [{"name": name, "type": "*", "link": link} for name, link in (inputs or {}).items()],
        "outputs": [{"name": kind, "type": kind, "links": links} for kind, links in (outputs or {}).items()],
        "properties": {"cnr_id": "comfy-core", "ver": "0.3.45", **properties},
        "widgets_values": widgets,
    }


def wan_workflow(sampler: str = "euler", unknown_output: bool = False) -> dict[str, Any]:
    """UNETLoader, CLIPLoader, two prompts, an empty latent, KSampler, VAELoader, VAEDecode and a saver: ours
    (SaveAnimatedWEBP) or VideoHelperSuite's ``VHS_VideoCombine`` with its registry id."""
    if unknown_output:
        output = ui_node(9, "VHS_VideoCombine", {"frame_rate": 16, "format": "video/h264-mp4"}, {"images": 9})
        output["properties"] = {"cnr_id": PACK, "ver": PACK_VERSION, "Node name for S&R": "VHS_VideoCombine"}
        output["title"] = "Video Combine"
    else:
        output = ui_node(9, "SaveAnimatedWEBP", ["wan", 16.0, False, 90, "default"], {"images": 9})
    nodes = [
        ui_node(1, "UNETLoader", [UNET, "default"], outputs={"MODEL": [1]}, models=listed(UNET)),
        ui_node(
            2, "CLIPLoader", [TEXT_ENCODER, "wan", "default"], outputs={"CLIP": [2, 3]}, models=listed(TEXT_ENCODER)
        ),
        ui_node(3, "CLIPTextEncode", ["a red fox"], {"clip": 2}, {"CONDITIONING": [4]}),
        ui_node(4, "CLIPTextEncode", [""], {"clip": 3}, {"CONDITIONING": [5]}),
        ui_node(5, "EmptyHunyuanLatentVideo", [64, 64, 5, 1], outputs={"LATENT": [6]}),
        ui_node(
            6,
            "KSampler",
            [42, "fixed", 4, 5.0, sampler, "simple", 1.0],
            {"model": 1, "positive": 4, "negative": 5, "latent_image": 6},
            {"LATENT": [7]},
        ),
        ui_node(7, "VAELoader", [VAE], outputs={"VAE": [8]}, models=listed(VAE)),
        ui_node(8, "VAEDecode", [], {"samples": 7, "vae": 8}, {"IMAGE": [9]}),
        output,
    ]
    links = [
        [1, 1, 0, 6, 0, "MODEL"],
        [2, 2, 0, 3, 0, "CLIP"],
        [3, 2, 0, 4, 0, "CLIP"],
        [4, 3, 0, 6, 1, "CONDITIONING"],
        [5, 4, 0, 6, 2, "CONDITIONING"],
        [6, 5, 0, 6, 3, "LATENT"],
        [7, 6, 0, 8, 0, "LATENT"],
        [8, 7, 0, 8, 1, "VAE"],
        [9, 8, 0, 9, 0, "IMAGE"],
    ]
    return {"last_node_id": 9, "last_link_id": 9, "nodes": nodes, "links": links, "version": 0.4}


def unsupported_workflow() -> dict[str, Any]:
    """The acceptance case: an unknown pack's output node, an unsupported sampler, and (with no model files) missing
    models that the workflow lists with their URLs."""
    return wan_workflow(sampler=UNSUPPORTED_SAMPLER, unknown_output=True)


def put_models(models_dir: Path, names: tuple[str, ...] = tuple(MODEL_FILES)) -> None:
    """Stand-in files for the listed models (the check only looks for the files)."""
    for name in names:
        folder = models_dir / MODEL_FILES[name][0]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(b"weights")


def builtin_registry(models_dir: Path, base: Path) -> NodeRegistry:
    registry = NodeRegistry()
    report = register_builtin_nodes(registry, Folders.under(base), ModelFolders(models_dir))
    assert not report.failures
    return registry


def write_json(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(json.dumps(data))
    return path


def png_with_workflow(path: Path, workflow: dict[str, Any]) -> Path:
    """A PNG as ComfyUI saves it: the editor workflow in a ``workflow`` tEXt chunk."""
    info = PngInfo()
    info.add_text("workflow", json.dumps(workflow))
    Image.new("RGB", (4, 4)).save(path, pnginfo=info)
    return path


def without_model_lists(workflow: dict[str, Any]) -> dict[str, Any]:
    changed = copy.deepcopy(workflow)
    for node in changed["nodes"]:
        node["properties"].pop("models", None)
    return changed
