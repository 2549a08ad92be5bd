"""AnimateDiff SparseCtrl at the node level: ControlNetLoader (a SparseCtrl file) + SparseCtrlApply (or
ControlNetApplyAdvanced) on the AnimateDiff chain reproduce ``AnimateDiffSparseControlNetPipeline`` for the same tiny
files, key pictures, frame indices, prompts and seed, in float32; and the errors naming node and input.

The pipeline encodes the RGB SparseCtrl's pictures with a sample of the VAE's posterior, ours with its mode; the test
narrows the tiny VAE's posterior (its log-variance bias lowered to the clamp) so that both are the same latents."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest
import torch
from diffusers import AnimateDiffSparseControlNetPipeline

from models.families.animatediff.motion_model import read_motion_module
from models.model_loaders import WrongModelKindError
from models.tiny.sparsectrl import RGB_FILE, SCRIBBLE_FILE
from nodes.controlnet import ControlNetApplyAdvanced, ControlNetLoader, SparseCtrlApply
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

LOGVAR_CLAMP_SHIFT = 60.0  # moves the posterior's log-variance below diffusers' clamp (-30): std 3e-7


def _narrow_posterior(vae: Any) -> None:
    with vae.handle.use() as autoencoder, torch.no_grad():
        channels = autoencoder.config.latent_channels
        autoencoder.quant_conv.bias[channels:] -= LOGVAR_CLAMP_SHIFT


@contextmanager
def _pipeline(model: Any, clip: Any, vae: Any, control_net: Any) -> Iterator[AnimateDiffSparseControlNetPipeline]:
    with ExitStack() as stack:
        pipeline = AnimateDiffSparseControlNetPipeline(
            vae=stack.enter_context(vae.handle.use()),
            text_encoder=stack.enter_context(clip.handles[0].use()),
            tokenizer=clip.tokenizers[0],
            unet=stack.enter_context(model.handle.use()),
            motion_adapter=None,
            controlnet=stack.enter_context(control_net.handle.use()),
            scheduler=pipeline_scheduler(),
        )
        pipeline.set_progress_bar_config(disable=True)
        yield pipeline


@pytest.mark.parametrize(
    ("file", "count", "indices", "expected_frames", "strength"),
    [
        (SCRIBBLE_FILE, 2, "0, -1", [0, LENGTH - 1], 1.0),
        (RGB_FILE, 1, "", [0], 0.8),
        (RGB_FILE, 3, "1,3,4", [1, 3, 4], 1.2),
    ],
    ids=["scribble-first-last", "rgb-first-frame", "rgb-three-frames"],
)
def test_sparsectrl_matches_animatediff_sparse_controlnet_pipeline(
    runner: NodeRunner, file: str, count: int, indices: str, expected_frames: list[int], strength: float
) -> None:
    model, clip, vae, positive, negative = loaded_chain(runner)
    _narrow_posterior(vae)
    uncontrolled = sampled(runner, model, vae, positive, negative)
    pictures = random_pictures(count, 1)
    (control_net,) = runner.call(ControlNetLoader, control_net_name=file)
    assert control_net.sparse
    controlled = runner.call(
        SparseCtrlApply,
        positive=positive,
        negative=negative,
        control_net=control_net,
        image=pictures,
        strength=strength,
        start_percent=0.0,
        end_percent=1.0,
        frame_indices=indices,
        vae=vae,
    )
    ours = sampled(runner, model, vae, *controlled)
    inputs = fidelity.pipeline_inputs(
        PROMPT, NEGATIVE, height=SIZE, width=SIZE, frames=LENGTH, steps=STEPS, guidance=CFG, seed=SEED
    )
    with _pipeline(model, clip, vae, control_net) as pipeline:
        output = pipeline(
            **inputs,
            conditioning_frames=list(pictures.movedim(-1, 1).split(1)),  # one [1, 3, H, W] per picture
            controlnet_frame_indices=expected_frames,
            controlnet_conditioning_scale=strength,
        )
    difference = fidelity.max_difference(ours, fidelity.pipeline_frames(output.frames))
    print(f"sparsectrl {file} frames {expected_frames}: max difference {difference:.3g}")
    assert difference < 1e-4, difference
    assert (ours - uncontrolled).abs().max() > 1e-2  # the control shows


def test_apply_controlnet_spreads_a_sparsectrl_and_equals_explicit_indices(runner: NodeRunner) -> None:
    model, _clip, vae, positive, negative = loaded_chain(runner)
    (control_net,) = runner.call(ControlNetLoader, control_net_name=SCRIBBLE_FILE)
    pictures = random_pictures(3, 4)
    common = {"control_net": control_net, "image": pictures, "strength": 1.0, "start_percent": 0.0}
    spread = runner.call(ControlNetApplyAdvanced, positive=positive, negative=negative, end_percent=1.0, **common)
    explicit = runner.call(
        SparseCtrlApply, positive=positive, negative=negative, end_percent=1.0, frame_indices="0, 2, 5", **common
    )
    assert torch.allclose(sampled(runner, model, vae, *spread), sampled(runner, model, vae, *explicit), atol=1e-6)


def _apply_sparse(runner: NodeRunner, positive: Any, negative: Any, file: str, **options: Any) -> tuple[Any, Any]:
    (control_net,) = runner.call(ControlNetLoader, control_net_name=file)
    settings = {"image": random_pictures(2, 1), "strength": 1.0, "start_percent": 0.0, "end_percent": 1.0, **options}
    settings.setdefault("frame_indices", "")
    return runner.call(SparseCtrlApply, positive=positive, negative=negative, control_net=control_net, **settings)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, r"SparseCtrlApply: vae: v3_sd15_sparsectrl_rgb.ckpt: .* is conditioned on latents: connect the video"),
        ({"frame_indices": "0, x"}, r"SparseCtrlApply: frame_indices: '0, x' is not a comma-separated list"),
        ({"frame_indices": "0, 1, 2"}, r"SparseCtrlApply: frame_indices: 3 frame indices for 2 pictures"),
    ],
)
def test_bad_sparsectrl_inputs_name_the_node_and_input(runner: NodeRunner, options: dict, message: str) -> None:
    _model, _clip, _vae, positive, negative = loaded_chain(runner, motion=False)
    with pytest.raises(ValueError, match=message):
        _apply_sparse(runner, positive, negative, RGB_FILE, **options)


@pytest.mark.parametrize(
    ("frame_indices", "message"),
    [
        ("0, 6", r"positive: SparseCtrlApply: frame_indices: \[6\] outside the latent's frames 0..5"),
        ("-1, 5", r"positive: SparseCtrlApply: frame_indices: \[5, 5\] condition a frame twice"),
    ],
)
def test_frames_outside_the_video_are_refused_before_sampling(
    runner: NodeRunner, frame_indices: str, message: str
) -> None:
    model, _clip, vae, positive, negative = loaded_chain(runner)
    controlled = _apply_sparse(runner, positive, negative, SCRIBBLE_FILE, frame_indices=frame_indices)
    with pytest.raises(ValueError, match=message):
        sampled(runner, model, vae, *controlled)
    assert runner.progress == []


def test_a_sparsectrl_needs_the_motion_modules(runner: NodeRunner) -> None:
    model, _clip, vae, positive, negative = loaded_chain(runner, motion=False)
    controlled = _apply_sparse(runner, positive, negative, SCRIBBLE_FILE)
    with pytest.raises(ValueError, match=r"SparseCtrlApply: control_net: .*apply an AnimateDiff motion module first"):
        sampled(runner, model, vae, *controlled)


def test_a_plain_controlnet_is_refused_by_sparsectrl_apply(runner: NodeRunner) -> None:
    _model, _clip, _vae, positive, negative = loaded_chain(runner, motion=False)
    with pytest.raises(ValueError, match=r"SparseCtrlApply: control_net: .* is no SparseCtrl: use Apply ControlNet"):
        _apply_sparse(runner, positive, negative, "control_v11p_sd15_openpose_fp16.safetensors")


def test_the_motion_module_loader_refuses_a_sparsectrl(tiny_models_dir: Path) -> None:
    path = tiny_models_dir / "controlnet" / SCRIBBLE_FILE
    with pytest.raises(WrongModelKindError, match=r"AnimateDiff SparseCtrl: load it with ControlNetLoader"):
        read_motion_module(path)
