"""The HF T5 encoder key layout that T5 v1.1 (``t5xxl``) and UMT5 (``umt5_xxl``) single files share: reading the
config from shapes and building a transformers encoder from the file's tensors. ``models.text_encoders.t5`` and
``umt5`` tell the two apart (where the relative attention biases are) and name their model classes."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, TypeVar

import torch

from models.errors import StateDictError
from models.scaled_fp8 import dequantize_scaled
from models.state_dict_checks import check_tensor_shapes

__all__ = [
    "EMBED_TOKENS",
    "SHARED",
    "TOKENIZER_BLOB",
    "attention_key",
    "block_numbers",
    "config_values",
    "encoder_from_state_dict",
    "feed_forward_key",
    "has_embedding",
    "to_single_file",
]

M = TypeVar("M", bound=torch.nn.Module)

# Not recoverable from shapes; every T5 v1.1 and UMT5 (small to XXL) uses these.
RELATIVE_ATTENTION_MAX_DISTANCE = 128
LAYER_NORM_EPSILON = 1e-6

SHARED = "shared.weight"
EMBED_TOKENS = "encoder.embed_tokens.weight"
# Tokenizer bytes that ComfyUI (and GGUF conversions) may keep in a text-encoder file; not a weight.
TOKENIZER_BLOB = "spiece_model"
_BLOCK_KEY = re.compile(r"^encoder\.block\.(\d+)\.")


def attention_key(block: int, name: str) -> str:
    return f"encoder.block.{block}.layer.0.SelfAttention.{name}.weight"


def feed_forward_key(block: int, name: str) -> str:
    return f"encoder.block.{block}.layer.1.DenseReluDense.{name}.weight"


def has_embedding(state_dict: Mapping[str, torch.Tensor]) -> bool:
    return SHARED in state_dict or EMBED_TOKENS in state_dict


def block_numbers(state_dict: Mapping[str, torch.Tensor]) -> list[int]:
    """The sorted block numbers of ``encoder.block.N.`` keys."""
    return sorted({int(match.group(1)) for key in state_dict if (match := _BLOCK_KEY.match(key))})


def config_values(state_dict: Mapping[str, torch.Tensor], name: str) -> dict[str, Any]:
    """The config of an encoder state dict (meta tensors will do), for ``T5Config`` / ``UMT5Config``.

    ``vocab_size`` and ``d_model`` come from the token embedding, ``num_layers`` from the block count, ``num_heads``
    and ``relative_attention_num_buckets`` from block 0's relative attention bias ``[buckets, heads]``, ``d_kv`` from
    the query projection's rows / heads, ``d_ff`` from ``wi_0``; the feed-forward is gated GELU. ``name`` (``"T5"``,
    ``"UMT5"``) starts the ``StateDictError`` messages.
    """
    blocks = block_numbers(state_dict)
    if blocks != list(range(len(blocks))):
        missing = sorted(set(range(blocks[-1] + 1)) - set(blocks))
        raise StateDictError(f"{name} encoder blocks are not numbered 0..{blocks[-1]}: block(s) {missing} missing")
    vocab_size, d_model = _shape(state_dict, SHARED if SHARED in state_dict else EMBED_TOKENS, 2, name)
    buckets, heads = _shape(state_dict, attention_key(0, "relative_attention_bias"), 2, name)
    inner, q_in = _shape(state_dict, attention_key(0, "q"), 2, name)
    d_ff, ff_in = _shape(state_dict, feed_forward_key(0, "wi_0"), 2, name)
    if q_in != d_model or ff_in != d_model or heads == 0 or inner % heads:
        raise StateDictError(
            f"{name} encoder shapes do not agree: embedding width {d_model}, query {inner}x{q_in}, "
            f"wi_0 {d_ff}x{ff_in}, {heads} heads (from the relative attention bias)"
        )
    return {
        "vocab_size": vocab_size,
        "d_model": d_model,
        "d_kv": inner // heads,
        "d_ff": d_ff,
        "num_layers": len(blocks),
        "num_heads": heads,
        "relative_attention_num_buckets": buckets,
        "relative_attention_max_distance": RELATIVE_ATTENTION_MAX_DISTANCE,
        "layer_norm_epsilon": LAYER_NORM_EPSILON,
        "feed_forward_proj": "gated-gelu",
    }


def encoder_from_state_dict(
    build: Any,
    state_dict: Mapping[str, torch.Tensor],
    dtype: torch.dtype,
    metadata: Mapping[str, str] | None,
    name: str,
) -> Any:
    """The encoder ``build(plain_state_dict)`` makes (on the meta device), in eval mode, holding the file's tensors in
    ``dtype`` (scaled fp8 weights restored).

    Tensors already in ``dtype`` are not copied (``assign``). As transformers does for float16, the modules the
    model keeps in float32 (T5's ``wo``) stay float32. A file's ``encoder.embed_tokens.weight`` is dropped for
    ``shared.weight`` (the encoder ties the two). Raises ``StateDictError`` (messages start with ``name``) for
    keys missing, unexpected or misshapen.
    """
    plain = dequantize_scaled(state_dict, dtype, metadata)
    plain.pop(TOKENIZER_BLOB, None)
    with torch.device("meta"):
        model = build(plain)
    expected = {key: tuple(tensor.shape) for key, tensor in model.state_dict().items()}
    shared = plain.pop(SHARED, None)
    embed = plain.pop(EMBED_TOKENS, None)
    for key, tensor in ((SHARED, shared), (EMBED_TOKENS, embed)):
        if tensor is not None and tuple(tensor.shape) != expected[key]:
            raise StateDictError(f"{name} {key} has shape {tuple(tensor.shape)}, expected {expected[key]}")
    plain[SHARED] = plain[EMBED_TOKENS] = shared if shared is not None else embed
    check_tensor_shapes(plain, expected, f"{name} encoder")
    keep_float32 = tuple(model._keep_in_fp32_modules or ()) if dtype == torch.float16 else ()
    tensors = {
        key: tensor.to(_dtype_of(key, dtype, keep_float32)) for key, tensor in plain.items() if key != EMBED_TOKENS
    }
    tensors[EMBED_TOKENS] = tensors[SHARED]  # cast once: the embedding is the largest tensor
    model.load_state_dict(tensors, strict=True, assign=True)
    model.encoder.embed_tokens.weight = model.shared.weight
    return model.requires_grad_(False).eval()


def to_single_file(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The encoder's tensors in the release layout (HF T5 keys, ``shared.weight`` without its tied copy)."""
    return {key: tensor.detach().contiguous() for key, tensor in model.state_dict().items() if key != EMBED_TOKENS}


def _shape(state_dict: Mapping[str, torch.Tensor], key: str, dims: int, name: str) -> tuple[int, ...]:
    shape = tuple(state_dict[key].shape)
    if len(shape) != dims:
        raise StateDictError(f"{name} {key} has shape {shape}, expected {dims} dimensions")
    return shape


def _dtype_of(key: str, dtype: torch.dtype, keep_float32: tuple[str, ...]) -> torch.dtype:
    return torch.float32 if any(f".{name}." in f".{key}" for name in keep_float32) else dtype
