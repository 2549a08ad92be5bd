"""Fidelity to diffusers at the adapter level: ``sample_latent`` with ``HunyuanAdapter`` (euler over the pipelines'
sigmas with shift 7, classifier-free guidance, embedded guidance, the same seed) on the networks built from the tiny
single files, then the VAE's decode, reproduces ``HunyuanVideoPipeline``'s and ``HunyuanVideoImageToVideoPipeline``'s
frames (both ``image_condition_type``\\ s) for the same tiny weights and prompt embeddings, in float32.

The image-to-video pipeline mixes 0.1% of the image latent into its initial noise (``prepare_latents``); it is given
latents that undo that mix, so both sides start from the same noise. Its ``latent_concat`` output drops the first
four decoded frames; ours are compared from the fifth."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler, HunyuanVideoImageToVideoPipeline, HunyuanVideoPipeline
from PIL import Image
from safetensors.torch import load_file

from models.devices import DeviceProbe
from models.diffusion_model import DiffusionModel
from models.families.hunyuan.adapter import DEFAULT_SHIFT
from models.families.hunyuan.family import HUNYUAN_TRANSFORMERS, HUNYUAN_VAES
from models.families.hunyuan.latents import HUNYUAN_LATENT, SCALING_FACTOR
from models.generate import sample_latent
from models.guidance import Guider
from models.memory import MemoryConfig, ModelManager
from models.noise import Noise
from models.sampling.model_sampling import FlowSampling
from models.sampling.samplers import get_sampler
from models.tiny.hunyuan import TINY_POOLED_DIM, TINY_TEXT_DIM, tiny_hunyuan_transformer, tiny_hunyuan_vae

SEED, STEPS, CFG, GUIDANCE = 3, 3, 2.5, 4.5
SIZE, FRAMES, LATENT_FRAMES = 64, 9, 3
TOKENS = 16
PIPELINE_MIX = 0.999  # HunyuanVideoImageToVideoPipeline.prepare_latents: latents * t + image_latents * (1 - t)


@pytest.fixture
def manager() -> Iterator[ModelManager]:
    manager = ModelManager(MemoryConfig(mode="cpu"), DeviceProbe())
    yield manager
    manager.free()


def _prompt(seed: int, real_tokens: int) -> dict[str, torch.Tensor]:
    """Random Llama-like embeddings, their mask (``real_tokens`` real, then padding) and a pooled CLIP-L output."""
    generator = torch.Generator().manual_seed(seed)
    mask = torch.zeros(1, TOKENS)
    mask[:, :real_tokens] = 1
    return {
        "embeds": torch.randn(1, TOKENS, TINY_TEXT_DIM, generator=generator),
        "mask": mask,
        "pooled": torch.randn(1, TINY_POOLED_DIM, generator=generator),
    }


POSITIVE, NEGATIVE = _prompt(1, 11), _prompt(2, 5)


def _pipeline_prompts() -> dict[str, torch.Tensor]:
    return {
        "prompt_embeds": POSITIVE["embeds"],
        "prompt_attention_mask": POSITIVE["mask"],
        "pooled_prompt_embeds": POSITIVE["pooled"],
        "negative_prompt_embeds": NEGATIVE["embeds"],
        "negative_prompt_attention_mask": NEGATIVE["mask"],
        "negative_pooled_prompt_embeds": NEGATIVE["pooled"],
    }


def _conditioning(prompt: dict[str, torch.Tensor], **extras: object) -> list:
    values = {"attention_mask": prompt["mask"], "pooled_output": prompt["pooled"], "guidance": GUIDANCE, **extras}
    return [[prompt["embeds"], values]]


def _sigmas() -> torch.Tensor:
    """The pipelines' schedule: ``linspace(1, 0)`` without its end, shifted by the scheduler, then 0."""
    scheduler = FlowMatchEulerDiscreteScheduler(shift=DEFAULT_SHIFT)
    scheduler.set_timesteps(sigmas=np.linspace(1.0, 0.0, STEPS + 1)[:-1])
    return scheduler.sigmas


def _ours(
    manager: ModelManager,
    models_dir: Path,
    stem: str,
    latent: torch.Tensor,
    noise_mask: torch.Tensor | None = None,
    **extras: object,
) -> torch.Tensor:
    """Our raw latent for the tiny file ``stem``."""
    path = models_dir / "diffusion_models" / f"{stem}.safetensors"
    adapter = HUNYUAN_TRANSFORMERS.detect(load_file(path), {})
    handle = manager.load(stem, lambda: HUNYUAN_TRANSFORMERS.build(load_file(path), torch.float32, {}))
    model = DiffusionModel(stem, handle, adapter, FlowSampling(shift=DEFAULT_SHIFT), torch.float32)
    guider = Guider(model, _conditioning(POSITIVE, **extras), _conditioning(NEGATIVE, **extras), CFG)
    with torch.no_grad():
        result = sample_latent(
            manager, guider, get_sampler("euler"), _sigmas(), latent, Noise(SEED), noise_mask=noise_mask
        )
    return result.samples


def _vae(models_dir: Path) -> torch.nn.Module:
    return HUNYUAN_VAES.build(load_file(models_dir / "vae" / "hunyuan_video_vae_bf16.safetensors"), torch.float32)


def _decoded(vae: torch.nn.Module, latent: torch.Tensor) -> torch.Tensor:
    """``[B, F, C, H, W]`` frames in 0..1, as the pipelines' ``output_type="pt"``."""
    with torch.no_grad():
        video = HUNYUAN_VAES.codec.decode(vae, latent)
    return (video / 2 + 0.5).clamp(0, 1).permute(0, 2, 1, 3, 4)


def _noise() -> torch.Tensor:
    shape = (1, HUNYUAN_LATENT.channels, LATENT_FRAMES, SIZE // 8, SIZE // 8)
    return Noise(SEED).draw(torch.empty(shape))[0]


def test_text_to_video_matches_hunyuan_video_pipeline(manager: ModelManager, hunyuan_dir: Path) -> None:
    pipeline = HunyuanVideoPipeline(
        text_encoder=None,
        tokenizer=None,
        transformer=tiny_hunyuan_transformer("t2v"),  # plain blocks; our file loads with token-replace blocks
        vae=tiny_hunyuan_vae(),
        scheduler=FlowMatchEulerDiscreteScheduler(shift=DEFAULT_SHIFT),
        text_encoder_2=None,
        tokenizer_2=None,
    )
    reference = pipeline(
        **_pipeline_prompts(),
        height=SIZE,
        width=SIZE,
        num_frames=FRAMES,
        num_inference_steps=STEPS,
        true_cfg_scale=CFG,
        guidance_scale=GUIDANCE,
        generator=torch.Generator().manual_seed(SEED),
        output_type="pt",
    ).frames
    latent = torch.zeros(1, 16, LATENT_FRAMES, SIZE // 8, SIZE // 8)
    ours = _decoded(_vae(hunyuan_dir), _ours(manager, hunyuan_dir, "hunyuan_video_t2v_720p_bf16", latent))
    assert ours.shape == reference.shape == (1, FRAMES, 3, SIZE, SIZE)
    difference = (ours - reference).abs().max().item()
    assert difference < 1e-4, difference
    assert ours.std() > 0.01


def _image_pipeline(variant: str) -> HunyuanVideoImageToVideoPipeline:
    return HunyuanVideoImageToVideoPipeline(
        text_encoder=None,
        tokenizer=None,
        transformer=tiny_hunyuan_transformer(variant),
        vae=tiny_hunyuan_vae(),
        scheduler=FlowMatchEulerDiscreteScheduler(shift=DEFAULT_SHIFT),
        text_encoder_2=None,
        tokenizer_2=None,
        image_processor=None,
    )


def _start_image() -> Image.Image:
    pixels = np.random.default_rng(5).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def _image_latent(pipeline: HunyuanVideoImageToVideoPipeline, image: Image.Image) -> torch.Tensor:
    """The raw VAE latent ``[1, 16, 1, h, w]`` of the start image, preprocessed as the pipeline does."""
    pixels = pipeline.video_processor.preprocess(image, SIZE, SIZE).unsqueeze(2)
    with torch.no_grad():
        return HUNYUAN_VAES.codec.encode(pipeline.vae, pixels)


def _pipeline_start(image_latent: torch.Tensor) -> torch.Tensor:
    """Latents that ``prepare_latents``' mix with the image latent turns into our initial noise."""
    t = torch.tensor([PIPELINE_MIX])
    mixed_in = (image_latent * SCALING_FACTOR).repeat(1, 1, LATENT_FRAMES, 1, 1)
    return (_noise() - mixed_in * (1 - t)) / t


def _run_image_pipeline(
    pipeline: HunyuanVideoImageToVideoPipeline, image: Image.Image, start: torch.Tensor
) -> torch.Tensor:
    return pipeline(
        image=image,
        **_pipeline_prompts(),
        height=SIZE,
        width=SIZE,
        num_frames=FRAMES,
        num_inference_steps=STEPS,
        true_cfg_scale=CFG,
        guidance_scale=GUIDANCE,
        latents=start,
        generator=torch.Generator().manual_seed(SEED),
        output_type="pt",
    ).frames


def test_concat_image_to_video_matches_the_latent_concat_pipeline(manager: ModelManager, hunyuan_dir: Path) -> None:
    """HunyuanImageToVideo "v1 (concat)": the image latent and a mask keeping its frame go to the network."""
    pipeline, image = _image_pipeline("i2v_concat"), _start_image()
    image_latent = _image_latent(pipeline, image)
    reference = _run_image_pipeline(pipeline, image, _pipeline_start(image_latent))
    mask = torch.ones(1, 1, LATENT_FRAMES, SIZE // 8, SIZE // 8)
    mask[:, :, 0] = 0
    latent = torch.zeros(1, 16, LATENT_FRAMES, SIZE // 8, SIZE // 8)
    raw = _ours(
        manager,
        hunyuan_dir,
        "hunyuan_video_image_to_video_720p_bf16",
        latent,
        concat_latent_image=image_latent,
        concat_mask=mask,
    )
    ours = _decoded(_vae(hunyuan_dir), raw)[:, 4:]  # the pipeline drops the first four frames
    assert ours.shape == reference.shape == (1, FRAMES - 4, 3, SIZE, SIZE)
    difference = (ours - reference).abs().max().item()
    assert difference < 1e-4, difference


def test_replace_image_to_video_matches_the_token_replace_pipeline(manager: ModelManager, hunyuan_dir: Path) -> None:
    """HunyuanImageToVideo "v2 (replace)": the image latent in the first frame, kept by a noise mask, its tokens
    modulated as at timestep 0 (``guiding_frame_index``)."""
    pipeline, image = _image_pipeline("i2v_replace"), _start_image()
    image_latent = _image_latent(pipeline, image)
    reference = _run_image_pipeline(pipeline, image, _pipeline_start(image_latent))
    latent = torch.zeros(1, 16, LATENT_FRAMES, SIZE // 8, SIZE // 8)
    latent[:, :, :1] = image_latent
    noise_mask = torch.ones(1, 1, LATENT_FRAMES, SIZE // 8, SIZE // 8)
    noise_mask[:, :, 0] = 0
    raw = _ours(
        manager,
        hunyuan_dir,
        "hunyuan_video_v2_replace_image_to_video_720p_bf16",
        latent,
        noise_mask,
        guiding_frame_index=0,
    )
    ours = _decoded(_vae(hunyuan_dir), raw)
    assert ours.shape == reference.shape == (1, FRAMES, 3, SIZE, SIZE)
    difference = (ours - reference).abs().max().item()
    assert difference < 1e-4, difference
