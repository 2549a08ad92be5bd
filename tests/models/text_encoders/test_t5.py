"""T5 v1.1 encoders from single files: detection from shapes (the real T5-XXL's on meta tensors), fp16 and scaled fp8
files loading back to the same model, and clear refusals of UMT5 and other files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from models.errors import StateDictError
from models.loading import load_state_dict
from models.metadata import read_safetensors_header
from models.text_encoders.t5 import (
    EMBED_TOKENS,
    SHARED,
    T5_V1_1_XXL,
    detect_t5_config,
    is_t5,
    t5_from_state_dict,
    t5_to_single_file,
)
from models.text_encoders.umt5 import is_umt5, umt5_from_state_dict
from models.tiny.text_families import TINY_T5_CONFIG, tiny_t5, write_tiny_text_family_files

IDS = torch.tensor([[5, 17, 42, 9, 1, 0, 0], [7, 1, 0, 0, 0, 0, 0]])
BIAS = "encoder.block.{}.layer.0.SelfAttention.relative_attention_bias.weight"


def release_shapes(
    vocab: int, width: int, heads: int, head_dim: int, ff: int, blocks: int, buckets: int
) -> dict[str, torch.Tensor]:
    """A meta-tensor state dict laid out as the Comfy-Org t5xxl release (written from the layout, not a model)."""
    inner = heads * head_dim
    shapes: dict[str, tuple[int, ...]] = {SHARED: (vocab, width), "encoder.final_layer_norm.weight": (width,)}
    shapes[BIAS.format(0)] = (buckets, heads)
    for block in range(blocks):
        prefix = f"encoder.block.{block}.layer."
        for name in "qkv":
            shapes[f"{prefix}0.SelfAttention.{name}.weight"] = (inner, width)
        shapes[f"{prefix}0.SelfAttention.o.weight"] = (width, inner)
        shapes[f"{prefix}0.layer_norm.weight"] = (width,)
        shapes[f"{prefix}1.DenseReluDense.wi_0.weight"] = (ff, width)
        shapes[f"{prefix}1.DenseReluDense.wi_1.weight"] = (ff, width)
        shapes[f"{prefix}1.DenseReluDense.wo.weight"] = (width, ff)
        shapes[f"{prefix}1.layer_norm.weight"] = (width,)
    return {key: torch.empty(shape, device="meta", dtype=torch.float16) for key, shape in shapes.items()}


def t5xxl_shapes() -> dict[str, torch.Tensor]:
    return release_shapes(32128, 4096, 64, 64, 10240, 24, 32)


def outputs(model: torch.nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model(IDS, IDS.ne(0).long()).last_hidden_state.float()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return write_tiny_text_family_files(tmp_path_factory.mktemp("models"))[:2]


def test_the_real_t5xxl_is_detected_from_its_shapes() -> None:
    state_dict = t5xxl_shapes()
    assert is_t5(state_dict) and not is_umt5(state_dict)
    config = detect_t5_config(state_dict)
    assert {key: getattr(config, key) for key in T5_V1_1_XXL} == T5_V1_1_XXL
    assert config.is_gated_act and config.dense_act_fn == "gelu_new"
    assert config.relative_attention_max_distance == 128 and config.layer_norm_epsilon == 1e-6
    model = t5_from_state_dict(state_dict, torch.bfloat16)  # meta in, meta out: no memory, all keys matched
    assert model.shared.weight.is_meta and model.encoder.embed_tokens.weight is model.shared.weight
    assert model.encoder.block[0].layer[0].SelfAttention.has_relative_attention_bias
    assert not model.encoder.block[1].layer[0].SelfAttention.has_relative_attention_bias


def test_the_fp16_file_loads_back_to_the_same_model(files: list[Path]) -> None:
    state_dict = load_state_dict(files[0])
    assert is_t5(state_dict) and EMBED_TOKENS not in state_dict
    model = t5_from_state_dict(state_dict, torch.float32)
    assert model.encoder.embed_tokens.weight is model.shared.weight
    assert not any(parameter.requires_grad for parameter in model.parameters()) and not model.training
    reference = tiny_t5().half().float()
    for name, weight in reference.state_dict().items():
        assert torch.equal(model.state_dict()[name], weight), name
    assert torch.equal(outputs(model), outputs(reference))


def test_the_scaled_fp8_file_loads_dequantised(files: list[Path]) -> None:
    state_dict = load_state_dict(files[1])
    assert state_dict["encoder.block.1.layer.1.DenseReluDense.wo.weight"].dtype == torch.float8_e4m3fn
    assert is_t5(state_dict)
    model = t5_from_state_dict(state_dict, torch.float32, read_safetensors_header(files[1]).metadata)
    reference = tiny_t5()
    for name, weight in reference.named_parameters():
        restored = model.get_parameter(name)
        assert restored.dtype == torch.float32
        assert (restored - weight).abs().max() <= weight.abs().max() / 16, name  # e4m3: 3 mantissa bits
    q = "encoder.block.0.layer.0.SelfAttention.q"
    exact = state_dict[f"{q}.weight"].float() * state_dict[f"{q}.scale_weight"].float()
    assert torch.equal(model.get_parameter(f"{q}.weight"), exact)
    expected = outputs(reference)
    assert 0 < (outputs(model) - expected).norm() / expected.norm() < 0.1  # fp8 noise of a 32-wide model


def test_float16_keeps_the_feed_forward_outputs_in_float32(files: list[Path]) -> None:
    model = t5_from_state_dict(load_state_dict(files[0]), torch.float16)
    dtypes = {name.split(".")[-2]: parameter.dtype for name, parameter in model.named_parameters()}
    assert dtypes["wo"] == torch.float32 and dtypes["wi_0"] == torch.float16 and dtypes["shared"] == torch.float16


def test_a_copy_of_the_embedding_and_a_tokenizer_blob_are_accepted(files: list[Path]) -> None:
    state_dict = dict(load_state_dict(files[0]))
    state_dict[EMBED_TOKENS] = state_dict[SHARED].clone()
    state_dict["spiece_model"] = torch.zeros(16, dtype=torch.uint8)
    model = t5_from_state_dict(state_dict, torch.float32)
    only_copy = {key: value for key, value in state_dict.items() if key != SHARED}
    assert torch.equal(outputs(t5_from_state_dict(only_copy, torch.float32)), outputs(model))


def test_the_single_file_layout_is_the_release_layout() -> None:
    config = TINY_T5_CONFIG
    expected = release_shapes(
        config["vocab_size"], config["d_model"], config["num_heads"], config["d_kv"], config["d_ff"], 2, 32
    )
    assert {key: tuple(tensor.shape) for key, tensor in t5_to_single_file(tiny_t5()).items()} == {
        key: tuple(tensor.shape) for key, tensor in expected.items()
    }


def test_t5_and_umt5_are_told_apart_both_ways() -> None:
    t5 = t5xxl_shapes()
    umt5 = t5xxl_shapes() | {BIAS.format(block): torch.empty(32, 64, device="meta") for block in range(1, 24)}
    assert is_t5(t5) and not is_umt5(t5)
    assert is_umt5(umt5) and not is_t5(umt5)
    with pytest.raises(StateDictError, match=r"^not a T5 text encoder: a UMT5 encoder .*need t5xxl$"):
        t5_from_state_dict(umt5, torch.float16)
    with pytest.raises(StateDictError, match=r"^not a UMT5 text encoder: a T5 encoder"):
        umt5_from_state_dict(t5, torch.float16)
    one_block = {key: value for key, value in t5xxl_shapes().items() if not key.startswith("encoder.block.1")}
    one_block = {key: value for key, value in one_block.items() if not key.startswith("encoder.block.2")}
    one_block = {key: value for key, value in one_block.items() if ".block." not in key or ".block.0." in key}
    assert not is_t5(one_block)  # a single block cannot tell T5 from UMT5: UMT5's reading of it wins
    with pytest.raises(StateDictError, match=r"single block"):
        detect_t5_config(one_block)


def test_other_files_are_refused_with_what_they_are() -> None:
    wan = {"patch_embedding.weight": torch.empty(1), "blocks.0.self_attn.q.weight": torch.empty(1)}
    assert not is_t5(wan)
    with pytest.raises(StateDictError, match=r"^not a T5 text encoder: .*is it a diffusion model\?$"):
        t5_from_state_dict(wan, torch.float32)
    ungated = {key.replace("wi_0", "wi"): value for key, value in t5xxl_shapes().items() if "wi_1" not in key}
    with pytest.raises(StateDictError, match=r"not a gated T5 v1\.1 feed-forward"):
        detect_t5_config(ungated)


def test_truncated_or_misshapen_tensors_are_named() -> None:
    truncated = t5xxl_shapes()
    del truncated["encoder.final_layer_norm.weight"]
    with pytest.raises(StateDictError, match=r"1 missing \(encoder\.final_layer_norm\.weight\)"):
        t5_from_state_dict(truncated, torch.float16)
    no_bias = t5xxl_shapes()
    del no_bias[BIAS.format(0)]
    with pytest.raises(StateDictError, match=r"without block 0's relative attention bias"):
        t5_from_state_dict(no_bias, torch.float16)
    gap = {key: value for key, value in t5xxl_shapes().items() if ".block.5." not in key}
    with pytest.raises(StateDictError, match=r"block\(s\) \[5\] missing"):
        t5_from_state_dict(gap, torch.float16)
    misshapen = t5xxl_shapes()
    misshapen["encoder.block.2.layer.0.SelfAttention.k.weight"] = torch.empty(4096, 2048, device="meta")
    with pytest.raises(StateDictError, match=r"misshapen \(encoder\.block\.2\.layer\.0\.SelfAttention\.k\.weight is"):
        t5_from_state_dict(misshapen, torch.float16)
