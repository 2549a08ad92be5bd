"""Tiny stand-ins for Wan's text and image encoders, written as the real files are laid out, built offline.

``write_tiny_umt5_files`` writes ``text_encoders/umt5_xxl_fp16.safetensors``, the scaled fp8
``text_encoders/umt5_xxl_fp8_e4m3fn_scaled.safetensors`` and the tokenizer folder ``tokenizers/umt5-xxl/``;
``write_tiny_clip_vision`` writes ``clip_vision/clip_vision_h.safetensors``. Same names, key layouts and detection
as the real files, so the loaders under test cannot tell them apart; weights are seeded and random, and builders
leave the global torch RNG untouched.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection, UMT5Config, UMT5EncoderModel

from models.scaled_fp8 import quantize_scaled
from models.text_encoders.umt5 import umt5_to_single_file

__all__ = [
    "TINY_CLIP_VISION_CONFIG",
    "TINY_UMT5_CONFIG",
    "tiny_clip_vision",
    "tiny_umt5",
    "write_tiny_clip_vision",
    "write_tiny_tokenizer",
    "write_tiny_umt5_files",
]

# Common English words (and a few of video prompts); each is one "▁word" piece of the tiny tokenizer.
WORDS = tuple(
    """
    a about above across after again against air all almost alone along also always am an and animal another any
    are around as at away baby back bad ball beach bear beautiful bed before behind below bird black blue boat body
    book both bottle boy bright brown building but by cake camera can car castle cat chair child city clear close
    cloud coffee cold color come could cup dance dark day deep dog door down dragon dream drink during each early
    earth eat evening every eye face fall far fast field fire fish flower fly food for forest from front garden girl
    glass go gold good grass gray green ground hair hand happy hat have he head her here high hill his holding horse
    hot house i ice in inside into is it its jump just kitchen lake large leaf left light like little long look low
    man many market me moon morning mountain move my near new night no not of off old on one open or orange our out
    over paper park people person pink play purple rain red river road rock room run running sand sea see she ship
    short sit sitting sky slow slowly small smile snow soft some space stand standing star stone street strong sun
    table tall that the their them then there they this through to tree under up very video walk walking wall
    water wave we white wind window with woman wood world yellow you young your camera's cinematic close-up
    detailed fog golden hour lighting motion portrait realistic scene shot style sunset view wide
    """.split()
)
# Single characters, so that any word outside WORDS still tokenizes (into pieces) rather than to <unk>.
CHARACTERS = tuple("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,;:!?'\"-()&/")
SPECIAL_TOKENS = ("<pad>", "</s>", "<unk>")  # ids 0, 1, 2, as in UMT5's tokenizer
_WORD_SCORE = -5.0
_SPACE_SCORE = -8.0
_CHARACTER_SCORE = -12.0


def _vocabulary() -> list[tuple[str, float]]:
    """The tiny tokenizer's Unigram pieces and log-probabilities, in id order."""
    vocab = [(token, 0.0) for token in SPECIAL_TOKENS]
    vocab.append(("\u2581", _SPACE_SCORE))
    vocab += [(f"\u2581{word}", _WORD_SCORE) for word in dict.fromkeys(WORDS)]
    vocab += [(character, _CHARACTER_SCORE) for character in CHARACTERS]
    return vocab


# The tiny UMT5: d_model is the tiny Wan transformers' text_dim; vocab_size is the tiny tokenizer's size.
TINY_UMT5_CONFIG = {
    "vocab_size": len(_vocabulary()),
    "d_model": 64,
    "num_heads": 2,
    "d_kv": 32,
    "d_ff": 128,
    "num_layers": 2,
    "relative_attention_num_buckets": 32,
    "relative_attention_max_distance": 128,
    "feed_forward_proj": "gated-gelu",
}
# The tiny CLIP ViT: 2 heads of 80 (ViT-H/14's head dim), ViT-H's patch and image size, 256 + 1 positions.
TINY_CLIP_VISION_CONFIG = {
    "hidden_size": 160,
    "num_attention_heads": 2,
    "num_hidden_layers": 2,
    "intermediate_size": 320,
    "patch_size": 14,
    "image_size": 224,
    "projection_dim": 64,
    "hidden_act": "gelu",
    "layer_norm_eps": 1e-5,
}
UMT5_FP16_FILE = "umt5_xxl_fp16.safetensors"
UMT5_FP8_FILE = "umt5_xxl_fp8_e4m3fn_scaled.safetensors"
TOKENIZER_NAME = "umt5-xxl"
CLIP_VISION_FILE = "clip_vision_h.safetensors"
# The layers the scaled fp8 release stores as float8: every linear weight (not the embedding, norms or biases).
_LINEAR_WEIGHT = re.compile(r"\.(SelfAttention\.[qkvo]|DenseReluDense\.(wi_0|wi_1|wo))\.weight$")


def write_tiny_tokenizer(folder: Path) -> Path:
    """Save a ``T5Tokenizer`` (Unigram, sentencepiece-style ``▁`` pieces over ``WORDS`` and ``CHARACTERS``; pad 0,
    eos 1, unk 2) into ``folder`` (``tokenizer.json`` + ``tokenizer_config.json``); returns the folder."""
    from transformers import T5Tokenizer

    tokenizer = T5Tokenizer(vocab=_vocabulary(), extra_ids=0)
    folder = Path(folder)
    tokenizer.save_pretrained(folder)
    return folder


def tiny_umt5(seed: int = 0) -> UMT5EncoderModel:
    """A two-block ``UMT5EncoderModel`` (``TINY_UMT5_CONFIG``) with seeded random weights, in eval mode."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return UMT5EncoderModel(UMT5Config(**TINY_UMT5_CONFIG)).eval()


def write_tiny_umt5_files(models_dir: Path, seed: int = 0) -> list[Path]:
    """Write the tiny UMT5 as ``text_encoders/umt5_xxl_fp16.safetensors`` (float16) and
    ``text_encoders/umt5_xxl_fp8_e4m3fn_scaled.safetensors`` (its linear weights float8 with a ``scale_weight`` each
    and a ``scaled_fp8`` marker; embedding, norms and relative attention biases float16, as in the release), and its
    tokenizer as ``tokenizers/umt5-xxl/``. Returns the two files and the folder."""
    models_dir = Path(models_dir)
    folder = models_dir / "text_encoders"
    folder.mkdir(parents=True, exist_ok=True)
    tensors = umt5_to_single_file(tiny_umt5(seed))
    fp16 = folder / UMT5_FP16_FILE
    save_file({key: tensor.to(torch.float16) for key, tensor in tensors.items()}, fp16)
    linear = [key.removesuffix(".weight") for key in tensors if _LINEAR_WEIGHT.search(key)]
    quantized, metadata = quantize_scaled(tensors, linear, "scale_weight")
    fp8 = folder / UMT5_FP8_FILE
    save_file({key: _release_dtype(key, tensor) for key, tensor in quantized.items()}, fp8, metadata=metadata or None)
    tokenizer = write_tiny_tokenizer(models_dir / "tokenizers" / TOKENIZER_NAME)
    return [fp16, fp8, tokenizer]


def _release_dtype(key: str, tensor: torch.Tensor) -> torch.Tensor:
    """float8 weights and float32 scales as they are, everything else float16 (as in the fp8 release)."""
    if tensor.dtype in (torch.float8_e4m3fn, torch.float8_e5m2) or key.endswith(".scale_weight"):
        return tensor
    return tensor.to(torch.float16)


def tiny_clip_vision(seed: int = 0) -> CLIPVisionModelWithProjection:
    """A two-layer CLIP ViT with projection (``TINY_CLIP_VISION_CONFIG``) with seeded random weights, in eval mode."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return CLIPVisionModelWithProjection(CLIPVisionConfig(**TINY_CLIP_VISION_CONFIG)).eval()


def write_tiny_clip_vision(models_dir: Path, seed: int = 0) -> Path:
    """Write the tiny CLIP ViT as ``clip_vision/clip_vision_h.safetensors`` (HF layout, float16); returns the file."""
    folder = Path(models_dir) / "clip_vision"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / CLIP_VISION_FILE
    tensors = tiny_clip_vision(seed).state_dict()
    save_file({key: tensor.detach().to(torch.float16).contiguous() for key, tensor in tensors.items()}, path)
    return path
