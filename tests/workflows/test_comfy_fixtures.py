"""Hand-written ComfyUI workflows, one per saved format, convert to the API prompts ComfyUI would queue and run.

- ``v04_reroute_primitive_bypass.json`` (version 0.4, array links): a primitive feeding three inputs, a reroute
  chain, a bypassed node between IMAGE sockets, a muted output, notes and groups.
- ``v1_nested_subgraphs.json`` (schema version 1, object links, ``state``, top-level ``reroutes``): two instances of
  a subgraph that nests a second one, with a promoted input widget and a promoted inner widget.
- ``v04_wan_bypassed_lora.json``: a Wan text-to-video graph with a bypassed LoraLoader (MODEL and CLIP each pass
  through to their own consumers), a seed with its ``control_after_generate`` value, and a primitive prompt.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

import main
from graph.prompt import Prompt
from graph.registry import NodeRegistry
from graph.validation import validate_prompt
from graph.workflow_file import load_workflow
from models.folders import ModelFolders
from nodes import register_builtin_nodes
from nodes.folders import Folders

FIXTURES = Path(__file__).resolve().parents[1] / "graph" / "fixtures" / "comfy"
WAN_FILES = {
    "unet_name": "wan2.1_t2v_1.3B_fp16.safetensors",
    "clip_name": "umt5_xxl_fp8_e4m3fn_scaled.safetensors",
    "vae_name": "wan_2.1_vae.safetensors",
}

EXPECTED: dict[str, dict[str, dict[str, Any]]] = {
    "v04_reroute_primitive_bypass.json": {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 48, "height": 48, "batch_size": 1, "color": 0xFF0000}},
        "4": {"class_type": "ImageCrop", "inputs": {"image": ["1", 0], "width": 48, "height": 32, "x": 0, "y": 0}},
        "5": {"class_type": "SaveImage", "inputs": {"images": ["4", 0], "filename_prefix": "fixture/v04"}},
    },
    "v1_nested_subgraphs.json": {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 32, "height": 24, "batch_size": 1, "color": 0x00FF00}},
        **{f"{outer}:2:1": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}} for outer in ("5", "6")},
        **{
            f"{outer}:2:2": {
                "class_type": "ImageBlend",
                "inputs": {
                    "image1": [f"{outer}:2:1", 0],
                    "image2": ["1", 0],
                    "blend_factor": 0.0,
                    "blend_mode": "normal",
                },
            }
            for outer in ("5", "6")
        },
        **{
            f"{outer}:1": {
                "class_type": "ImageScaleBy",
                "inputs": {"image": [f"{outer}:2:2", 0], "upscale_method": "nearest-exact", "scale_by": scale},
            }
            for outer, scale in (("5", 2.0), ("6", 1.0))
        },
        "9": {"class_type": "SaveImage", "inputs": {"images": ["5:1", 0], "filename_prefix": "fixture/nested_a"}},
        "10": {"class_type": "SaveImage", "inputs": {"images": ["6:1", 0], "filename_prefix": "fixture/nested_b"}},
    },
    "v04_wan_bypassed_lora.json": {
        "1": {"class_type": "UNETLoader", "inputs": {"unet_name": WAN_FILES["unet_name"], "weight_dtype": "default"}},
        "2": {
            "class_type": "CLIPLoader",
            "inputs": {"clip_name": WAN_FILES["clip_name"], "type": "wan", "device": "default"},
        },
        "4": {"class_type": "ModelSamplingSD3", "inputs": {"model": ["1", 0], "shift": 8}},
        "5": {
            "class_type": "CLIPTextEncode",
            "inputs": {"clip": ["2", 0], "text": "a red fox runs through fresh snow, morning light"},
        },
        "6": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["2", 0], "text": "blurry, static, low quality"}},
        "7": {
            "class_type": "EmptyHunyuanLatentVideo",
            "inputs": {"width": 32, "height": 32, "length": 5, "batch_size": 1},
        },
        "8": {
            "class_type": "KSampler",
            "inputs": {
                "model": ["4", 0],
                "positive": ["5", 0],
                "negative": ["6", 0],
                "latent_image": ["7", 0],
                "seed": 1234567890123,
                "steps": 2,
                "cfg": 6,
                "sampler_name": "uni_pc",
                "scheduler": "simple",
                "denoise": 1,
            },
        },
        "9": {"class_type": "VAELoader", "inputs": {"vae_name": WAN_FILES["vae_name"]}},
        "10": {"class_type": "VAEDecode", "inputs": {"samples": ["8", 0], "vae": ["9", 0]}},
        "11": {
            "class_type": "SaveAnimatedWEBP",
            "inputs": {
                "images": ["10", 0],
                "filename_prefix": "fixture/wan",
                "fps": 16,
                "lossless": False,
                "quality": 90,
                "method": "default",
            },
        },
    },
}


@pytest.fixture(scope="module")
def registry(tiny_models_dir: Path) -> NodeRegistry:
    registry = NodeRegistry()
    register_builtin_nodes(registry, Folders.under(tiny_models_dir.parent), ModelFolders(tiny_models_dir))
    return registry


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_converts_to_the_expected_prompt_and_validates(name: str, registry: NodeRegistry) -> None:
    loaded = load_workflow(FIXTURES / name, registry)
    prompt = {node_id: {key: body[key] for key in ("class_type", "inputs")} for node_id, body in loaded.api.items()}
    assert prompt == EXPECTED[name]
    assert loaded.conversion is not None and not loaded.conversion.left_over_widgets
    validated = validate_prompt(Prompt.parse(loaded.api), registry)
    assert validated.ok and not validated.node_errors, validated.node_errors


def test_subgraph_nodes_know_their_instances(registry: NodeRegistry) -> None:
    loaded = load_workflow(FIXTURES / "v1_nested_subgraphs.json", registry)
    assert loaded.conversion is not None
    source = loaded.conversion.sources["6:2:2"]
    assert (source.node.id, source.path, source.subgraphs) == ("2", ("6", "2"), ("Scale and look", "Invert and blend"))
    assert loaded.api["6:2:2"]["_meta"] == {"title": "ImageBlend"}
    assert loaded.conversion.sources["9"].path == ()


def _run(workflow: Path, tmp_path: Path, models_dir: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    output = tmp_path / "out"
    args = ["run", str(workflow), "--output-dir", str(output), "--temp-dir", str(tmp_path / "temp")]
    args += ["--input-dir", str(tmp_path / "in"), "--models-dir", str(models_dir), "--no-progress", "--cpu"]
    assert main.main(args) == 0, capsys.readouterr().err
    return output


def _only_image(folder: Path, prefix: str) -> Image.Image:
    (path,) = folder.glob(f"{prefix}_*.png")
    with Image.open(path) as image:
        return image.convert("RGB")


def test_reroutes_primitive_and_bypass_run(
    tmp_path: Path, tiny_models_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = _run(FIXTURES / "v04_reroute_primitive_bypass.json", tmp_path, tiny_models_dir, capsys)
    image = _only_image(output / "fixture", "v04")
    assert image.size == (48, 32)  # the primitive's 48 reached width, height and the crop
    assert image.getpixel((5, 5)) == (255, 0, 0)  # red: the bypassed invert did not run
    assert not list((output / "fixture").glob("muted_*"))


def test_nested_subgraphs_run_with_each_instance_own_promoted_value(
    tmp_path: Path, tiny_models_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = _run(FIXTURES / "v1_nested_subgraphs.json", tmp_path, tiny_models_dir, capsys)
    doubled, plain = _only_image(output / "fixture", "nested_a"), _only_image(output / "fixture", "nested_b")
    assert (doubled.size, plain.size) == ((64, 48), (32, 24))
    # green inverted, and the promoted blend_factor 0.0 (not the inner node's own 0.5) keeps only the inverse
    assert doubled.getpixel((10, 10)) == plain.getpixel((10, 10)) == (255, 0, 255)


def test_wan_graph_with_bypassed_lora_runs_on_tiny_models(
    tmp_path: Path, tiny_models_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = _run(FIXTURES / "v04_wan_bypassed_lora.json", tmp_path, tiny_models_dir, capsys)
    (webp,) = (output / "fixture").glob("wan_*.webp")
    with Image.open(webp) as animation:
        assert (animation.size, animation.n_frames) == ((32, 32), 5)


def test_fixtures_are_the_formats_they_claim() -> None:
    """Guard the fixtures themselves: each keeps the shapes its test is about."""
    v04 = json.loads((FIXTURES / "v04_reroute_primitive_bypass.json").read_text())
    assert v04["version"] == 0.4 and all(isinstance(link, list) for link in v04["links"])
    primitive = next(node for node in v04["nodes"] if node["type"] == "PrimitiveNode")
    assert len(primitive["outputs"][0]["links"]) == 3
    v1 = json.loads((FIXTURES / "v1_nested_subgraphs.json").read_text())
    assert v1["version"] == 1 and all(isinstance(link, dict) for link in v1["links"])
    assert {"state", "reroutes", "definitions"} <= v1.keys()
    inner_ids = {definition["id"] for definition in v1["definitions"]["subgraphs"]}
    nested = [node for d in v1["definitions"]["subgraphs"] for node in d["nodes"] if node["type"] in inner_ids]
    assert len(nested) == 1  # the second level
