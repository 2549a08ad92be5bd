"""Llama encoders from single files: detection from shapes (the real llava-llama-3 8B's on meta tensors, heads of
128), fp16 and scaled fp8 files loading back to the same ``LlamaModel``, and refusals of other files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from models.errors import StateDictError
from models.loading import load_state_dict
from models.metadata import read_safetensors_header
from models.text_encoders.llama import (
    HEAD_DIM,
    LLAVA_LLAMA3_8B,
    detect_llama_config,
    is_llama,
    llama_from_state_dict,
    llama_to_single_file,
)
from models.tiny.text_families import TINY_LLAMA_CONFIG, tiny_llama, write_tiny_text_family_files

IDS = torch.tensor([[5, 17, 42, 9, 1, 0, 0], [7, 1, 3, 0, 0, 0, 0]])


def release_shapes(
    vocab: int, hidden: int, heads: int, kv_heads: int, intermediate: int, layers: int, head_dim: int = HEAD_DIM
) -> dict[str, torch.Tensor]:
    """A meta-tensor state dict laid out as Comfy-Org's llava_llama3 release (written from the layout)."""
    shapes: dict[str, tuple[int, ...]] = {
        "model.embed_tokens.weight": (vocab, hidden),
        "model.norm.weight": (hidden,),
        "lm_head.weight": (vocab, hidden),
    }
    for layer in range(layers):
        prefix = f"model.layers.{layer}."
        shapes[f"{prefix}self_attn.q_proj.weight"] = (heads * head_dim, hidden)
        shapes[f"{prefix}self_attn.k_proj.weight"] = (kv_heads * head_dim, hidden)
        shapes[f"{prefix}self_attn.v_proj.weight"] = (kv_heads * head_dim, hidden)
        shapes[f"{prefix}self_attn.o_proj.weight"] = (hidden, heads * head_dim)
        shapes[f"{prefix}mlp.gate_proj.weight"] = (intermediate, hidden)
        shapes[f"{prefix}mlp.up_proj.weight"] = (intermediate, hidden)
        shapes[f"{prefix}mlp.down_proj.weight"] = (hidden, intermediate)
        shapes[f"{prefix}input_layernorm.weight"] = (hidden,)
        shapes[f"{prefix}post_attention_layernorm.weight"] = (hidden,)
    return {key: torch.empty(shape, device="meta", dtype=torch.float16) for key, shape in shapes.items()}


def llava_llama3_shapes() -> dict[str, torch.Tensor]:
    return release_shapes(128320, 4096, 32, 8, 14336, 32)


def hidden_states(model: torch.nn.Module) -> tuple[torch.Tensor, ...]:
    with torch.no_grad():
        output = model(input_ids=IDS, attention_mask=IDS.ne(0).long(), output_hidden_states=True)
    return tuple(state.float() for state in output.hidden_states)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return write_tiny_text_family_files(tmp_path_factory.mktemp("models"))[2:4]


def test_the_real_llava_llama3_is_detected_from_its_shapes() -> None:
    state_dict = llava_llama3_shapes()
    assert is_llama(state_dict)
    config = detect_llama_config(state_dict)
    assert {key: getattr(config, key) for key in LLAVA_LLAMA3_8B} == LLAVA_LLAMA3_8B
    assert config.rope_parameters["rope_theta"] == 500000.0 and config.rms_norm_eps == 1e-5
    assert config.hidden_act == "silu" and not config.attention_bias
    model = llama_from_state_dict(state_dict, torch.bfloat16)  # meta in, meta out; lm_head ignored
    assert model.embed_tokens.weight.is_meta and model.layers[31].mlp.down_proj.weight.shape == (4096, 14336)
    assert model.rotary_emb.inv_freq.device.type == "cpu" and model.rotary_emb.inv_freq.shape == (HEAD_DIM // 2,)


def test_the_fp16_file_loads_back_to_the_same_model(files: list[Path]) -> None:
    state_dict = load_state_dict(files[0])
    assert is_llama(state_dict) and "lm_head.weight" in state_dict
    model = llama_from_state_dict(state_dict, torch.float32)
    assert not any(parameter.requires_grad for parameter in model.parameters()) and not model.training
    reference = tiny_llama()
    for parameter in reference.parameters():  # the file's float16 rounding, not of the float32 rotary buffer
        parameter.data = parameter.data.half().float()
    assert model.state_dict().keys() == reference.state_dict().keys()
    for name, weight in reference.state_dict().items():
        assert torch.equal(model.state_dict()[name], weight), name
    assert torch.equal(model.rotary_emb.inv_freq, reference.rotary_emb.inv_freq)
    for ours, theirs in zip(hidden_states(model), hidden_states(reference), strict=True):
        assert torch.equal(ours, theirs)


def test_the_tiny_model_keeps_heads_of_128() -> None:
    tensors = llama_to_single_file(tiny_llama())
    config = detect_llama_config(tensors)
    assert config.head_dim == HEAD_DIM == TINY_LLAMA_CONFIG["head_dim"]
    assert (config.num_attention_heads, config.num_key_value_heads) == (2, 1)
    assert config.num_hidden_layers == 4 and config.hidden_size == 32


def test_the_scaled_fp8_file_loads_dequantised(files: list[Path]) -> None:
    state_dict = load_state_dict(files[1])
    assert state_dict["model.layers.0.mlp.gate_proj.weight"].dtype == torch.float8_e4m3fn and is_llama(state_dict)
    model = llama_from_state_dict(state_dict, torch.float32, read_safetensors_header(files[1]).metadata)
    reference = tiny_llama()
    for name, weight in reference.named_parameters():
        assert (model.get_parameter(name) - weight).abs().max() <= weight.abs().max() / 16, name
    key = "model.layers.2.self_attn.o_proj"
    exact = state_dict[f"{key}.weight"].float() * state_dict[f"{key}.scale_weight"].float()
    assert torch.equal(model.get_parameter("layers.2.self_attn.o_proj.weight"), exact)


def test_a_file_without_the_prefix_loads_too(files: list[Path]) -> None:
    state_dict = load_state_dict(files[0])
    bare = {key.removeprefix("model."): value for key, value in state_dict.items() if key != "lm_head.weight"}
    assert is_llama(bare)
    model = llama_from_state_dict(bare, torch.float32)
    assert torch.equal(hidden_states(model)[-1], hidden_states(llama_from_state_dict(state_dict, torch.float32))[-1])


def test_other_files_are_refused() -> None:
    t5 = {"shared.weight": torch.empty(1), "encoder.block.0.layer.0.SelfAttention.q.weight": torch.empty(1)}
    assert not is_llama(t5)
    with pytest.raises(StateDictError, match=r"^not a Llama text encoder"):
        llama_from_state_dict(t5, torch.float32)
    qwen = llava_llama3_shapes() | {"model.layers.0.self_attn.q_proj.bias": torch.empty(4096, device="meta")}
    assert not is_llama(qwen)


def test_heads_that_are_not_128_wide_or_missing_tensors_are_named() -> None:
    odd = release_shapes(1000, 96, 1, 1, 64, 2, head_dim=96)
    with pytest.raises(StateDictError, match=r"not whole heads of 128"):
        detect_llama_config(odd)
    truncated = llava_llama3_shapes()
    del truncated["model.layers.7.mlp.up_proj.weight"]
    with pytest.raises(StateDictError, match=r"1 missing \(model\.layers\.7\.mlp\.up_proj\.weight\)"):
        llama_from_state_dict(truncated, torch.float16)
    gap = {key: value for key, value in llava_llama3_shapes().items() if ".layers.9." not in key}
    with pytest.raises(StateDictError, match=r"layer\(s\) \[9\] missing"):
        llama_from_state_dict(gap, torch.float16)
