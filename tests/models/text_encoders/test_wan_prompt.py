"""Wan prompt embeddings: the same tensors as diffusers' ``WanPipeline.encode_prompt`` with the same tokenizer and
encoder, for single, batched, empty and over-long prompts."""

from __future__ import annotations

import pytest
import torch

from models.folders import ModelFolders
from models.loading import load_state_dict
from models.text_encoders.tokenizers import load_tokenizer
from models.text_encoders.umt5 import umt5_from_state_dict
from models.text_encoders.wan_prompt import clean_prompt, encode_wan_prompts
from models.tiny.text import TINY_UMT5_CONFIG, write_tiny_umt5_files

LONG = " ".join(["a red dragon flying over the dark mountain at night"] * 6)  # about 60 tokens
PROMPTS = [
    ["a cat is walking on the beach"],
    ["a cat is walking on the beach", "zebra &amp; horse\t in  the\n snow"],
    [""],
    [LONG, "caf\u00c3\u00a9 at   sunset", ""],
]


@pytest.fixture(scope="module")
def encoders(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, torch.nn.Module, object]:
    """The tokenizer and encoder loaded from the tiny files, and a tiny ``WanPipeline`` holding the same two."""
    from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, WanPipeline, WanTransformer3DModel

    models_dir = tmp_path_factory.mktemp("models")
    files = write_tiny_umt5_files(models_dir)
    tokenizer = load_tokenizer(ModelFolders(models_dir), "umt5-xxl")
    encoder = umt5_from_state_dict(load_state_dict(files[0]), torch.float32)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        transformer = WanTransformer3DModel(  # diffusers' own tiny test config, text_dim = the tiny UMT5's width
            patch_size=(1, 2, 2),
            num_attention_heads=2,
            attention_head_dim=12,
            in_channels=16,
            out_channels=16,
            text_dim=TINY_UMT5_CONFIG["d_model"],
            freq_dim=256,
            ffn_dim=32,
            num_layers=2,
            cross_attn_norm=True,
            qk_norm="rms_norm_across_heads",
            rope_max_seq_len=32,
        )
        vae = AutoencoderKLWan(
            base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1, temperal_downsample=[False, True, True]
        )
    pipeline = WanPipeline(
        tokenizer=tokenizer,
        text_encoder=encoder,
        vae=vae,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        transformer=transformer,
    )
    return tokenizer, encoder, pipeline


@pytest.mark.parametrize(
    ("prompts", "max_length"),
    [*((prompts, 16) for prompts in PROMPTS), (PROMPTS[-1], 512)],
    ids=["single", "batch", "empty", "long-mojibake-empty", "wan-length-512"],
)
def test_embeddings_equal_the_wan_pipelines(encoders: tuple, prompts: list[str], max_length: int) -> None:
    tokenizer, encoder, pipeline = encoders
    expected, _ = pipeline.encode_prompt(
        prompts, do_classifier_free_guidance=False, max_sequence_length=max_length, device=torch.device("cpu")
    )
    embeds = encode_wan_prompts(tokenizer, encoder, prompts, max_length=max_length)
    assert embeds.shape == (len(prompts), max_length, TINY_UMT5_CONFIG["d_model"])
    assert embeds.dtype == torch.float32 and torch.equal(embeds, expected)


def test_positions_past_each_prompt_are_zero_and_long_prompts_are_cut(encoders: tuple) -> None:
    tokenizer, encoder, _ = encoders
    embeds = encode_wan_prompts(tokenizer, encoder, ["a cat", "", LONG], max_length=16)
    lengths = [3, 1, 16]  # "▁a ▁cat </s>", "</s>", cut at 16 (no </s> then, as in the pipeline)
    for row, length in zip(embeds, lengths, strict=True):
        assert row[:length].abs().sum(dim=-1).gt(0).all() and not row[length:].any()


def test_device_and_dtype_of_the_result(encoders: tuple) -> None:
    tokenizer, encoder, _ = encoders
    embeds = encode_wan_prompts(tokenizer, encoder, ["a cat"], max_length=8, device="cpu", dtype=torch.bfloat16)
    assert embeds.dtype == torch.bfloat16 and embeds.device.type == "cpu"
    with pytest.raises(TypeError, match="list of prompts"):
        encode_wan_prompts(tokenizer, encoder, "a cat")


def test_prompts_are_cleaned_as_wan_does() -> None:
    assert clean_prompt("  caf\u00c3\u00a9 &amp;amp;  tea\n\tat\u00a0noon  ") == "caf\u00e9 & tea at noon"
    assert clean_prompt("") == ""
