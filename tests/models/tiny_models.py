"""Tiny random-weight models saved as real files, for tests that load models exactly as they would load real ones.

Everything is built offline (no hub): seeded weights, a tokenizer made from a word list. Builders leave the global
torch RNG untouched. The sizes follow diffusers' own Wan tests and run in well under a second on a CPU.
"""

from __future__ import annotations

import builtins
import pickle
from pathlib import Path

import numpy as np
import torch

WAN_VAE_CONFIG = {
    "base_dim": 3,
    "z_dim": 16,
    "dim_mult": [1, 1, 1, 1],
    "num_res_blocks": 1,
    "temperal_downsample": [False, True, True],
}
WAN_TRANSFORMER_CONFIG = {
    "patch_size": (1, 2, 2),
    "num_attention_heads": 2,
    "attention_head_dim": 12,
    "in_channels": 16,
    "out_channels": 16,
    "text_dim": 32,
    "freq_dim": 256,
    "ffn_dim": 32,
    "num_layers": 2,
    "cross_attn_norm": True,
    "qk_norm": "rms_norm_across_heads",
    "rope_max_seq_len": 32,
}
TOKENIZER_WORDS = ("a", "cat", "dog", "runs", "walks", "on", "the", "beach", "in", "snow", "red", "car")
UMT5_CONFIG = {
    "d_model": 32,  # = WAN_TRANSFORMER_CONFIG["text_dim"]
    "d_kv": 8,
    "d_ff": 37,
    "num_layers": 2,
    "num_heads": 4,
    "relative_attention_num_buckets": 8,
}


def tiny_wan_vae(seed: int = 0) -> torch.nn.Module:
    """An ``AutoencoderKLWan`` (8x spatial, 4x temporal compression) with seeded random weights, in eval mode."""
    from diffusers import AutoencoderKLWan

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return AutoencoderKLWan(**WAN_VAE_CONFIG).eval()


def tiny_wan_transformer(seed: int = 0) -> torch.nn.Module:
    """A two-layer ``WanTransformer3DModel`` with seeded random weights, in eval mode."""
    from diffusers import WanTransformer3DModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return WanTransformer3DModel(**WAN_TRANSFORMER_CONFIG).eval()


def tiny_t5_tokenizer():
    """A ``T5Tokenizer`` (Unigram) over ``TOKENIZER_WORDS``; ids 0-2 are ``<pad>``, ``</s>``, ``<unk>``."""
    from transformers import T5Tokenizer

    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    vocab += [(f"\u2581{word}", -1.0) for word in TOKENIZER_WORDS]
    return T5Tokenizer(vocab=vocab, extra_ids=0)


def tiny_umt5_encoder(seed: int = 0) -> torch.nn.Module:
    """A two-layer ``UMT5EncoderModel`` whose vocabulary covers ``tiny_t5_tokenizer``."""
    from transformers import UMT5Config, UMT5EncoderModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return UMT5EncoderModel(UMT5Config(vocab_size=32, **UMT5_CONFIG)).eval()


def save_tiny_wan_vae(folder: Path, seed: int = 0) -> Path:
    """Save a tiny Wan VAE as a diffusers component folder (``config.json`` + safetensors); returns the folder."""
    tiny_wan_vae(seed).save_pretrained(folder)
    return Path(folder)


def save_tiny_wan_transformer(folder: Path, seed: int = 0) -> Path:
    """Save a tiny Wan transformer as a diffusers component folder; returns the folder."""
    tiny_wan_transformer(seed).save_pretrained(folder)
    return Path(folder)


def save_tiny_wan_pipeline(folder: Path, seed: int = 0) -> Path:
    """Save a tiny ``WanPipeline`` (T5 tokenizer, UMT5 encoder, VAE, transformer, flow-match scheduler)."""
    from diffusers import FlowMatchEulerDiscreteScheduler, WanPipeline

    pipeline = WanPipeline(
        tokenizer=tiny_t5_tokenizer(),
        text_encoder=tiny_umt5_encoder(seed),
        vae=tiny_wan_vae(seed),
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        transformer=tiny_wan_transformer(seed),
    )
    pipeline.save_pretrained(folder)
    return Path(folder)


def save_safetensors(state_dict: dict[str, torch.Tensor], path: Path) -> Path:
    """Save a state dict as one safetensors file (the single-file layout of ComfyUI's model folders)."""
    from safetensors.torch import save_file

    save_file({name: tensor.contiguous() for name, tensor in state_dict.items()}, path)
    return Path(path)


def save_torch(obj: object, path: Path, zip_format: bool = True) -> Path:
    """``torch.save`` an object: the zip format by default, the legacy pickle format with ``zip_format=False``."""
    torch.save(obj, path, _use_new_zipfile_serialization=zip_format)
    return Path(path)


def save_tiny_gguf(path: Path, seed: int = 0) -> dict[str, np.ndarray]:
    """Write a GGUF file with F32 and F16 tensors and one Q8_0-quantized tensor; returns the original arrays."""
    from gguf import GGMLQuantizationType, GGUFWriter
    from gguf.quants import quantize

    rng = np.random.default_rng(seed)
    originals = {
        "blocks.0.weight": rng.standard_normal((4, 8)).astype(np.float32),
        "blocks.0.bias": rng.standard_normal(8).astype(np.float32),
        "norm.weight": rng.standard_normal((3, 5)).astype(np.float16),
        "proj.weight": rng.standard_normal((2, 64)).astype(np.float32),  # rows of 64: two Q8_0 blocks each
    }
    writer = GGUFWriter(path, arch="wan")
    for name, array in originals.items():
        if name == "proj.weight":
            blocks = quantize(array, GGMLQuantizationType.Q8_0)
            writer.add_tensor(name, blocks, raw_shape=blocks.shape, raw_dtype=GGMLQuantizationType.Q8_0)
        else:
            writer.add_tensor(name, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return originals


class CreatesMarker:
    """Unpickles as ``open(marker, "w")``: unpickling it with plain ``pickle`` creates the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return builtins.open, (str(self.marker), "w")


def save_malicious_pickle(path: Path, marker: Path, zip_format: bool | None = True) -> Path:
    """A checkpoint whose unpickling would create ``marker``: ``torch.save`` zip or legacy, or (``None``) a bare
    ``pickle.dumps``. A safe loader must refuse it and leave ``marker`` absent."""
    if zip_format is None:  # no tensor: plain pickle would store it through a global weights_only also refuses
        Path(path).write_bytes(pickle.dumps({"weight": [0.0, 0.0], "bias": CreatesMarker(marker)}, protocol=2))
        return Path(path)
    return save_torch({"weight": torch.zeros(2), "bias": CreatesMarker(marker)}, path, zip_format=zip_format)
