"""UMT5 text encoders (Wan's UMT5-XXL) from single files in the HF T5 key layout, as Comfy-Org releases them.

``umt5_xxl_fp16.safetensors`` and ``umt5_xxl_fp8_e4m3fn_scaled.safetensors`` hold the encoder of google/umt5-xxl:
``shared.weight`` (the token embedding; ``encoder.embed_tokens.weight`` is the same tensor and may be absent), per
block N ``encoder.block.N.layer.0.SelfAttention.{q,k,v,o}.weight``, the block's own
``encoder.block.N.layer.0.SelfAttention.relative_attention_bias.weight`` ([buckets, heads]: UMT5 has one per block,
T5 only in block 0), ``encoder.block.N.layer.0.layer_norm.weight``,
``encoder.block.N.layer.1.DenseReluDense.{wi_0,wi_1,wo}.weight`` (gated GELU) and
``encoder.block.N.layer.1.layer_norm.weight``, then ``encoder.final_layer_norm.weight``. The fp8 file stores the
linear weights as float8 with a ``scale_weight`` each and a ``scaled_fp8`` marker (see ``models.scaled_fp8``).

Single files carry no config, so it is read from the shapes; for UMT5-XXL that gives ``UMT5_XXL``.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from transformers import UMT5Config, UMT5EncoderModel

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
    "UMT5_XXL",
    "detect_umt5_config",
    "is_umt5",
    "umt5_from_state_dict",
    "umt5_to_single_file",
]

# google/umt5-xxl's encoder, as detect_umt5_config reads it from the released files.
UMT5_XXL = {
    "vocab_size": 256384,
    "d_model": 4096,
    "num_heads": 64,
    "d_kv": 64,
    "d_ff": 10240,
    "num_layers": 24,
    "relative_attention_num_buckets": 32,
}


def is_umt5(state_dict: Mapping[str, torch.Tensor]) -> bool:
    """Whether the tensors are a UMT5 encoder in HF T5 layout: a token embedding, gated feed-forwards and a relative
    attention bias in every block (a T5 encoder has one only in block 0)."""
    blocks = block_numbers(state_dict)
    return (
        bool(blocks)
        and has_embedding(state_dict)
        and feed_forward_key(0, "wi_0") in state_dict
        and all(attention_key(block, "relative_attention_bias") in state_dict for block in blocks)
    )


def detect_umt5_config(state_dict: Mapping[str, torch.Tensor]) -> UMT5Config:
    """The ``UMT5Config`` of an encoder state dict, read from its shapes (``t5_layout.config_values``); raises
    ``StateDictError`` when the tensors are no UMT5 encoder."""
    _check_umt5(state_dict)
    return UMT5Config(**config_values(state_dict, "UMT5"))


def umt5_from_state_dict(
    state_dict: Mapping[str, torch.Tensor], dtype: torch.dtype, metadata: Mapping[str, str] | None = None
) -> UMT5EncoderModel:
    """A ``UMT5EncoderModel`` in eval mode holding the file's tensors in ``dtype`` (scaled fp8 weights restored; see
    ``t5_layout.encoder_from_state_dict``). Raises ``StateDictError`` for tensors that are no UMT5 encoder, or keys
    missing, unexpected or misshapen."""
    return encoder_from_state_dict(
        lambda plain: UMT5EncoderModel(detect_umt5_config(plain)), state_dict, dtype, metadata, "UMT5"
    )


def umt5_to_single_file(model: UMT5EncoderModel) -> dict[str, torch.Tensor]:
    """The encoder's tensors in the release layout (HF T5 keys, ``shared.weight`` without its tied copy)."""
    return to_single_file(model)


def _check_umt5(state_dict: Mapping[str, torch.Tensor]) -> None:
    """Raise ``StateDictError`` saying what the tensors are instead, when they are no UMT5 encoder."""
    if is_umt5(state_dict):
        return
    blocks = block_numbers(state_dict)
    if not blocks:
        sample = ", ".join(sorted(state_dict)[:3]) or "none"
        raise StateDictError(
            f"not a UMT5 text encoder: no encoder.block.N.layer.0.SelfAttention weights (keys such as {sample}); "
            "is it a diffusion model?"
        )
    with_bias = [block for block in blocks if attention_key(block, "relative_attention_bias") in state_dict]
    if len(blocks) > 1 and with_bias == [0]:
        raise StateDictError(
            "not a UMT5 text encoder: a T5 encoder (relative attention bias only in block 0, such as t5xxl for "
            "Flux, SD3 or LTX-Video); Wan needs umt5_xxl"
        )
    if len(with_bias) < len(blocks):
        missing = sorted(set(blocks) - set(with_bias))
        raise StateDictError(f"UMT5 encoder without the relative attention bias of block(s) {missing}; truncated?")
    if not has_embedding(state_dict):
        raise StateDictError(f"UMT5 encoder without its token embedding ({SHARED}); is the file truncated?")
    raise StateDictError(f"UMT5 encoder without {feed_forward_key(0, 'wi_0')}: not a gated UMT5 feed-forward")
