"""Fidelity to diffusers at the node level: CheckpointLoaderSimple (an SD1.5 checkpoint) + AnimateDiffLoader +
AnimateDiffApply + CLIPTextEncode x2 + EmptyAnimateDiffLatent + KSampler (euler, simple) + VAEDecode reproduce
``AnimateDiffPipeline``'s frames for the same tiny files, prompts and seed, in float32.

ComfyUI's ``simple`` schedule over the 1000 training sigmas takes timesteps 999, 749, 499, 249 for 4 steps, exactly
diffusers' ``EulerDiscreteScheduler`` with ``timestep_spacing="trailing"`` (whose first noise scale is then the top
sigma, as our sampler's)."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from diffusers import AnimateDiffPipeline, EulerDiscreteScheduler

from nodes.animatediff import AnimateDiffApply, AnimateDiffLoader, AnimateDiffMotionLoRA, EmptyAnimateDiffLatent
from nodes.conditioning import CLIPTextEncode
from nodes.loaders import CheckpointLoaderSimple
from nodes.sampling import KSampler
from nodes.vae import VAEDecode
from tests.nodes.node_runner import NodeRunner

CHECKPOINT = "v1-5-pruned-emaonly-fp16.safetensors"
PROMPT = "a red car on the beach in snow"
NEGATIVE = "a dog"
SEED, STEPS, CFG = 42, 4, 7.5
SIZE = 32


def _scheduler() -> EulerDiscreteScheduler:
    return EulerDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", timestep_spacing="trailing"
    )


def _ours(runner: NodeRunner, motion_module: str, length: int, **apply: Any) -> tuple[torch.Tensor, Any, Any, Any]:
    model, clip, vae = runner.call(CheckpointLoaderSimple, ckpt_name=CHECKPOINT)
    (motion,) = runner.call(AnimateDiffLoader, model_name=motion_module)
    if "lora" in apply:
        (motion,) = runner.call(AnimateDiffMotionLoRA, motion_model=motion, lora_name=apply.pop("lora"), strength=0.8)
    (model,) = runner.call(AnimateDiffApply, model=model, motion_model=motion, **apply)
    (positive,) = runner.call(CLIPTextEncode, clip=clip, text=PROMPT)
    (negative,) = runner.call(CLIPTextEncode, clip=clip, text=NEGATIVE)
    (latent,) = runner.call(EmptyAnimateDiffLatent, width=SIZE, height=SIZE, length=length, batch_size=1)
    (output,) = runner.result(
        KSampler,
        model=model,
        seed=SEED,
        steps=STEPS,
        cfg=CFG,
        sampler_name="euler",
        scheduler="simple",
        positive=positive,
        negative=negative,
        latent_image=latent,
        denoise=1.0,
    )
    (frames,) = runner.call(VAEDecode, samples=output, vae=vae)
    return frames, model, clip, vae


def _reference(model: Any, clip: Any, vae: Any, length: int) -> torch.Tensor:
    with model.handle.use() as unet, clip.handles[0].use() as encoder, vae.handle.use() as autoencoder:
        pipeline = AnimateDiffPipeline(
            vae=autoencoder,
            text_encoder=encoder,
            tokenizer=clip.tokenizers[0],
            unet=unet,
            motion_adapter=None,
            scheduler=_scheduler(),
        )
        pipeline.set_progress_bar_config(disable=True)
        return pipeline(
            prompt=PROMPT,
            negative_prompt=NEGATIVE,
            height=SIZE,
            width=SIZE,
            num_frames=length,
            num_inference_steps=STEPS,
            guidance_scale=CFG,
            generator=torch.Generator().manual_seed(SEED),
            output_type="pt",
        ).frames[0]  # [F, C, H, W] in 0..1


@pytest.mark.parametrize(
    ("motion_module", "length", "apply"),
    [
        ("mm_sd_v15_v2.ckpt", 8, {}),
        ("mm_sd_v15.ckpt", 5, {}),
        ("mm_sd_v15_v2.ckpt", 6, {"lora": "v2_lora_ZoomIn.ckpt"}),
    ],
    ids=["v2", "v1", "v2+motion-lora"],
)
def test_text_to_video_matches_animatediff_pipeline(
    runner: NodeRunner, motion_module: str, length: int, apply: dict[str, Any]
) -> None:
    options = {"context_length": 0, "context_stride": 4, "context_weighting": "pyramid", **apply}
    ours, model, clip, vae = _ours(runner, motion_module, length, **options)
    assert ours.shape == (length, SIZE, SIZE, 3)
    assert runner.progress[-1] == (STEPS, STEPS)
    reference = _reference(model, clip, vae, length)
    difference = (ours - reference.permute(0, 2, 3, 1).float()).abs().max().item()
    print(f"animatediff {motion_module} {apply} {length} frames max difference {difference:.3g}")
    assert difference < 1e-4, difference
    assert ours.std() > 0.01
    assert (ours[1:] - ours[:-1]).abs().max() > 1e-3  # frames differ: the motion modules take part
