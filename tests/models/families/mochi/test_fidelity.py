"""Fidelity to diffusers at the adapter level: ``sample_latent`` with ``MochiAdapter`` (euler over ``mochi_sigmas``,
classifier-free guidance, the same seed) then the VAE's decode reproduces ``MochiPipeline``'s frames for the same
tiny networks and prompt embeddings, in float32."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler, MochiPipeline

from models.devices import DeviceProbe
from models.diffusion_model import DiffusionModel
from models.families.mochi.adapter import MochiAdapter
from models.families.mochi.checkpoint import mochi_spec_from_config
from models.families.mochi.family import MOCHI_VAES
from models.families.mochi.schedule import mochi_sigmas
from models.generate import sample_latent
from models.guidance import Guider
from models.memory import MemoryConfig, ModelManager
from models.noise import Noise
from models.sampling.samplers import get_sampler
from models.tiny.mochi import TINY_TEXT_DIM, tiny_mochi_transformer, tiny_mochi_vae

SEED, STEPS, CFG = 7, 4, 4.5
WIDTH = HEIGHT = 64
TOKENS = 16


@pytest.fixture
def manager() -> Iterator[ModelManager]:
    manager = ModelManager(MemoryConfig(mode="cpu"), DeviceProbe())
    yield manager
    manager.free()


def _prompt(seed: int, real_tokens: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random T5-like embeddings ``[1, TOKENS, TINY_TEXT_DIM]`` and their mask, ``real_tokens`` real then padding."""
    embeds = torch.randn(1, TOKENS, TINY_TEXT_DIM, generator=torch.Generator().manual_seed(seed))
    mask = torch.zeros(1, TOKENS, dtype=torch.long)
    mask[:, :real_tokens] = 1
    return embeds, mask


@pytest.mark.parametrize("frames", [7, 13])
def test_frames_match_mochi_pipeline(manager: ModelManager, frames: int) -> None:
    transformer, vae = tiny_mochi_transformer(), tiny_mochi_vae()
    positive, positive_mask = _prompt(1, 5)
    negative, negative_mask = _prompt(2, 3)

    pipeline = MochiPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(invert_sigmas=True),  # genmo/mochi-1-preview's scheduler config
        vae=vae,
        text_encoder=None,
        tokenizer=None,
        transformer=transformer,
    )
    reference = pipeline(
        prompt_embeds=positive,
        prompt_attention_mask=positive_mask,
        negative_prompt_embeds=negative,
        negative_prompt_attention_mask=negative_mask,
        height=HEIGHT,
        width=WIDTH,
        num_frames=frames,
        num_inference_steps=STEPS,
        guidance_scale=CFG,
        generator=torch.Generator().manual_seed(SEED),
        output_type="pt",
    ).frames[0]  # [F, C, H, W] in 0..1

    adapter = MochiAdapter(mochi_spec_from_config(transformer.config))
    handle = manager.load("tiny-mochi", lambda: transformer)
    model = DiffusionModel("tiny mochi", handle, adapter, adapter.default_sampling(), torch.float32)
    guider = Guider(
        model,
        positive=[[positive, {"attention_mask": positive_mask}]],
        negative=[[negative, {"attention_mask": negative_mask}]],
        cfg=CFG,
    )
    fmt = adapter.latent_format
    latent = torch.zeros(1, fmt.channels, fmt.latent_frames(frames), HEIGHT // 8, WIDTH // 8)
    result = sample_latent(manager, guider, get_sampler("euler"), mochi_sigmas(STEPS), latent, Noise(SEED))
    with torch.no_grad():
        video = MOCHI_VAES.codec.decode(vae, result.samples)  # [1, 3, F, H, W] in -1..1
    ours = (video[0] / 2 + 0.5).clamp(0, 1).transpose(0, 1)

    assert ours.shape == reference.shape == (frames, 3, HEIGHT, WIDTH)
    difference = (ours - reference).abs().max().item()
    assert difference < 1e-4, difference
    assert ours.std() > 0.01  # not a constant picture
