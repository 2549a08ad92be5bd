"""CLIP-L text encoders from single files: detection from shapes (the real CLIP-L's on meta tensors), the file loading
back to the same ``CLIPTextModel`` (projection ignored), and no confusion with CLIP vision or clip_g files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from models.clip_vision import is_clip_vision
from models.errors import StateDictError
from models.loading import load_state_dict
from models.text_encoders.clip_text import (
    CLIP_L_TEXT,
    clip_text_from_state_dict,
    clip_text_to_single_file,
    detect_clip_text_config,
    is_clip_l_text,
)
from models.tiny.text import write_tiny_clip_vision
from models.tiny.text_families import TINY_CLIP_L_CONFIG, tiny_clip_l, write_tiny_text_family_files

IDS = torch.tensor([[7, 40, 41, 99, 5, 3, 3], [7, 99, 3, 3, 3, 3, 3]])  # 99: the highest id of each row is pooled


def release_shapes(vocab: int, width: int, ff: int, layers: int, positions: int = 77) -> dict[str, torch.Tensor]:
    """A meta-tensor state dict laid out as Comfy-Org's clip_l release (written from the layout)."""
    shapes: dict[str, tuple[int, ...]] = {
        "text_model.embeddings.token_embedding.weight": (vocab, width),
        "text_model.embeddings.position_embedding.weight": (positions, width),
        "text_model.embeddings.position_ids": (1, positions),
        "text_model.final_layer_norm.weight": (width,),
        "text_model.final_layer_norm.bias": (width,),
        "text_projection.weight": (width, width),
        "logit_scale": (),
    }
    for layer in range(layers):
        prefix = f"text_model.encoder.layers.{layer}."
        for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
            shapes[f"{prefix}self_attn.{name}.weight"] = (width, width)
            shapes[f"{prefix}self_attn.{name}.bias"] = (width,)
        for name in ("layer_norm1", "layer_norm2"):
            shapes[f"{prefix}{name}.weight"] = (width,)
            shapes[f"{prefix}{name}.bias"] = (width,)
        shapes[f"{prefix}mlp.fc1.weight"] = (ff, width)
        shapes[f"{prefix}mlp.fc1.bias"] = (ff,)
        shapes[f"{prefix}mlp.fc2.weight"] = (width, ff)
        shapes[f"{prefix}mlp.fc2.bias"] = (width,)
    return {key: torch.empty(shape, device="meta", dtype=torch.float16) for key, shape in shapes.items()}


def clip_l_shapes() -> dict[str, torch.Tensor]:
    return release_shapes(49408, 768, 3072, 12)


def outputs(model: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        output = model(IDS)
    return output.last_hidden_state, output.pooler_output


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("models")
    write_tiny_text_family_files(folder)
    write_tiny_clip_vision(folder)
    return folder


def test_the_real_clip_l_is_detected_from_its_shapes() -> None:
    state_dict = clip_l_shapes()
    assert is_clip_l_text(state_dict) and not is_clip_vision(state_dict)
    config = detect_clip_text_config(state_dict)
    assert {key: getattr(config, key) for key in CLIP_L_TEXT} == CLIP_L_TEXT
    assert config.hidden_act == "quick_gelu" and config.eos_token_id == 2 and config.projection_dim == 768
    model = clip_text_from_state_dict(state_dict, torch.float16)
    assert model.embeddings.token_embedding.weight.is_meta
    assert torch.equal(model.embeddings.position_ids, torch.arange(77)[None])


def test_the_file_loads_back_to_the_same_model(models_dir: Path) -> None:
    state_dict = load_state_dict(models_dir / "text_encoders" / "clip_l.safetensors")
    assert is_clip_l_text(state_dict) and "text_projection.weight" in state_dict
    model = clip_text_from_state_dict(state_dict, torch.float32)
    assert not any(parameter.requires_grad for parameter in model.parameters()) and not model.training
    reference = tiny_clip_l().half().float()
    for name, weight in reference.state_dict().items():
        assert torch.equal(model.state_dict()[name], weight), name
    for ours, theirs in zip(outputs(model), outputs(reference), strict=True):
        assert torch.equal(ours, theirs)
    pooled = outputs(model)[1]
    assert torch.equal(pooled, outputs(model)[0][[0, 1], [3, 1]])  # the highest id's position


def test_the_single_file_layout_is_the_release_layout() -> None:
    config = TINY_CLIP_L_CONFIG
    tensors = clip_text_to_single_file(tiny_clip_l(), torch.zeros(32, 32))
    expected = release_shapes(config["vocab_size"], 32, config["intermediate_size"], 2)
    del expected["text_model.embeddings.position_ids"], expected["logit_scale"]
    assert {key: tuple(tensor.shape) for key, tensor in tensors.items()} == {
        key: tuple(tensor.shape) for key, tensor in expected.items()
    }


def test_clip_vision_whole_clip_and_clip_g_files_are_not_clip_l_text(models_dir: Path) -> None:
    vision = load_state_dict(models_dir / "clip_vision" / "clip_vision_h.safetensors")
    assert is_clip_vision(vision) and not is_clip_l_text(vision)
    with pytest.raises(StateDictError, match=r"holds a CLIP vision tower"):
        clip_text_from_state_dict(vision, torch.float32)
    whole = clip_l_shapes() | {f"vision_model.{key}": value for key, value in vision.items()}
    assert not is_clip_l_text(whole)
    clip_g = release_shapes(49408, 1280, 5120, 32)
    assert not is_clip_l_text(clip_g)
    with pytest.raises(StateDictError, match=r"clip_g"):
        detect_clip_text_config(clip_g)
    with pytest.raises(StateDictError, match=r"^not a CLIP text encoder: no "):
        detect_clip_text_config({"model.embed_tokens.weight": torch.empty(1)})


def test_missing_tensors_are_named() -> None:
    truncated = clip_l_shapes()
    del truncated["text_model.encoder.layers.3.mlp.fc2.bias"]
    with pytest.raises(StateDictError, match=r"1 missing \(text_model\.encoder\.layers\.3\.mlp\.fc2\.bias\)"):
        clip_text_from_state_dict(truncated, torch.float16)
