"""T5 v1.1 text encoders (T5-XXL of LTX-Video and Mochi) from single files in the HF T5 key layout, as Comfy-Org
releases them.

``t5xxl_fp16.safetensors`` and ``t5xxl_fp8_e4m3fn_scaled.safetensors`` hold the encoder of google/t5-v1_1-xxl:
``shared.weight`` (the token embedding; ``encoder.embed_tokens.weight`` is the same tensor and may be absent or
present), per block N ``encoder.block.N.layer.0.SelfAttention.{q,k,v,o}.weight``,
``encoder.block.N.layer.0.layer_norm.weight``, ``encoder.block.N.layer.1.DenseReluDense.{wi_0,wi_1,wo}.weight``
(gated GELU) and ``encoder.block.N.layer.1.layer_norm.weight``, then ``encoder.final_layer_norm.weight``. Unlike
UMT5 (``models.text_encoders.umt5``), only block 0 holds a relative attention bias
(``encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight``, ``[buckets, heads]``): the other blocks
reuse it. That is what tells the two apart, so ``is_t5`` and ``is_umt5`` never both hold. The fp8 file stores the
linear weights as float8 with a ``scale_weight`` each and a ``scaled_fp8`` marker (see ``models.scaled_fp8``).

Single files carry no config, so it is read from the shapes; for T5-XXL that gives ``T5_V1_1_XXL``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch
from transformers import T5Config, T5EncoderModel

from models.errors import StateDictError
from models.scaled_fp8 import dequantize_scaled
from models.state_dict_checks import check_tensor_shapes

__all__ = ["T5_V1_1_XXL", "detect_t5_config", "is_t5", "t5_from_state_dict", "t5_to_single_file"]

# google/t5-v1_1-xxl's encoder, as detect_t5_config reads it from the released files.
T5_V1_1_XXL = {
    "vocab_size": 32128,
    "d_model": 4096,
    "num_heads": 64,
    "d_kv": 64,
    "d_ff": 10240,
    "num_layers": 24,
    "relative_attention_num_buckets": 32,
}
# Not recoverable from shapes; every T5 v1.1 (small to XXL) uses these.
RELATIVE_ATTENTION_MAX_DISTANCE = 128
LAYER_NORM_EPSILON = 1e-6

SHARED = "shared.weight"
EMBED_TOKENS = "encoder.embed_tokens.weight"
# Tokenizer bytes that ComfyUI (and GGUF conversions) may keep in a text-encoder file; not a weight.
TOKENIZER_BLOB = "spiece_model"
_BLOCK_KEY = re.compile(r"^encoder\.block\.(\d+)\.")


def _attention(block: int, name: str) -> str:
    return f"encoder.block.{block}.layer.0.SelfAttention.{name}.weight"


def _feed_forward(block: int, name: str) -> str:
    return f"encoder.block.{block}.layer.1.DenseReluDense.{name}.weight"


def is_t5(state_dict: Mapping[str, torch.Tensor]) -> bool:
    """Whether the tensors are a T5 v1.1 encoder in HF layout: a token embedding, gated feed-forwards, at least two
    blocks and a relative attention bias in block 0 only (a UMT5 encoder has one in every block)."""
    blocks = _blocks(state_dict)
    return (
        len(blocks) > 1
        and (SHARED in state_dict or EMBED_TOKENS in state_dict)
        and _feed_forward(0, "wi_0") in state_dict
        and [block for block in blocks if _attention(block, "relative_attention_bias") in state_dict] == [0]
    )


def detect_t5_config(state_dict: Mapping[str, torch.Tensor]) -> T5Config:
    """The ``T5Config`` of an encoder state dict, read from its shapes (meta tensors will do).

    ``vocab_size`` and ``d_model`` come from the token embedding, ``num_layers`` from the block count, ``num_heads``
    and ``relative_attention_num_buckets`` from block 0's relative attention bias ``[buckets, heads]``, ``d_kv``
    from the query projection's rows / heads, ``d_ff`` from ``wi_0``; the feed-forward is gated GELU.
    Raises ``StateDictError`` when the tensors are no T5 v1.1 encoder.
    """
    _check_t5(state_dict)
    blocks = _blocks(state_dict)
    if blocks != list(range(len(blocks))):
        missing = sorted(set(range(blocks[-1] + 1)) - set(blocks))
        raise StateDictError(f"T5 encoder blocks are not numbered 0..{blocks[-1]}: block(s) {missing} missing")
    vocab_size, d_model = _shape(state_dict, SHARED if SHARED in state_dict else EMBED_TOKENS, 2)
    buckets, heads = _shape(state_dict, _attention(0, "relative_attention_bias"), 2)
    inner, q_in = _shape(state_dict, _attention(0, "q"), 2)
    d_ff, ff_in = _shape(state_dict, _feed_forward(0, "wi_0"), 2)
    if q_in != d_model or ff_in != d_model or heads == 0 or inner % heads:
        raise StateDictError(
            f"T5 encoder shapes do not agree: embedding width {d_model}, query {inner}x{q_in}, "
            f"wi_0 {d_ff}x{ff_in}, {heads} heads (from the relative attention bias)"
        )
    return T5Config(
        vocab_size=vocab_size,
        d_model=d_model,
        d_kv=inner // heads,
        d_ff=d_ff,
        num_layers=len(blocks),
        num_heads=heads,
        relative_attention_num_buckets=buckets,
        relative_attention_max_distance=RELATIVE_ATTENTION_MAX_DISTANCE,
        layer_norm_epsilon=LAYER_NORM_EPSILON,
        feed_forward_proj="gated-gelu",
    )


def t5_from_state_dict(
    state_dict: Mapping[str, torch.Tensor], dtype: torch.dtype, metadata: Mapping[str, str] | None = None
) -> T5EncoderModel:
    """A ``T5EncoderModel`` in eval mode holding the file's tensors in ``dtype`` (scaled fp8 weights restored).

    The model is built on the meta device and takes the tensors as they are (``assign``): tensors already in ``dtype``
    are not copied. As transformers does for float16, the feed-forward output projections (``wo``) stay float32.
    A file's ``encoder.embed_tokens.weight`` is dropped for ``shared.weight`` (the encoder ties the two).
    Raises ``StateDictError`` for tensors that are no T5 v1.1 encoder, or keys missing, unexpected or misshapen.
    """
    plain = dequantize_scaled(state_dict, dtype, metadata)
    plain.pop(TOKENIZER_BLOB, None)
    config = detect_t5_config(plain)
    with torch.device("meta"):
        model = T5EncoderModel(config)
    expected = {key: tuple(tensor.shape) for key, tensor in model.state_dict().items()}
    shared = plain.pop(SHARED, None)
    embed = plain.pop(EMBED_TOKENS, None)
    for key, tensor in ((SHARED, shared), (EMBED_TOKENS, embed)):
        if tensor is not None and tuple(tensor.shape) != expected[key]:
            raise StateDictError(f"T5 {key} has shape {tuple(tensor.shape)}, expected {expected[key]}")
    plain[SHARED] = plain[EMBED_TOKENS] = shared if shared is not None else embed
    check_tensor_shapes(plain, expected, "T5 encoder")
    keep_float32 = tuple(model._keep_in_fp32_modules or ()) if dtype == torch.float16 else ()
    tensors = {
        key: tensor.to(_dtype_of(key, dtype, keep_float32)) for key, tensor in plain.items() if key != EMBED_TOKENS
    }
    tensors[EMBED_TOKENS] = tensors[SHARED]  # cast once: the embedding is the largest tensor
    model.load_state_dict(tensors, strict=True, assign=True)
    model.encoder.embed_tokens.weight = model.shared.weight
    return model.requires_grad_(False).eval()


def t5_to_single_file(model: T5EncoderModel) -> dict[str, torch.Tensor]:
    """The encoder's tensors in the release layout (HF T5 keys, ``shared.weight`` without its tied copy)."""
    return {key: tensor.detach().contiguous() for key, tensor in model.state_dict().items() if key != EMBED_TOKENS}


def _blocks(state_dict: Mapping[str, torch.Tensor]) -> list[int]:
    """The sorted block numbers of ``encoder.block.N.`` keys."""
    return sorted({int(match.group(1)) for key in state_dict if (match := _BLOCK_KEY.match(key))})


def _check_t5(state_dict: Mapping[str, torch.Tensor]) -> None:
    """Raise ``StateDictError`` saying what the tensors are instead, when they are no T5 v1.1 encoder."""
    if is_t5(state_dict):
        return
    blocks = _blocks(state_dict)
    if not blocks:
        sample = ", ".join(sorted(state_dict)[:3]) or "none"
        raise StateDictError(
            f"not a T5 text encoder: no encoder.block.N.layer.0.SelfAttention weights (keys such as {sample}); "
            "is it a diffusion model?"
        )
    with_bias = [block for block in blocks if _attention(block, "relative_attention_bias") in state_dict]
    if len(blocks) > 1 and with_bias == blocks:
        raise StateDictError(
            "not a T5 text encoder: a UMT5 encoder (a relative attention bias in every block, such as umt5_xxl "
            "for Wan); LTX-Video and Mochi need t5xxl"
        )
    if len(blocks) < 2:
        raise StateDictError("T5 encoder with a single block: cannot tell T5 from UMT5; is the file truncated?")
    if 0 not in with_bias:
        raise StateDictError("T5 encoder without block 0's relative attention bias; is the file truncated?")
    if with_bias != [0]:
        raise StateDictError(f"T5 encoder with relative attention biases in blocks {with_bias}: expected block 0 only")
    if SHARED not in state_dict and EMBED_TOKENS not in state_dict:
        raise StateDictError(f"T5 encoder without its token embedding ({SHARED}); is the file truncated?")
    raise StateDictError(
        f"T5 encoder without {_feed_forward(0, 'wi_0')}: not a gated T5 v1.1 feed-forward "
        "(the original T5 is not supported)"
    )


def _shape(state_dict: Mapping[str, torch.Tensor], key: str, dims: int) -> tuple[int, ...]:
    shape = tuple(state_dict[key].shape)
    if len(shape) != dims:
        raise StateDictError(f"T5 {key} has shape {shape}, expected {dims} dimensions")
    return shape


def _dtype_of(key: str, dtype: torch.dtype, keep_float32: tuple[str, ...]) -> torch.dtype:
    return torch.float32 if any(f".{name}." in f".{key}" for name in keep_float32) else dtype
