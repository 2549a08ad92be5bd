"""ControlNets on AnimateDiff at the node level: CheckpointLoaderSimple + AnimateDiffLoader + AnimateDiffApply +
CLIPTextEncode x2 + ControlNetLoader + ControlNetApplyAdvanced (chained for two) + EmptyAnimateDiffLatent + KSampler
(euler, simple) + VAEDecode reproduce ``AnimateDiffControlNetPipeline`` for the same tiny files, control frames,
prompts and seed, in float32; the SD1.5 checkpoint alone (one frame) reproduces ``StableDiffusionControlNetPipeline``.

ComfyUI's start/end percents pick steps by sigma and diffusers' ``control_guidance_start``/``_end`` by step index; on
the 4-step ``simple`` schedule (timesteps 999, 749, 499, 249) the windows tested select the same steps in both."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any

import pytest
import torch
from diffusers import AnimateDiffControlNetPipeline, StableDiffusionControlNetPipeline
from diffusers.models.controlnets.multicontrolnet import MultiControlNetModel

from models.guidance import Conditioning
from models.tiny.controlnet import DIFFUSERS_FILE, LDM_FILE
from nodes.animatediff import EmptyAnimateDiffLatent
from nodes.controlnet import ControlNetApplyAdvanced, ControlNetLoader
from tests.nodes import fidelity
from tests.nodes.animatediff.chain import (
    CFG,
    LENGTH,
    NEGATIVE,
    PROMPT,
    SEED,
    SIZE,
    STEPS,
    loaded_chain,
    pipeline_scheduler,
    random_pictures,
    sampled,
)
from tests.nodes.node_runner import NodeRunner


def _applied(
    runner: NodeRunner,
    positive: Conditioning,
    negative: Conditioning,
    file: str,
    image: torch.Tensor,
    strength: float,
    window: tuple[float, float],
) -> tuple[Any, Conditioning, Conditioning]:
    (control_net,) = runner.call(ControlNetLoader, control_net_name=file)
    positive, negative = runner.call(
        ControlNetApplyAdvanced,
        positive=positive,
        negative=negative,
        control_net=control_net,
        image=image,
        strength=strength,
        start_percent=window[0],
        end_percent=window[1],
    )
    return control_net, positive, negative


@contextmanager
def _pipeline(model: Any, clip: Any, vae: Any, control_nets: Sequence[Any]) -> Iterator[AnimateDiffControlNetPipeline]:
    """``AnimateDiffControlNetPipeline`` of the loaded parts (one ControlNet, or several as a MultiControlNetModel)."""
    with ExitStack() as stack:
        unet = stack.enter_context(model.handle.use())
        encoder = stack.enter_context(clip.handles[0].use())
        autoencoder = stack.enter_context(vae.handle.use())
        modules = [stack.enter_context(control_net.handle.use()) for control_net in control_nets]
        pipeline = AnimateDiffControlNetPipeline(
            vae=autoencoder,
            text_encoder=encoder,
            tokenizer=clip.tokenizers[0],
            unet=unet,
            motion_adapter=None,
            controlnet=modules[0] if len(modules) == 1 else MultiControlNetModel(modules),
            scheduler=pipeline_scheduler(),
        )
        pipeline.set_progress_bar_config(disable=True)
        yield pipeline


def _pipeline_video(image: torch.Tensor) -> list[torch.Tensor]:
    """IMAGE frames as the pipeline's conditioning frames (channels first, one per video frame)."""
    frames = image.expand(LENGTH, -1, -1, -1) if image.shape[0] == 1 else image
    return list(frames.movedim(-1, 1))


def _reference(model: Any, clip: Any, vae: Any, controls: Sequence[tuple[Any, torch.Tensor, float, tuple]]) -> Any:
    control_nets = [control[0] for control in controls]
    inputs = fidelity.pipeline_inputs(
        PROMPT, NEGATIVE, height=SIZE, width=SIZE, frames=LENGTH, steps=STEPS, guidance=CFG, seed=SEED
    )
    videos = [_pipeline_video(control[1]) for control in controls]
    single = len(controls) == 1
    with _pipeline(model, clip, vae, control_nets) as pipeline:
        output = pipeline(
            **inputs,
            conditioning_frames=videos[0] if single else videos,
            controlnet_conditioning_scale=controls[0][2] if single else [control[2] for control in controls],
            control_guidance_start=[control[3][0] for control in controls],
            control_guidance_end=[control[3][1] for control in controls],
        )
    return fidelity.pipeline_frames(output.frames)


@pytest.mark.parametrize(
    ("file", "frames", "strength", "window"),
    [
        (LDM_FILE, LENGTH, 1.0, (0.0, 1.0)),
        (DIFFUSERS_FILE, 1, 0.7, (0.0, 0.5)),
        (LDM_FILE, LENGTH, 1.3, (0.25, 0.75)),
    ],
    ids=["per-frame", "one-picture-first-half", "middle-steps"],
)
def test_controlnet_matches_animatediff_controlnet_pipeline(
    runner: NodeRunner, file: str, frames: int, strength: float, window: tuple[float, float]
) -> None:
    model, clip, vae, positive, negative = loaded_chain(runner)
    uncontrolled = sampled(runner, model, vae, positive, negative)
    image = random_pictures(frames, 1)
    control_net, positive, negative = _applied(runner, positive, negative, file, image, strength, window)
    ours = sampled(runner, model, vae, positive, negative)
    reference = _reference(model, clip, vae, [(control_net, image, strength, window)])
    difference = fidelity.max_difference(ours, reference)
    print(f"controlnet {file} {frames} frames strength {strength} window {window}: max difference {difference:.3g}")
    assert difference < 1e-4, difference
    assert (ours - uncontrolled).abs().max() > 1e-2  # the control shows


def test_chained_controlnets_match_multicontrolnet(runner: NodeRunner) -> None:
    model, clip, vae, positive, negative = loaded_chain(runner)
    first, second = random_pictures(LENGTH, 2), random_pictures(LENGTH, 3)
    controls = []
    for file, image, strength, window in (
        (LDM_FILE, first, 0.6, (0.0, 1.0)),
        (DIFFUSERS_FILE, second, 0.9, (0.5, 1.0)),
    ):
        control_net, positive, negative = _applied(runner, positive, negative, file, image, strength, window)
        controls.append((control_net, image, strength, window))
    ours = sampled(runner, model, vae, positive, negative)
    reference = _reference(model, clip, vae, controls)
    difference = fidelity.max_difference(ours, reference)
    print(f"two chained controlnets: max difference {difference:.3g}")
    assert difference < 1e-4, difference


def test_controlnet_on_sd15_matches_stable_diffusion_controlnet_pipeline(runner: NodeRunner) -> None:
    """A picture (one latent frame) from the SD1.5 checkpoint alone, with a ControlNet and half the sampling."""
    model, clip, vae, positive, negative = loaded_chain(runner, motion=False)
    image = random_pictures(1, 5)
    control_net, positive, negative = _applied(runner, positive, negative, LDM_FILE, image, 0.9, (0.0, 0.5))
    (latent,) = runner.call(EmptyAnimateDiffLatent, width=SIZE, height=SIZE, length=1, batch_size=1)
    output = fidelity.ksample(runner, model, positive, negative, latent, seed=SEED, steps=STEPS, cfg=CFG)
    ours = fidelity.decoded(runner, output, vae)
    inputs = fidelity.pipeline_inputs(
        PROMPT, NEGATIVE, height=SIZE, width=SIZE, frames=1, steps=STEPS, guidance=CFG, seed=SEED
    )
    del inputs["num_frames"]
    with ExitStack() as stack:
        pipeline = StableDiffusionControlNetPipeline(
            vae=stack.enter_context(vae.handle.use()),
            text_encoder=stack.enter_context(clip.handles[0].use()),
            tokenizer=clip.tokenizers[0],
            unet=stack.enter_context(model.handle.use()),
            controlnet=stack.enter_context(control_net.handle.use()),
            scheduler=pipeline_scheduler(),
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
        pipeline.set_progress_bar_config(disable=True)
        reference = pipeline(
            **inputs,
            image=image.movedim(-1, 1),
            controlnet_conditioning_scale=0.9,
            control_guidance_start=0.0,
            control_guidance_end=0.5,
        ).images
    difference = fidelity.max_difference(ours, reference.permute(0, 2, 3, 1).float())
    print(f"controlnet on SD1.5: max difference {difference:.3g}")
    assert difference < 1e-4, difference
