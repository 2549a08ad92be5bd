"""Fidelity to diffusers at the adapter level: our generic sampling (``sample_latent`` with a CFG ``Guider``, euler,
the scheduler's own sigmas, the seed's noise) through ``LTXAdapter``, decoded by ``LtxvCodec``, reproduces
``LTXPipeline`` and ``LTXImageToVideoPipeline`` frames for the tiny models with the same prompt embeddings and
attention masks, in float32; ``upsample_latent`` reproduces ``LTXLatentUpsamplePipeline``."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler, LTXImageToVideoPipeline, LTXPipeline
from diffusers.pipelines.ltx.pipeline_ltx_latent_upsample import LTXLatentUpsamplePipeline

from models.devices import DeviceProbe
from models.diffusion_model import DiffusionModel
from models.families.ltx.adapter import LTXAdapter, pack_latent
from models.families.ltx.checkpoint import LtxTransformerSpec
from models.families.ltx.latents import LtxvCodec
from models.families.ltx.schedule import BASE_SHIFT, BASE_TOKENS, MAX_SHIFT, MAX_TOKENS, ltxv_mu, ltxv_sigmas
from models.families.ltx.upsampler import upsample_latent
from models.generate import sample_latent
from models.guidance import Guider
from models.memory import MemoryConfig, ModelManager
from models.noise import Noise
from models.sampling.samplers import get_sampler
from models.tiny.ltx import TINY_LTX_TRANSFORMER_CONFIG, tiny_ltx_transformer, tiny_ltx_upsampler, tiny_ltx_vae

SEED, STEPS, CFG = 42, 4, 3.0
SIZE, FRAMES = 96, 9
TEXT_TOKENS = 128  # LTXPipeline's max_sequence_length
LATENT_SHAPE = (1, 128, 2, 3, 3)


def ltx_scheduler() -> FlowMatchEulerDiscreteScheduler:
    """The scheduler config of the LTX-Video releases (dynamic exponential shift, terminal 0.1)."""
    return FlowMatchEulerDiscreteScheduler(
        use_dynamic_shifting=True,
        base_shift=BASE_SHIFT,
        max_shift=MAX_SHIFT,
        base_image_seq_len=BASE_TOKENS,
        max_image_seq_len=MAX_TOKENS,
        shift_terminal=0.1,
    )


def pipeline_sigmas(tokens: int) -> torch.Tensor:
    """The sigmas ``LTXPipeline`` sets for ``tokens`` latent tokens."""
    scheduler = ltx_scheduler()
    scheduler.set_timesteps(sigmas=np.linspace(1.0, 1 / STEPS, STEPS), mu=ltxv_mu(tokens))
    return scheduler.sigmas.float()


def prompt(seed: int, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random T5-like embeddings ``[1, 128, 32]`` and a mask with ``length`` real tokens."""
    generator = torch.Generator().manual_seed(seed)
    embeds = torch.randn(1, TEXT_TOKENS, TINY_LTX_TRANSFORMER_CONFIG["caption_channels"], generator=generator)
    mask = torch.zeros(1, TEXT_TOKENS)
    mask[:, :length] = 1.0
    return embeds, mask


@pytest.fixture(scope="module")
def models() -> tuple[torch.nn.Module, torch.nn.Module]:
    return tiny_ltx_transformer(), tiny_ltx_vae()


@pytest.fixture
def manager() -> Iterator[ModelManager]:
    manager = ModelManager(MemoryConfig(mode="cpu"), DeviceProbe())
    yield manager
    manager.free()


def ours(
    manager: ModelManager,
    transformer: torch.nn.Module,
    vae: torch.nn.Module,
    latent: torch.Tensor,
    noise_mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Our sampled latent and frames ``[1, 3, N, H, W]`` in 0..1 for the prompts of ``prompt(1|2)``."""
    (positive, positive_mask), (negative, negative_mask) = prompt(1, 7), prompt(2, 3)
    handle = manager.load("ltx-transformer", lambda: transformer)
    adapter = LTXAdapter(LtxTransformerSpec(transformer.config))
    model = DiffusionModel("tiny ltx", handle, adapter, adapter.default_sampling(), torch.float32)
    guider = Guider(
        model,
        [[positive, {"attention_mask": positive_mask, "frame_rate": 25.0}]],
        [[negative, {"attention_mask": negative_mask}]],
        CFG,
    )
    tokens = latent.shape[2] * latent.shape[3] * latent.shape[4]
    sigmas = pipeline_sigmas(tokens)
    assert (sigmas - ltxv_sigmas(STEPS, tokens=tokens)).abs().max() < 1e-6  # LTXVScheduler gives the same
    result = sample_latent(
        manager, guider, get_sampler("euler"), sigmas, latent, Noise(SEED), noise_mask=noise_mask
    ).samples
    with torch.no_grad():
        video = LtxvCodec().decode(vae, result)
    return result, (video / 2 + 0.5).clamp(0, 1)


def reference_kwargs() -> dict:
    (positive, positive_mask), (negative, negative_mask) = prompt(1, 7), prompt(2, 3)
    return {
        "prompt_embeds": positive,
        "prompt_attention_mask": positive_mask,
        "negative_prompt_embeds": negative,
        "negative_prompt_attention_mask": negative_mask,
        "height": SIZE,
        "width": SIZE,
        "num_frames": FRAMES,
        "num_inference_steps": STEPS,
        "guidance_scale": CFG,
        "generator": torch.Generator().manual_seed(SEED),
        "output_type": "pt",
    }


def test_text_to_video_matches_ltx_pipeline(models, manager: ModelManager) -> None:
    transformer, vae = models
    _, frames = ours(manager, transformer, vae, torch.zeros(LATENT_SHAPE))

    pipeline = LTXPipeline(ltx_scheduler(), vae, None, None, transformer)
    reference = pipeline(**reference_kwargs()).frames  # [1, N, 3, H, W]
    difference = (frames[0].transpose(0, 1) - reference[0]).abs().max().item()
    assert difference < 1e-4, difference
    assert frames.std() > 0.01  # not a constant picture


def test_image_to_video_matches_ltx_image_to_video_pipeline(models, manager: ModelManager) -> None:
    """``LTXVImgToVideo``'s latent: the first latent frame is the encoded (normalised) image with noise_mask 0;
    ``LTXImageToVideoPipeline`` keeps that frame clean with per-token timesteps 0. The pipeline is given the same
    starting latents (it samples the image posterior with its generator; our VAE encode takes the mode)."""
    transformer, vae = models
    image = torch.rand(1, 3, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(3)) * 2 - 1
    with torch.no_grad():
        encoded = LtxvCodec().encode(vae, image)
    latent = torch.zeros(LATENT_SHAPE)
    latent[:, :, :1] = encoded
    noise_mask = torch.ones(1, 1, *LATENT_SHAPE[2:])
    noise_mask[:, :, 0] = 0.0
    result, frames = ours(manager, transformer, vae, latent, noise_mask)

    noise = torch.randn(LATENT_SHAPE, generator=torch.Generator().manual_seed(SEED))
    start = torch.where(noise_mask == 0, latent, noise)
    pipeline = LTXImageToVideoPipeline(ltx_scheduler(), vae, None, None, transformer)
    reference = pipeline(image=(image[:, :, 0] + 1) / 2, latents=pack_latent(start), **reference_kwargs()).frames
    difference = (frames[0].transpose(0, 1) - reference[0]).abs().max().item()
    assert difference < 1e-4, difference
    assert torch.equal(result[:, :, :1], encoded)  # the kept frame is the image's latent


def test_upsample_latent_matches_latent_upsample_pipeline(models) -> None:
    _, vae = models
    upsampler = tiny_ltx_upsampler()
    latent = torch.randn(LATENT_SHAPE, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        result = upsample_latent(upsampler, vae, latent)
        pipeline = LTXLatentUpsamplePipeline(vae, upsampler)
        reference = pipeline(latents=latent, height=SIZE, width=SIZE, output_type="latent").frames
    assert result.shape == (1, 128, 2, 6, 6)
    assert (result - reference).abs().max().item() < 1e-5
