"""Wan prompt embeddings from a UMT5 tokenizer and encoder, exactly as diffusers' ``WanPipeline`` computes them.

Each prompt is cleaned (``ftfy.fix_text``, HTML entities unescaped twice, runs of whitespace made one space, ends
stripped), tokenized with ``</s>`` and padded to ``max_length`` (longer prompts are cut), encoded with the attention
mask, and each sequence's tokens past its true length are replaced by zeros: Wan's transformer reads padded positions
as zeros, not as the encoder's outputs there.
"""

from __future__ import annotations

import html

import ftfy
import regex
import torch
from diffusers.utils.torch_utils import get_module_execution_device

__all__ = ["WAN_MAX_LENGTH", "clean_prompt", "encode_wan_prompts"]

WAN_MAX_LENGTH = 512  # Wan's text length, and WanPipeline.__call__'s (its encode_prompt alone defaults to 226)


def clean_prompt(text: str) -> str:
    """Wan's prompt cleaning: mojibake fixed, HTML entities unescaped (twice), whitespace runs made one space."""
    text = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
    return regex.sub(r"\s+", " ", text).strip()


def encode_wan_prompts(
    tokenizer,
    encoder: torch.nn.Module,
    texts: list[str],
    max_length: int = WAN_MAX_LENGTH,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Prompt embeddings ``[len(texts), max_length, d_model]``, zero past each prompt's tokens.

    Args:
        tokenizer: a transformers tokenizer (UMT5's, from ``models.text_encoders.tokenizers.load_tokenizer``).
        encoder: a ``UMT5EncoderModel`` (any module whose output has ``last_hidden_state``).
        texts: the prompts; an empty prompt encodes to ``</s>`` alone.
        max_length: the sequence length, padded or cut to.
        device, dtype: of the result; default the device the encoder runs on (its offload hook's, if any) and its
            dtype.
    """
    if isinstance(texts, str):
        raise TypeError("texts must be a list of prompts, not one string")
    if max_length < 1:
        raise ValueError(f"max_length must be positive, got {max_length}")
    execution_device = get_module_execution_device(encoder)
    tokens = tokenizer(
        [clean_prompt(text) for text in texts],
        padding="max_length",
        max_length=max_length,
        truncation=True,
        add_special_tokens=True,
        return_attention_mask=True,
        return_tensors="pt",
    )
    mask = tokens.attention_mask
    lengths = mask.gt(0).sum(dim=1)
    with torch.no_grad():
        hidden = encoder(tokens.input_ids.to(execution_device), mask.to(execution_device)).last_hidden_state
    encoder_dtype = getattr(encoder, "dtype", None) or next(encoder.parameters()).dtype
    hidden = hidden.to(device=device or execution_device, dtype=dtype or encoder_dtype)
    keep = torch.arange(max_length, device=hidden.device)[None, :] < lengths.to(hidden.device)[:, None]
    return torch.where(keep[:, :, None], hidden, hidden.new_zeros(()))
