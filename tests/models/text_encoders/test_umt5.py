"""UMT5 encoders from single files: detection from shapes (the real UMT5-XXL's on meta tensors), fp16 and scaled fp8
files loading back to the same model, and clear refusals of other files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from models.errors import StateDictError
from models.loading import load_state_dict
from models.metadata import read_safetensors_header
from models.text_encoders.umt5 import (
    EMBED_TOKENS,
    SHARED,
    UMT5_XXL,
    detect_umt5_config,
    is_umt5,
    umt5_from_state_dict,
    umt5_to_single_file,
)
from models.tiny.text import TINY_UMT5_CONFIG, tiny_umt5, write_tiny_umt5_files

IDS = torch.tensor([[5, 17, 42, 9, 1, 0, 0], [7, 1, 0, 0, 0, 0, 0]])


def release_shapes(
    vocab: int, width: int, heads: int, head_dim: int, ff: int, blocks: int, buckets: int
) -> dict[str, torch.Tensor]:
    """A meta-tensor state dict laid out as the Comfy-Org UMT5 release (written from the layout, not from a model)."""
    inner = heads * head_dim
    shapes: dict[str, tuple[int, ...]] = {SHARED: (vocab, width), "encoder.final_layer_norm.weight": (width,)}
    for block in range(blocks):
        prefix = f"encoder.block.{block}.layer."
        for name in "qkv":
            shapes[f"{prefix}0.SelfAttention.{name}.weight"] = (inner, width)
        shapes[f"{prefix}0.SelfAttention.o.weight"] = (width, inner)
        shapes[f"{prefix}0.SelfAttention.relative_attention_bias.weight"] = (buckets, heads)
        shapes[f"{prefix}0.layer_norm.weight"] = (width,)
        shapes[f"{prefix}1.DenseReluDense.wi_0.weight"] = (ff, width)
        shapes[f"{prefix}1.DenseReluDense.wi_1.weight"] = (ff, width)
        shapes[f"{prefix}1.DenseReluDense.wo.weight"] = (width, ff)
        shapes[f"{prefix}1.layer_norm.weight"] = (width,)
    return {key: torch.empty(shape, device="meta", dtype=torch.float16) for key, shape in shapes.items()}


def umt5_xxl_shapes() -> dict[str, torch.Tensor]:
    return release_shapes(256384, 4096, 64, 64, 10240, 24, 32)


def outputs(model: torch.nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model(IDS, IDS.ne(0).long()).last_hidden_state.float()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return write_tiny_umt5_files(tmp_path_factory.mktemp("models"))


def test_the_real_umt5_xxl_is_detected_from_its_shapes() -> None:
    state_dict = umt5_xxl_shapes()
    assert is_umt5(state_dict)
    config = detect_umt5_config(state_dict)
    assert {key: getattr(config, key) for key in UMT5_XXL} == UMT5_XXL
    assert config.is_gated_act and config.dense_act_fn == "gelu_new"
    assert config.relative_attention_max_distance == 128
    model = umt5_from_state_dict(state_dict, torch.bfloat16)  # meta in, meta out: no memory, all keys matched
    assert model.shared.weight.is_meta and model.encoder.embed_tokens.weight is model.shared.weight
    assert model.encoder.block[23].layer[1].DenseReluDense.wo.weight.shape == (4096, 10240)


def test_the_fp16_file_loads_back_to_the_same_model(files: list[Path]) -> None:
    state_dict = load_state_dict(files[0])
    assert is_umt5(state_dict) and EMBED_TOKENS not in state_dict
    model = umt5_from_state_dict(state_dict, torch.float32)
    assert model.encoder.embed_tokens.weight is model.shared.weight
    assert not any(parameter.requires_grad for parameter in model.parameters()) and not model.training
    assert torch.equal(outputs(model), outputs(tiny_umt5().half().float()))


def test_the_scaled_fp8_file_loads_within_fp8_error(files: list[Path]) -> None:
    state_dict = load_state_dict(files[1])
    assert state_dict["encoder.block.0.layer.0.SelfAttention.q.weight"].dtype == torch.float8_e4m3fn
    model = umt5_from_state_dict(state_dict, torch.float32, read_safetensors_header(files[1]).metadata)
    reference = tiny_umt5()
    for name, weight in reference.named_parameters():
        restored = model.get_parameter(name)
        assert restored.dtype == torch.float32
        # e4m3 keeps 3 mantissa bits: a relative error of at most 1/16, plus the smallest steps near zero
        assert (restored - weight).abs().max() <= weight.abs().max() / 16, name
    expected = outputs(reference)
    relative = (outputs(model) - expected).norm() / expected.norm()
    assert 0 < relative < 0.05


def test_float16_keeps_the_feed_forward_outputs_in_float32_as_transformers_does(files: list[Path]) -> None:
    model = umt5_from_state_dict(load_state_dict(files[0]), torch.float16)
    dtypes = {name.split(".")[-2]: parameter.dtype for name, parameter in model.named_parameters()}
    assert dtypes["wo"] == torch.float32 and dtypes["wi_0"] == torch.float16 and dtypes["shared"] == torch.float16
    assert model.dtype == torch.float16
    assert (outputs(model) - outputs(tiny_umt5().half().float())).abs().max() < 1e-2
    bf16 = umt5_from_state_dict(load_state_dict(files[0]), torch.bfloat16)
    assert {parameter.dtype for parameter in bf16.parameters()} == {torch.bfloat16}


def test_a_copy_of_the_embedding_and_a_tokenizer_blob_are_accepted(files: list[Path]) -> None:
    state_dict = dict(load_state_dict(files[0]))
    state_dict[EMBED_TOKENS] = state_dict[SHARED].clone()
    state_dict["spiece_model"] = torch.zeros(16, dtype=torch.uint8)
    model = umt5_from_state_dict(state_dict, torch.float32)
    assert model.encoder.embed_tokens.weight is model.shared.weight
    only_copy = {key: value for key, value in state_dict.items() if key != SHARED}
    assert torch.equal(outputs(umt5_from_state_dict(only_copy, torch.float32)), outputs(model))


def test_the_single_file_layout_is_the_release_layout() -> None:
    tensors = umt5_to_single_file(tiny_umt5())
    config = TINY_UMT5_CONFIG
    expected = release_shapes(
        config["vocab_size"], config["d_model"], config["num_heads"], config["d_kv"], config["d_ff"], 2, 32
    )
    assert {key: tuple(tensor.shape) for key, tensor in tensors.items()} == {
        key: tuple(tensor.shape) for key, tensor in expected.items()
    }


def test_other_files_are_refused_with_what_they_are() -> None:
    wan = {"patch_embedding.weight": torch.empty(1), "blocks.0.self_attn.q.weight": torch.empty(1)}
    assert not is_umt5(wan)
    with pytest.raises(StateDictError, match=r"^not a UMT5 text encoder: .*is it a diffusion model\?$"):
        umt5_from_state_dict(wan, torch.float32)
    t5 = umt5_xxl_shapes()
    for block in range(1, 24):
        del t5[f"encoder.block.{block}.layer.0.SelfAttention.relative_attention_bias.weight"]
    assert not is_umt5(t5)
    with pytest.raises(StateDictError, match=r"^not a UMT5 text encoder: a T5 encoder .*t5xxl"):
        detect_umt5_config(t5)


def test_truncated_or_misshapen_tensors_are_named() -> None:
    truncated = umt5_xxl_shapes()
    del truncated["encoder.final_layer_norm.weight"]
    del truncated["encoder.block.3.layer.1.DenseReluDense.wi_1.weight"]
    with pytest.raises(StateDictError) as raised:
        umt5_from_state_dict(truncated, torch.float16)
    assert "2 missing (encoder.block.3.layer.1.DenseReluDense.wi_1.weight; encoder.final_layer_norm.weight)" in str(
        raised.value
    )
    no_bias = umt5_xxl_shapes()
    del no_bias["encoder.block.7.layer.0.SelfAttention.relative_attention_bias.weight"]
    with pytest.raises(StateDictError, match=r"relative attention bias of block\(s\) \[7\]; truncated\?"):
        umt5_from_state_dict(no_bias, torch.float16)
    no_embedding = umt5_xxl_shapes()
    del no_embedding[SHARED]
    with pytest.raises(StateDictError, match=r"without its token embedding"):
        umt5_from_state_dict(no_embedding, torch.float16)
    misshapen = umt5_xxl_shapes()
    misshapen["encoder.block.2.layer.0.SelfAttention.k.weight"] = torch.empty(4096, 2048, device="meta")
    with pytest.raises(StateDictError, match=r"misshapen \(encoder\.block\.2\.layer\.0\.SelfAttention\.k\.weight is"):
        umt5_from_state_dict(misshapen, torch.float16)
    extra = umt5_xxl_shapes() | {"lm_head.weight": torch.empty(1, device="meta")}
    with pytest.raises(StateDictError, match=r"1 unexpected \(lm_head\.weight\)"):
        umt5_from_state_dict(extra, torch.float16)
