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

from collections.abc import Mapping

import torch
from transformers import T5Config, T5EncoderModel

from models.errors import StateDictError
from models.text_encoders.t5_layout import (
    EMBED_TOKENS,
    SHARED,
    attention_key,
    block_numbers,
    config_values,
    encoder_from_state_dict,
    feed_forward_key,
    has_embedding,
    to_single_file,
)

__all__ = [
    "EMBED_TOKENS",
    "SHARED",
    "T5_V1_1_XXL",
    "detect_t5_config",
    "is_t5",
    "t5_from_state_dict",
    "t5_to_single_file",
]

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


def is_t5(state_dict: Mapping[str, torch.Tensor]) -> bool:
    """Whether the tensors are a T5 v1.1 encoder in HF layout: a token embedding, gated feed-forwards, at least two
    blocks and a relative attention bias in block 0 only (a UMT5 encoder has one in every block)."""
    blocks = block_numbers(state_dict)
    return (
        len(blocks) > 1
        and has_embedding(state_dict)
        and feed_forward_key(0, "wi_0") in state_dict
        and [block for block in blocks if attention_key(block, "relative_attention_bias") in state_dict] == [0]
    )


def detect_t5_config(state_dict: Mapping[str, torch.Tensor]) -> T5Config:
    """The ``T5Config`` of an encoder state dict, read from its shapes (``t5_layout.config_values``); raises
    ``StateDictError`` when the tensors are no T5 encoder."""
    _check_t5(state_dict)
    return T5Config(**config_values(state_dict, "T5"))


def t5_from_state_dict(
    state_dict: Mapping[str, torch.Tensor], dtype: torch.dtype, metadata: Mapping[str, str] | None = None
) -> T5EncoderModel:
    """A ``T5EncoderModel`` in eval mode holding the file's tensors in ``dtype`` (scaled fp8 weights restored; see
    ``t5_layout.encoder_from_state_dict``). Raises ``StateDictError`` for tensors that are no T5 encoder, or keys
    missing, unexpected or misshapen."""
    return encoder_from_state_dict(
        lambda plain: T5EncoderModel(detect_t5_config(plain)), state_dict, dtype, metadata, "T5"
    )


def t5_to_single_file(model: T5EncoderModel) -> dict[str, torch.Tensor]:
    """The encoder's tensors in the release layout (HF T5 keys, ``shared.weight`` without its tied copy)."""
    return to_single_file(model)


def _check_t5(state_dict: Mapping[str, torch.Tensor]) -> None:
    """Raise ``StateDictError`` saying what the tensors are instead, when they are no T5 v1.1 encoder."""
    if is_t5(state_dict):
        return
    blocks = block_numbers(state_dict)
    if not blocks:
        sample = ", ".join(sorted(state_dict)[:3]) or "none"
        raise StateDictError(
            f"not a T5 text encoder: no encoder.block.N.layer.0.SelfAttention weights (keys such as {sample}); "
            "is it a diffusion model?"
        )
    with_bias = [block for block in blocks if attention_key(block, "relative_attention_bias") in state_dict]
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
    if not has_embedding(state_dict):
        raise StateDictError(f"T5 encoder without its token embedding ({SHARED}); is the file truncated?")
    raise StateDictError(
        f"T5 encoder without {feed_forward_key(0, 'wi_0')}: not a gated T5 v1.1 feed-forward "
        "(the original T5 is not supported)"
    )
