"""Tiny stand-ins for the text encoders of LTX-Video and Mochi (T5-XXL) and HunyuanVideo (llava-llama-3 and CLIP-L),
written as the real files are laid out, with tokenizers built offline.

``write_tiny_text_family_files`` writes ``text_encoders/t5xxl_fp16.safetensors``,
``text_encoders/t5xxl_fp8_e4m3fn_scaled.safetensors``, ``text_encoders/llava_llama3_fp16.safetensors``,
``text_encoders/llava_llama3_fp8_scaled.safetensors``, ``text_encoders/clip_l.safetensors`` and the tokenizer folders
``tokenizers/<name>/`` that ``models.text_encoders.kinds`` names. Same names, key layouts and detection as the real
files; weights are seeded and random, and builders leave the global torch RNG untouched.

The networks are 32 wide (the tiny LTX-Video, Mochi and HunyuanVideo transformers' text width). The tiny Llama keeps
Llama 3's heads of 128 (what detection assumes) and has 4 layers, so that ``hidden_states[-3]`` is an inner layer's.
Its tokenizer splits text as Llama 3's does and holds every piece of HunyuanVideo's prompt template as one token, so
the template's part before the prompt is 95 tokens, as with the real tokenizer (``HunyuanVideoPipeline``'s default
``crop_start``). The CLIP tokenizer's end-of-text token is its highest id, as in CLIP's (pooling takes the argmax).
"""

from __future__ import annotations

import re
from pathlib import Path
from types import MappingProxyType

import regex
import torch
from safetensors.torch import save_file
from tokenizers import pre_tokenizers
from transformers import CLIPTextConfig, CLIPTextModel, LlamaConfig, LlamaModel, T5Config, T5EncoderModel

from models.scaled_fp8 import quantize_scaled
from models.text_encoders.clip_text import clip_text_to_single_file
from models.text_encoders.kinds import CLIP_L_TOKENIZER, LLAVA_LLAMA3_TOKENIZER, T5_XXL_TOKENIZER
from models.text_encoders.llama import HEAD_DIM, llama_to_single_file
from models.text_encoders.prompts import HUNYUAN_VIDEO_TEMPLATE, PROMPT_SLOT
from models.text_encoders.t5 import t5_to_single_file
from models.tiny.text import TINY_UMT5_CONFIG, WORDS, write_tiny_tokenizer

__all__ = [
    "TINY_CLIP_L_CONFIG",
    "TINY_LLAMA_CONFIG",
    "TINY_T5_CONFIG",
    "tiny_clip_l",
    "tiny_llama",
    "tiny_t5",
    "write_tiny_clip_tokenizer",
    "write_tiny_llama_tokenizer",
    "write_tiny_t5_tokenizer",
    "write_tiny_text_family_files",
]

T5_FP16_FILE = "t5xxl_fp16.safetensors"
T5_FP8_FILE = "t5xxl_fp8_e4m3fn_scaled.safetensors"
LLAMA_FP16_FILE = "llava_llama3_fp16.safetensors"
LLAMA_FP8_FILE = "llava_llama3_fp8_scaled.safetensors"
CLIP_L_FILE = "clip_l.safetensors"

# Llama 3's pre-tokenizer pattern (contractions, letter runs, 1-3 digits, punctuation, newlines, spaces).
LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
    r"|\s+(?!\S)|\s+"
)
LLAMA_BOS, LLAMA_EOS, LLAMA_PAD = "<|begin_of_text|>", "<|end_of_text|>", "<pad>"
LLAMA_SPECIAL_TOKENS = (LLAMA_BOS, LLAMA_EOS, "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", LLAMA_PAD)
CLIP_BOS, CLIP_EOS = "<|startoftext|>", "<|endoftext|>"
CLIP_END_OF_WORD = "</w>"
_SPECIAL_PATTERN = "|".join(re.escape(token) for token in LLAMA_SPECIAL_TOKENS)

# The tiny T5 shares the tiny UMT5's tokenizer (the same T5 Unigram layout: pad 0, eos 1, unk 2).
TINY_T5_CONFIG = MappingProxyType(
    {
        "vocab_size": TINY_UMT5_CONFIG["vocab_size"],
        "d_model": 32,
        "num_heads": 2,
        "d_kv": 16,
        "d_ff": 64,
        "num_layers": 2,
        "relative_attention_num_buckets": 32,
        "relative_attention_max_distance": 128,
        "feed_forward_proj": "gated-gelu",
        "layer_norm_epsilon": 1e-6,
    }
)


def _llama_pieces() -> list[str]:
    """The tiny Llama tokenizer's whole-word pieces (before byte mapping): the template's, then ``WORDS`` with and
    without a leading space and capitalised."""
    pieces: list[str] = []
    for side in HUNYUAN_VIDEO_TEMPLATE.split(PROMPT_SLOT):
        for part in regex.split(f"({_SPECIAL_PATTERN})", side):
            if part and part not in LLAMA_SPECIAL_TOKENS:
                pieces += regex.findall(LLAMA3_SPLIT, part)
    for word in WORDS:
        pieces += [word, " " + word, word.capitalize(), " " + word.capitalize()]
    return list(dict.fromkeys(pieces))


def _llama_vocab() -> dict[str, int]:
    """The tiny Llama tokenizer's BPE vocabulary: every byte (byte-level characters), then ``_llama_pieces``;
    the special tokens follow it."""
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    words = ["".join(piece for piece, _ in byte_level.pre_tokenize_str(word)) for word in _llama_pieces()]
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    return {token: index for index, token in enumerate(dict.fromkeys(alphabet + words))}


def _clip_vocab() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """The tiny CLIP tokenizer's byte-level BPE: every byte alone and word-final, the prefixes of the lower-case
    ``WORDS`` built by merges, then the start and end tokens (the highest ids, as in CLIP's vocabulary)."""
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    tokens = alphabet + [character + CLIP_END_OF_WORD for character in alphabet]
    merges: list[tuple[str, str]] = []
    for word in (word for word in dict.fromkeys(WORDS) if word.isalpha()):
        for end in range(2, len(word) + 1):
            left, right = word[: end - 1], word[end - 1] + (CLIP_END_OF_WORD if end == len(word) else "")
            merges.append((left, right))
            tokens.append(left + right)
    vocab = {token: index for index, token in enumerate(dict.fromkeys(tokens))}
    for token in (CLIP_BOS, CLIP_EOS):
        vocab[token] = len(vocab)
    return vocab, list(dict.fromkeys(merges))


TINY_LLAMA_CONFIG = MappingProxyType(
    {
        "vocab_size": len(_llama_vocab()) + len(LLAMA_SPECIAL_TOKENS),
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 4,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "head_dim": HEAD_DIM,
        "hidden_act": "silu",
        "max_position_embeddings": 8192,
        "rms_norm_eps": 1e-5,
        "rope_theta": 500000.0,
        "attention_bias": False,
        "mlp_bias": False,
        "tie_word_embeddings": False,
    }
)
TINY_CLIP_L_CONFIG = MappingProxyType(
    {
        "vocab_size": len(_clip_vocab()[0]),
        "hidden_size": 32,
        "intermediate_size": 64,
        "projection_dim": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "max_position_embeddings": 77,
        "hidden_act": "quick_gelu",
        "layer_norm_eps": 1e-5,
        "bos_token_id": 0,
        "eos_token_id": 2,  # openai's legacy value: pooling at the highest token id (the end-of-text token)
        "pad_token_id": 1,
    }
)
# The layers the scaled fp8 releases store as float8: every linear weight of the blocks.
_T5_LINEAR = re.compile(r"\.(SelfAttention\.[qkvo]|DenseReluDense\.(wi_0|wi_1|wo))\.weight$")
_LLAMA_LINEAR = re.compile(r"\.(self_attn\.[qkvo]_proj|mlp\.(gate|up|down)_proj)\.weight$")


def tiny_t5(seed: int = 0) -> T5EncoderModel:
    """A two-block ``T5EncoderModel`` (``TINY_T5_CONFIG``) with seeded random weights, in eval mode."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return T5EncoderModel(T5Config(**TINY_T5_CONFIG)).eval()


def tiny_llama(seed: int = 0) -> LlamaModel:
    """A four-layer ``LlamaModel`` (``TINY_LLAMA_CONFIG``: 2 query heads and 1 key/value head of 128) with seeded
    random weights, in eval mode."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return LlamaModel(LlamaConfig(**TINY_LLAMA_CONFIG)).eval()


def tiny_clip_l(seed: int = 0) -> CLIPTextModel:
    """A two-layer ``CLIPTextModel`` (``TINY_CLIP_L_CONFIG``, 77 positions) with seeded random weights, in eval
    mode."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return CLIPTextModel(CLIPTextConfig(**TINY_CLIP_L_CONFIG)).eval()


def write_tiny_t5_tokenizer(folder: Path) -> Path:
    """Save a T5 tokenizer (the tiny UMT5's: Unigram, pad 0, eos 1, unk 2) into ``folder``; returns the folder."""
    return write_tiny_tokenizer(folder)


def write_tiny_llama_tokenizer(folder: Path) -> Path:
    """Save a Llama-3-style tokenizer into ``folder`` (``tokenizer.json`` + config; a ``PreTrainedTokenizerFast``):
    byte-level BPE over Llama 3's pre-tokenizer split, every piece of ``_llama_pieces`` one token (others fall back
    to bytes), ``<|begin_of_text|>`` prepended, ``<|end_of_text|>`` as eos, ``<pad>`` as pad, and the header and
    turn tokens of HunyuanVideo's template as special tokens. Returns the folder."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, processors
    from transformers import PreTrainedTokenizerFast

    vocab = _llama_vocab()
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[], ignore_merges=True))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens([AddedToken(token, special=True, normalized=False) for token in LLAMA_SPECIAL_TOKENS])
    bos_id = tokenizer.token_to_id(LLAMA_BOS)
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{LLAMA_BOS} $A", pair=f"{LLAMA_BOS} $A {LLAMA_BOS} $B", special_tokens=[(LLAMA_BOS, bos_id)]
    )
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token=LLAMA_BOS, eos_token=LLAMA_EOS, pad_token=LLAMA_PAD
    )
    folder = Path(folder)
    wrapped.save_pretrained(folder)
    return folder


def write_tiny_clip_tokenizer(folder: Path) -> Path:
    """Save a ``CLIPTokenizer`` (``_clip_vocab``; lower-cased, 77 tokens, padded with the end-of-text token) into
    ``folder``; returns the folder."""
    from transformers import CLIPTokenizer

    vocab, merges = _clip_vocab()
    tokenizer = CLIPTokenizer(
        vocab=vocab, merges=merges, model_max_length=TINY_CLIP_L_CONFIG["max_position_embeddings"]
    )
    folder = Path(folder)
    tokenizer.save_pretrained(folder)
    return folder


def write_tiny_text_family_files(models_dir: Path, seed: int = 0) -> list[Path]:
    """Write the tiny T5 (float16 and scaled fp8), Llama (float16 with an ``lm_head``, and scaled fp8) and CLIP-L
    (float16, with a ``text_projection``) under ``text_encoders/`` with the releases' names, and their tokenizers
    under ``tokenizers/``. Returns the five files, then the three tokenizer folders."""
    models_dir = Path(models_dir)
    folder = models_dir / "text_encoders"
    folder.mkdir(parents=True, exist_ok=True)
    t5 = t5_to_single_file(tiny_t5(seed))
    llama_model = tiny_llama(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 1)
        lm_head = torch.randn(llama_model.config.vocab_size, llama_model.config.hidden_size) * 0.02
        projection = torch.randn(TINY_CLIP_L_CONFIG["projection_dim"], TINY_CLIP_L_CONFIG["hidden_size"]) * 0.02
    llama = llama_to_single_file(llama_model, lm_head)
    clip = clip_text_to_single_file(tiny_clip_l(seed), projection)
    written = [
        _save_half(t5, folder / T5_FP16_FILE),
        _save_scaled(t5, _T5_LINEAR, folder / T5_FP8_FILE),
        _save_half(llama, folder / LLAMA_FP16_FILE),
        _save_scaled(llama, _LLAMA_LINEAR, folder / LLAMA_FP8_FILE),
        _save_half(clip, folder / CLIP_L_FILE),
    ]
    tokenizers = models_dir / "tokenizers"
    written.append(write_tiny_t5_tokenizer(tokenizers / T5_XXL_TOKENIZER))
    written.append(write_tiny_llama_tokenizer(tokenizers / LLAVA_LLAMA3_TOKENIZER))
    written.append(write_tiny_clip_tokenizer(tokenizers / CLIP_L_TOKENIZER))
    return written


def _save_half(tensors: dict[str, torch.Tensor], path: Path) -> Path:
    save_file({key: tensor.to(torch.float16) for key, tensor in tensors.items()}, path)
    return path


def _save_scaled(tensors: dict[str, torch.Tensor], linear: re.Pattern[str], path: Path) -> Path:
    """Linear weights as float8 with a ``scale_weight`` each and a ``scaled_fp8`` marker, the rest float16."""
    layers = [key.removesuffix(".weight") for key in tensors if linear.search(key)]
    quantized, metadata = quantize_scaled(tensors, layers, "scale_weight")
    save_file({key: _release_dtype(key, tensor) for key, tensor in quantized.items()}, path, metadata=metadata or None)
    return path


def _release_dtype(key: str, tensor: torch.Tensor) -> torch.Tensor:
    """float8 weights and float32 scales as they are, everything else float16 (as in the fp8 releases)."""
    if tensor.dtype in (torch.float8_e4m3fn, torch.float8_e5m2) or key.endswith(".scale_weight"):
        return tensor
    return tensor.to(torch.float16)
