"""The shared steps of the node-level fidelity tests (tests/nodes/<family>/, and other model-node tests running the
same chain): the nodes' prompt encoding, sampling and decoding, a random start picture, and the diffusers pipeline's
common call inputs and its frames in ``IMAGE`` layout."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from models.diffusion_model import DiffusionModel
from models.encoders import TextEncoder
from models.guidance import Conditioning
from models.video_vae import VideoVAE
from nodes.conditioning import CLIPTextEncode
from nodes.sampling import KSampler, SamplerCustom
from nodes.sampling_parts import KSamplerSelect
from nodes.vae import VAEDecode
from tests.nodes.node_runner import NodeRunner

Latent = dict[str, Any]


def encode_prompts(
    runner: NodeRunner, clip: TextEncoder, prompt: str, negative_prompt: str
) -> tuple[Conditioning, Conditioning]:
    """The positive and negative conditioning: ``CLIPTextEncode`` of ``prompt`` and of ``negative_prompt``."""
    (positive,) = runner.call(CLIPTextEncode, clip=clip, text=prompt)
    (negative,) = runner.call(CLIPTextEncode, clip=clip, text=negative_prompt)
    return positive, negative


def sample_custom(
    runner: NodeRunner,
    model: DiffusionModel,
    positive: Conditioning,
    negative: Conditioning,
    latent: Latent,
    sigmas: torch.Tensor,
    *,
    seed: int,
    cfg: float,
) -> Latent:
    """``KSamplerSelect`` (euler) + ``SamplerCustom`` (noise added from ``seed``) over ``sigmas``: the sampled
    LATENT."""
    (sampler,) = runner.call(KSamplerSelect, sampler_name="euler")
    output, _ = runner.result(
        SamplerCustom,
        model=model,
        add_noise=True,
        noise_seed=seed,
        cfg=cfg,
        positive=positive,
        negative=negative,
        sampler=sampler,
        sigmas=sigmas,
        latent_image=latent,
    )
    return output


def ksample(
    runner: NodeRunner,
    model: DiffusionModel,
    positive: Conditioning,
    negative: Conditioning,
    latent: Latent,
    *,
    seed: int,
    steps: int,
    cfg: float,
) -> Latent:
    """``KSampler`` with euler over the ``simple`` schedule at full denoise: the sampled LATENT."""
    (output,) = runner.result(
        KSampler,
        model=model,
        seed=seed,
        steps=steps,
        cfg=cfg,
        sampler_name="euler",
        scheduler="simple",
        positive=positive,
        negative=negative,
        latent_image=latent,
        denoise=1.0,
    )
    return output


def decoded(runner: NodeRunner, latent: Latent, vae: VideoVAE) -> torch.Tensor:
    """``VAEDecode``'s IMAGE frames ``[F, H, W, C]`` of ``latent``."""
    (frames,) = runner.call(VAEDecode, samples=latent, vae=vae)
    return frames


def random_picture(seed: int, size: int) -> tuple[np.ndarray, torch.Tensor]:
    """A random ``size`` x ``size`` RGB picture: its uint8 pixels (for the pipeline's PIL image) and the same as an
    IMAGE batch ``[1, H, W, 3]`` in 0..1 (for the nodes)."""
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    return pixels, torch.from_numpy(pixels).float().div(255.0).unsqueeze(0)


def pipeline_inputs(
    prompt: str, negative_prompt: str, *, height: int, width: int, frames: int, steps: int, guidance: float, seed: int
) -> dict[str, Any]:
    """A diffusers video pipeline's common call arguments: prompts, size, frames, steps, ``guidance_scale``, a
    generator seeded with ``seed`` and ``output_type="pt"``."""
    return {
        "prompt": prompt,
        "negative_prompt": negative_prompt,
        "height": height,
        "width": width,
        "num_frames": frames,
        "num_inference_steps": steps,
        "guidance_scale": guidance,
        "generator": torch.Generator().manual_seed(seed),
        "output_type": "pt",
    }


def pipeline_frames(video: torch.Tensor) -> torch.Tensor:
    """diffusers' ``output_type="pt"`` video ``[1, F, C, H, W]`` as float ``IMAGE`` frames ``[F, H, W, C]``."""
    return video[0].permute(0, 2, 3, 1).float()


def max_difference(ours: torch.Tensor, reference: torch.Tensor) -> float:
    """The largest absolute difference between two frame tensors of the same shape."""
    if ours.shape != reference.shape:
        raise AssertionError(f"shapes differ: ours {tuple(ours.shape)}, the reference's {tuple(reference.shape)}")
    return (ours - reference).abs().max().item()
