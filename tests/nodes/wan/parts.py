"""Loading a tiny Wan diffusion model with the tiny UMT5, Wan 2.1 VAE and CLIP vision, and a prompt's conditioning:
the common start of the Wan control-model tests."""

from __future__ import annotations

from typing import Any

from nodes.loaders import CLIPLoader, CLIPVisionLoader, UNETLoader, VAELoader
from tests.nodes import fidelity
from tests.nodes.node_runner import NodeRunner


def wan_parts(runner: NodeRunner, unet_name: str, prompt: str, negative_prompt: str = "blurry") -> tuple[Any, ...]:
    """``(model, vae, clip_vision, positive, negative)`` for the tiny file ``unet_name``."""
    (model,) = runner.call(UNETLoader, unet_name=unet_name, weight_dtype="default")
    (clip,) = runner.call(CLIPLoader, clip_name="umt5_xxl_fp16.safetensors", type="wan")
    (vae,) = runner.call(VAELoader, vae_name="wan_2.1_vae.safetensors")
    (clip_vision,) = runner.call(CLIPVisionLoader, clip_name="clip_vision_h.safetensors")
    positive, negative = fidelity.encode_prompts(runner, clip, prompt, negative_prompt)
    return model, vae, clip_vision, positive, negative
