"""The ``ltxv``, ``mochi`` and ``hunyuan_video`` text encoder kinds encode prompts exactly as ``LTXPipeline``,
``MochiPipeline`` and ``HunyuanVideoPipeline`` do (embeddings, attention masks, pooled output), from the tiny
single files and tokenizer folders; and every text-encoder file is recognised by exactly one matcher."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from diffusers import HunyuanVideoPipeline, LTXPipeline, MochiPipeline
from diffusers.pipelines.hunyuan_video.pipeline_hunyuan_video import DEFAULT_PROMPT_TEMPLATE

from models.clip_vision import is_clip_vision
from models.families.kinds import PromptEncoding, TextEncoderKind
from models.folders import ModelFolders
from models.loading import load_state_dict
from models.metadata import read_safetensors_header
from models.text_encoders.clip_text import is_clip_l_text
from models.text_encoders.kinds import CLIP_L, HUNYUAN_VIDEO_TEXT, LLAVA_LLAMA3, LTXV_TEXT, MOCHI_TEXT, T5_XXL
from models.text_encoders.llama import is_llama
from models.text_encoders.prompts import (
    HUNYUAN_VIDEO_TEMPLATE,
    MOCHI_MAX_LENGTH,
    encode_t5_prompt,
    template_crop_start,
)
from models.text_encoders.t5 import is_t5
from models.text_encoders.tokenizers import load_tokenizer
from models.text_encoders.umt5 import is_umt5
from models.tiny.text import write_tiny_clip_vision, write_tiny_umt5_files
from models.tiny.text_families import write_tiny_text_family_files

TOLERANCE = 1e-6
LONG = " ".join(["a small dog running through the green grass near the river at sunset"] * 30)
PROMPTS = ("A cat walking on the grass, realistic style.", "", LONG)


class Encoder:
    """A kind's parts built from the tiny single files through the parts' own ``build``, and their tokenizers."""

    def __init__(self, kind: TextEncoderKind, models_dir: Path, files: tuple[str, ...]) -> None:
        folders = ModelFolders(models_dir)
        self.kind = kind
        self.modules = []
        for part, name in zip(kind.parts, files, strict=True):
            path = models_dir / "text_encoders" / name
            self.modules.append(
                part.build(load_state_dict(path), torch.float32, read_safetensors_header(path).metadata)
            )
        self.tokenizers = tuple(load_tokenizer(folders, part.tokenizer) for part in kind.parts)
        self.calls: list[int] = []

    def run(self, index: int, function: Callable[[torch.nn.Module], Any]) -> Any:
        self.calls.append(index)
        return function(self.modules[index])

    def encode(self, text: str) -> PromptEncoding:
        return self.kind.encode(self.run, self.tokenizers, text, torch.float32)


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("models")
    write_tiny_text_family_files(folder)
    return folder


def assert_close(ours: torch.Tensor, theirs: torch.Tensor) -> None:
    assert ours.shape == theirs.shape and ours.dtype == theirs.dtype
    if ours.is_floating_point():
        assert (ours - theirs).abs().max().item() <= TOLERANCE  # measured: 0.0 (the same calls in the same order)
    else:
        assert torch.equal(ours, theirs)


@pytest.mark.parametrize("text", PROMPTS, ids=["prompt", "empty", "long"])
def test_ltxv_encodes_as_ltx_pipeline(models_dir: Path, text: str) -> None:
    encoder = Encoder(LTXV_TEXT, models_dir, ("t5xxl_fp16.safetensors",))
    pipeline = LTXPipeline(
        scheduler=None, vae=None, text_encoder=encoder.modules[0], tokenizer=encoder.tokenizers[0], transformer=None
    )
    with torch.no_grad():  # as the pipeline's __call__ runs it
        embeds, mask = pipeline.encode_prompt(text, do_classifier_free_guidance=False)[:2]
    encoding = encoder.encode(text)
    assert encoding.embeds.shape == (1, 128, 32) and set(encoding.extras) == {"attention_mask"}
    assert_close(encoding.embeds, embeds)
    assert_close(encoding.extras["attention_mask"], mask)
    assert encoder.calls == [0]


@pytest.mark.parametrize("text", PROMPTS, ids=["prompt", "empty", "long"])
def test_mochi_encodes_as_mochi_pipeline(models_dir: Path, text: str) -> None:
    encoder = Encoder(MOCHI_TEXT, models_dir, ("t5xxl_fp8_e4m3fn_scaled.safetensors",))
    pipeline = MochiPipeline(
        scheduler=None, vae=None, text_encoder=encoder.modules[0], tokenizer=encoder.tokenizers[0], transformer=None
    )
    with torch.no_grad():
        embeds, mask = pipeline.encode_prompt(text, do_classifier_free_guidance=False)[:2]
    encoding = encoder.encode(text)
    assert encoding.embeds.shape == (1, 256, 32)
    assert_close(encoding.embeds, embeds)
    assert_close(encoding.extras["attention_mask"], mask)


def test_mochi_zeros_for_empty_prompts_match_the_pipeline_option(models_dir: Path) -> None:
    encoder = Encoder(MOCHI_TEXT, models_dir, ("t5xxl_fp16.safetensors",))
    tokenizer, module = encoder.tokenizers[0], encoder.modules[0]
    pipeline = MochiPipeline(
        scheduler=None, vae=None, text_encoder=module, tokenizer=tokenizer, transformer=None,
        force_zeros_for_empty_prompt=True,
    )  # fmt: skip
    with torch.no_grad():
        embeds, mask = pipeline.encode_prompt("", do_classifier_free_guidance=False)[:2]
    ours, our_mask = encode_t5_prompt(tokenizer, module, "", MOCHI_MAX_LENGTH, mask_encoder=True, zeros_for_empty=True)
    assert not mask.any() and torch.equal(our_mask, mask)
    assert_close(ours, embeds)


def test_ltxv_runs_the_encoder_without_the_mask(models_dir: Path) -> None:
    """The padding changes LTX-Video's embeddings of the prompt's own tokens; Mochi's masked run does not see it."""
    encoder = Encoder(LTXV_TEXT, models_dir, ("t5xxl_fp16.safetensors",))
    text = PROMPTS[0]
    unmasked, mask = encode_t5_prompt(encoder.tokenizers[0], encoder.modules[0], text, 128, mask_encoder=False)
    masked, _ = encode_t5_prompt(encoder.tokenizers[0], encoder.modules[0], text, 128, mask_encoder=True)
    length = int(mask.sum())
    assert not torch.allclose(unmasked[:, :length], masked[:, :length], atol=1e-4)
    shorter, _ = encode_t5_prompt(encoder.tokenizers[0], encoder.modules[0], text, 64, mask_encoder=True)
    assert torch.allclose(shorter[:, :length], masked[:, :length], atol=1e-5)


@pytest.mark.parametrize("text", PROMPTS, ids=["prompt", "empty", "long"])
def test_hunyuan_video_encodes_as_hunyuan_video_pipeline(models_dir: Path, text: str) -> None:
    files = ("llava_llama3_fp16.safetensors", "clip_l.safetensors")
    encoder = Encoder(HUNYUAN_VIDEO_TEXT, models_dir, files)
    pipeline = HunyuanVideoPipeline(
        text_encoder=encoder.modules[0],
        tokenizer=encoder.tokenizers[0],
        transformer=None,
        vae=None,
        scheduler=None,
        text_encoder_2=encoder.modules[1],
        tokenizer_2=encoder.tokenizers[1],
    )
    with torch.no_grad():
        embeds, pooled, mask = pipeline.encode_prompt(text)
    encoding = encoder.encode(text)
    assert encoding.embeds.shape == (1, 256, 32) and set(encoding.extras) == {"attention_mask", "pooled_output"}
    assert_close(encoding.embeds, embeds)
    assert_close(encoding.extras["attention_mask"], mask)
    assert_close(encoding.extras["pooled_output"], pooled)
    assert encoder.calls == [0, 1]
    if text:
        assert encoding.extras["attention_mask"][0, 0] == 1  # the prompt's first token, the template cropped off


def test_the_template_crop_is_the_pipelines_default(models_dir: Path) -> None:
    tokenizer = load_tokenizer(ModelFolders(models_dir), LLAVA_LLAMA3.tokenizer)
    assert DEFAULT_PROMPT_TEMPLATE["template"] == HUNYUAN_VIDEO_TEMPLATE
    assert template_crop_start(tokenizer) == DEFAULT_PROMPT_TEMPLATE["crop_start"] == 95
    with pytest.raises(ValueError, match="slot"):
        template_crop_start(tokenizer, "no slot")


def test_the_kinds_and_their_parts() -> None:
    assert (LTXV_TEXT.name, MOCHI_TEXT.name, HUNYUAN_VIDEO_TEXT.name) == ("ltxv", "mochi", "hunyuan_video")
    assert LTXV_TEXT.parts == MOCHI_TEXT.parts == (T5_XXL,)
    assert HUNYUAN_VIDEO_TEXT.parts == (LLAVA_LLAMA3, CLIP_L)
    assert [part.tokenizer for part in (T5_XXL, LLAVA_LLAMA3, CLIP_L)] == [
        repo.split("/")[1] for repo in (part.tokenizer_repo for part in (T5_XXL, LLAVA_LLAMA3, CLIP_L))
    ]  # the folder ``download <repo> --folder tokenizers`` creates
    assert all(part.work_bytes > 0 for part in (T5_XXL, LLAVA_LLAMA3, CLIP_L))


def test_every_text_encoder_file_has_exactly_one_matcher(tmp_path: Path, models_dir: Path) -> None:
    write_tiny_umt5_files(tmp_path)
    write_tiny_clip_vision(tmp_path)
    matchers = {"t5": is_t5, "umt5": is_umt5, "llama": is_llama, "clip_l": is_clip_l_text, "vision": is_clip_vision}
    expected = {
        models_dir / "text_encoders" / "t5xxl_fp16.safetensors": "t5",
        models_dir / "text_encoders" / "t5xxl_fp8_e4m3fn_scaled.safetensors": "t5",
        tmp_path / "text_encoders" / "umt5_xxl_fp16.safetensors": "umt5",
        tmp_path / "text_encoders" / "umt5_xxl_fp8_e4m3fn_scaled.safetensors": "umt5",
        models_dir / "text_encoders" / "llava_llama3_fp16.safetensors": "llama",
        models_dir / "text_encoders" / "llava_llama3_fp8_scaled.safetensors": "llama",
        models_dir / "text_encoders" / "clip_l.safetensors": "clip_l",
        tmp_path / "clip_vision" / "clip_vision_h.safetensors": "vision",
    }
    for path, kind in expected.items():
        tensors = load_state_dict(path)
        assert [name for name, matches in matchers.items() if matches(tensors)] == [kind], path.name
    assert T5_XXL.matches is is_t5 and LLAVA_LLAMA3.matches is is_llama and CLIP_L.matches is is_clip_l_text
