"""Prompt encodings of LTX-Video, Mochi and HunyuanVideo, exactly as their diffusers pipelines compute them.

- ``encode_t5_prompt``: T5-XXL, padded to ``max_length`` (``LTXPipeline`` 128, ``MochiPipeline`` 256, longer prompts
  cut), with the tokenizer's boolean attention mask. ``LTXPipeline`` runs the encoder WITHOUT the mask (padding
  tokens take part in attention, so the embeddings differ from a masked run); ``MochiPipeline`` passes it. Neither
  zeroes the embeddings past the prompt; the mask goes to the transformer instead. ``MochiPipeline`` with
  ``force_zeros_for_empty_prompt`` (off by default) encodes an empty prompt as all-zero ids with an all-zero mask.
- ``encode_llama_prompt``: HunyuanVideo's Llama, the prompt put into ``HUNYUAN_VIDEO_TEMPLATE``, padded to the
  template's length plus 256, run with the attention mask; the hidden states of the third-to-last entry
  (``hidden_states[-(2 + 1)]``: two layers skipped) with the template's tokens cropped off the front.
- ``encode_clip_pooled``: CLIP-L's ``pooler_output`` of the prompt padded to 77 tokens (no mask), HunyuanVideo's
  pooled projection input.

The module runs on whatever device it is on; token ids go there.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from diffusers.utils.torch_utils import get_module_execution_device

__all__ = [
    "CLIP_MAX_LENGTH",
    "HUNYUAN_VIDEO_LAYERS_SKIPPED",
    "HUNYUAN_VIDEO_MAX_LENGTH",
    "HUNYUAN_VIDEO_TEMPLATE",
    "LTXV_MAX_LENGTH",
    "MOCHI_MAX_LENGTH",
    "encode_clip_pooled",
    "encode_llama_prompt",
    "encode_t5_prompt",
    "template_crop_start",
]

logger = logging.getLogger(__name__)

LTXV_MAX_LENGTH = 128  # LTXPipeline's max_sequence_length
MOCHI_MAX_LENGTH = 256  # MochiPipeline's
HUNYUAN_VIDEO_MAX_LENGTH = 256  # HunyuanVideoPipeline's, counted after the template
HUNYUAN_VIDEO_LAYERS_SKIPPED = 2  # HunyuanVideoPipeline's num_hidden_layers_to_skip
CLIP_MAX_LENGTH = 77
PROMPT_SLOT = "{}"
# HunyuanVideoPipeline's default prompt template (the original HunyuanVideo's "dit-llm-encode-video"); with the
# llava-llama-3 tokenizer its part before the prompt is 95 tokens (<|begin_of_text|> included), the pipeline's
# crop_start.
HUNYUAN_VIDEO_TEMPLATE = (
    "<|start_header_id|>system<|end_header_id|>\n\nDescribe the video by detailing the following aspects: "
    "1. The main content and theme of the video."
    "2. The color, shape, size, texture, quantity, text, and spatial relationships of the objects."
    "3. Actions, events, behaviors temporal relationships, physical movement changes of the objects."
    "4. background environment, light, style and atmosphere."
    "5. camera angles, movements, and transitions used in the video:<|eot_id|>"
    "<|start_header_id|>user<|end_header_id|>\n\n{}<|eot_id|>"
)


def encode_t5_prompt(
    tokenizer: Any,
    encoder: torch.nn.Module,
    text: str,
    max_length: int,
    *,
    mask_encoder: bool,
    zeros_for_empty: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """T5 embeddings ``[1, max_length, d_model]`` and the boolean attention mask ``[1, max_length]`` of one prompt.

    Args:
        tokenizer: T5's tokenizer (``</s>`` appended, ``<pad>`` after it).
        encoder: a ``T5EncoderModel``.
        text: the prompt.
        max_length: the length padded or cut to.
        mask_encoder: whether the encoder gets the mask (Mochi) or sees the padding too (LTX-Video).
        zeros_for_empty: encode an empty prompt as all-zero ids and mask (Mochi's ``force_zeros_for_empty_prompt``).
    """
    device = get_module_execution_device(encoder)
    tokens = tokenizer(
        [text],
        padding="max_length",
        max_length=max_length,
        truncation=True,
        add_special_tokens=True,
        return_tensors="pt",
    )
    ids, mask = tokens.input_ids, tokens.attention_mask.bool()
    if zeros_for_empty and text == "":
        ids, mask = torch.zeros_like(ids), torch.zeros_like(mask)
    _warn_if_cut(tokenizer, text, max_length)
    with torch.no_grad():
        if mask_encoder:
            embeds = encoder(ids.to(device), attention_mask=mask.to(device))[0]
        else:
            embeds = encoder(ids.to(device))[0]
    return embeds, mask.to(device)


def template_crop_start(tokenizer: Any, template: str = HUNYUAN_VIDEO_TEMPLATE) -> int:
    """The number of tokens of ``template`` before its prompt slot ``{}`` (with the tokenizer's begin-of-text token):
    the positions cropped off the Llama encoding. 95 for HunyuanVideo's template and tokenizer."""
    if template.count(PROMPT_SLOT) != 1:
        raise ValueError(f"a prompt template must hold one {PROMPT_SLOT!r} slot for the prompt")
    return len(tokenizer(template.split(PROMPT_SLOT)[0]).input_ids)


def encode_llama_prompt(
    tokenizer: Any,
    encoder: torch.nn.Module,
    text: str,
    template: str = HUNYUAN_VIDEO_TEMPLATE,
    max_length: int = HUNYUAN_VIDEO_MAX_LENGTH,
    layers_skipped: int = HUNYUAN_VIDEO_LAYERS_SKIPPED,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Llama embeddings ``[1, max_length, hidden]`` and attention mask ``[1, max_length]`` (int64) of one prompt,
    as ``HunyuanVideoPipeline._get_llama_prompt_embeds``: the prompt put into ``template``, padded on the right (or
    cut) to ``crop_start + max_length`` tokens, encoded with the mask, ``hidden_states[-(layers_skipped + 1)]`` kept
    and the first ``crop_start`` positions (the template's) dropped, from embeddings and mask alike.

    Args:
        tokenizer: the llava-llama-3 tokenizer (it must have a pad token: HunyuanVideo's has ``<pad>``).
        encoder: a ``LlamaModel`` (or any module returning ``hidden_states`` when asked).
    """
    device = get_module_execution_device(encoder)
    crop_start = template_crop_start(tokenizer, template)
    tokens = tokenizer(
        [template.format(text)],
        max_length=crop_start + max_length,
        padding="max_length",
        padding_side="right",
        truncation=True,
        return_attention_mask=True,
        return_tensors="pt",
    )
    ids, mask = tokens.input_ids.to(device), tokens.attention_mask.to(device)
    with torch.no_grad():
        hidden = encoder(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
    return hidden[-(layers_skipped + 1)][:, crop_start:], mask[:, crop_start:]


def encode_clip_pooled(
    tokenizer: Any, encoder: torch.nn.Module, text: str, max_length: int = CLIP_MAX_LENGTH
) -> torch.Tensor:
    """CLIP's pooled output ``[1, hidden]`` of one prompt padded (or cut) to ``max_length`` tokens, run without a
    mask, as ``HunyuanVideoPipeline._get_clip_prompt_embeds``."""
    device = get_module_execution_device(encoder)
    ids = tokenizer([text], padding="max_length", max_length=max_length, truncation=True, return_tensors="pt").input_ids
    _warn_if_cut(tokenizer, text, max_length)
    with torch.no_grad():
        return encoder(ids.to(device), output_hidden_states=False).pooler_output


def _warn_if_cut(tokenizer: Any, text: str, max_length: int) -> None:
    """Log the part of a prompt that does not fit in ``max_length`` tokens, as the pipelines do."""
    ids = tokenizer(text).input_ids
    if len(ids) > max_length:
        removed = tokenizer.decode(ids[max_length - 1 : -1])
        logger.warning("prompt cut to %d tokens; this part of it is left out: %s", max_length, removed)
