"""The ``CLIPLoader`` / ``DualCLIPLoader`` types of LTX-Video (``ltxv``), Mochi (``mochi``) and HunyuanVideo
(``hunyuan_video``) as ``TextEncoderKind`` objects: their networks (T5-XXL; Llama 3 from llava-llama-3 and CLIP-L)
and how a prompt becomes conditioning, as ``models.text_encoders.prompts`` computes it.

Conditioning extras: ``attention_mask`` ``[1, tokens]`` (1 = prompt token; bool for T5 as ``LTXPipeline`` and
``MochiPipeline`` make it, int64 for Llama as ``HunyuanVideoPipeline`` does) and, for HunyuanVideo,
``pooled_output`` ``[1, 768]`` (CLIP-L's pooled output).

Tokenizer folders are named after the repos that ``./start.sh download <repo> --folder tokenizers`` fetches them
from (the download keeps a repo under its name).
"""

from __future__ import annotations

from functools import partial
from types import MappingProxyType
from typing import Any

import torch

from models.families.kinds import PartRunner, PromptEncoding, TextEncoderKind, TextEncoderPart
from models.families.sd15.text_encoder import encode_sd_prompt, is_sd_clip_text, sd_clip_text_from_state_dict
from models.text_encoders.clip_text import CLIP_L_TEXT, clip_text_from_state_dict, is_clip_l_text
from models.text_encoders.llama import LLAVA_LLAMA3_8B, is_llama, llama_from_state_dict
from models.text_encoders.prompts import (
    CLIP_MAX_LENGTH,
    HUNYUAN_VIDEO_MAX_LENGTH,
    LTXV_MAX_LENGTH,
    MOCHI_MAX_LENGTH,
    encode_clip_pooled,
    encode_llama_prompt,
    encode_t5_prompt,
)
from models.text_encoders.t5 import T5_V1_1_XXL, is_t5, t5_from_state_dict

__all__ = [
    "CLIP_L",
    "CLIP_L_TOKENIZER",
    "COGVIDEOX_MAX_LENGTH",
    "COGVIDEOX_TEXT",
    "HUNYUAN_VIDEO_TEXT",
    "LLAVA_LLAMA3",
    "LLAVA_LLAMA3_TOKENIZER",
    "LTXV_TEXT",
    "MOCHI_TEXT",
    "SD_CLIP_L",
    "STABLE_DIFFUSION_TEXT",
    "T5_XXL",
    "T5_XXL_TOKENIZER",
]

T5_XXL_TOKENIZER = "t5-v1_1-xxl"  # google/t5-v1_1-xxl: spiece.model and its configs
LLAVA_LLAMA3_TOKENIZER = "llava-llama-3-8b-v1_1-transformers"  # xtuner's: tokenizer.json and its config
CLIP_L_TOKENIZER = "clip-vit-large-patch14"  # openai's: vocab.json, merges.txt, tokenizer.json and configs
FLOAT32_BYTES = 4
HUNYUAN_TEMPLATE_TOKENS = 95  # the template's tokens before the prompt, encoded along with it

# Rough working memory of one encode (float32 activations, with slack), for the memory manager.
T5_WORK_BYTES = MOCHI_MAX_LENGTH * T5_V1_1_XXL["d_ff"] * FLOAT32_BYTES * 4  # a feed-forward's activations
_LLAMA_TOKENS = HUNYUAN_TEMPLATE_TOKENS + HUNYUAN_VIDEO_MAX_LENGTH
LLAMA_WORK_BYTES = (  # every layer's hidden states are kept (output_hidden_states), plus one gated feed-forward
    _LLAMA_TOKENS
    * (
        LLAVA_LLAMA3_8B["hidden_size"] * (LLAVA_LLAMA3_8B["num_hidden_layers"] + 1)
        + 3 * LLAVA_LLAMA3_8B["intermediate_size"]
    )
    * FLOAT32_BYTES
)
CLIP_WORK_BYTES = CLIP_MAX_LENGTH * CLIP_L_TEXT["intermediate_size"] * FLOAT32_BYTES * 4

T5_XXL = TextEncoderPart(
    label="a T5-XXL text encoder",
    matches=is_t5,
    build=t5_from_state_dict,
    tokenizer=T5_XXL_TOKENIZER,
    tokenizer_repo="google/t5-v1_1-xxl",
    diffusers_classes=("T5EncoderModel",),
    work_bytes=T5_WORK_BYTES,
)
LLAVA_LLAMA3 = TextEncoderPart(
    label="a Llama text encoder (llava-llama-3)",
    matches=is_llama,
    build=llama_from_state_dict,
    tokenizer=LLAVA_LLAMA3_TOKENIZER,
    tokenizer_repo="xtuner/llava-llama-3-8b-v1_1-transformers",
    diffusers_classes=("LlamaModel", "LlamaForCausalLM"),
    work_bytes=LLAMA_WORK_BYTES,
)
CLIP_L = TextEncoderPart(
    label="a CLIP-L text encoder",
    matches=is_clip_l_text,
    build=clip_text_from_state_dict,
    tokenizer=CLIP_L_TOKENIZER,
    tokenizer_repo="openai/clip-vit-large-patch14",
    diffusers_classes=("CLIPTextModel",),
    work_bytes=CLIP_WORK_BYTES,
)


def _encode_t5(
    run: PartRunner,
    tokenizers: tuple[Any, ...],
    text: str,
    dtype: torch.dtype,
    *,
    max_length: int,
    mask_encoder: bool,
    mask_transformer: bool,
) -> PromptEncoding:
    """T5-XXL as a T5 pipeline's ``encode_prompt``: padded to ``max_length`` tokens, the encoder run with or without
    the padding mask, and the mask given to the transformer (``attention_mask``) unless it attends to the padding.
    The encoder computes in its own dtype, as the pipelines keep it."""
    del dtype

    def encode(module: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        return encode_t5_prompt(tokenizers[0], module, text, max_length, mask_encoder=mask_encoder)

    embeds, mask = run(0, encode)
    return PromptEncoding(embeds, MappingProxyType({"attention_mask": mask} if mask_transformer else {}))


def _encode_hunyuan_video(
    run: PartRunner, tokenizers: tuple[Any, ...], text: str, dtype: torch.dtype
) -> PromptEncoding:
    """Llama (templated, 256 tokens after the template, third-to-last hidden states) and CLIP-L's pooled output,
    as ``HunyuanVideoPipeline.encode_prompt``."""
    del dtype
    embeds, mask = run(0, lambda module: encode_llama_prompt(tokenizers[0], module, text))
    pooled = run(1, lambda module: encode_clip_pooled(tokenizers[1], module, text))
    return PromptEncoding(embeds, MappingProxyType({"attention_mask": mask, "pooled_output": pooled}))


COGVIDEOX_MAX_LENGTH = 226  # CogVideoXPipeline's max_sequence_length (the transformers' max_text_seq_length)


# LTXPipeline: 128 tokens, encoder unmasked. MochiPipeline (force_zeros_for_empty_prompt off, its default): 256,
# masked. CogVideoX: 226, unmasked, and its transformer attends to the padding.
LTXV_TEXT = TextEncoderKind(
    name="ltxv",
    parts=(T5_XXL,),
    encode=partial(_encode_t5, max_length=LTXV_MAX_LENGTH, mask_encoder=False, mask_transformer=True),
)
MOCHI_TEXT = TextEncoderKind(
    name="mochi",
    parts=(T5_XXL,),
    encode=partial(_encode_t5, max_length=MOCHI_MAX_LENGTH, mask_encoder=True, mask_transformer=True),
)
HUNYUAN_VIDEO_TEXT = TextEncoderKind(name="hunyuan_video", parts=(LLAVA_LLAMA3, CLIP_L), encode=_encode_hunyuan_video)
COGVIDEOX_TEXT = TextEncoderKind(
    name="cogvideox",
    parts=(T5_XXL,),
    encode=partial(_encode_t5, max_length=COGVIDEOX_MAX_LENGTH, mask_encoder=False, mask_transformer=False),
)
SD_CLIP_L = TextEncoderPart(
    label="a CLIP-L text encoder (Stable Diffusion 1.5)",
    matches=is_sd_clip_text,
    build=sd_clip_text_from_state_dict,
    tokenizer=CLIP_L_TOKENIZER,
    tokenizer_repo="openai/clip-vit-large-patch14",
    diffusers_classes=("CLIPTextModel",),
    work_bytes=CLIP_WORK_BYTES,
)
STABLE_DIFFUSION_TEXT = TextEncoderKind(name="stable_diffusion", parts=(SD_CLIP_L,), encode=encode_sd_prompt)
