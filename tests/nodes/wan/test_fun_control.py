"""Wan Fun control: ``WanFunControlToVideo`` builds ComfyUI's 32-channel ``concat_latent_image`` (control video latent,
then start image latent, the latent space's zero elsewhere) and the Wan adapter feeds a 48-channel Fun control model
``[x, control, start]`` normalised; the tiny Fun control file samples end to end and follows its control video."""

from __future__ import annotations

import pytest
import torch

from models.families.base import LatentShapeError
from models.families.wan.adapter import WanAdapter
from nodes.conditioning import CLIPVisionEncode
from nodes.wan import WanFunControlToVideo, WanImageToVideo
from tests.nodes import fidelity
from tests.nodes.node_runner import NodeRunner
from tests.nodes.wan.parts import wan_parts

FUN_CONTROL_FILE = "wan2.1_fun_control_1.3B_bf16.safetensors"
SIZE, LENGTH, STEPS = 64, 9, 2


def _parts(runner: NodeRunner) -> tuple:
    return wan_parts(runner, FUN_CONTROL_FILE, "a robot dancing")


def _frames(count: int, seed: int) -> torch.Tensor:
    return torch.rand(count, SIZE, SIZE, 3, generator=torch.Generator().manual_seed(seed))


def test_the_tiny_file_is_a_fun_control_model(runner: NodeRunner) -> None:
    model, *_ = _parts(runner)
    assert isinstance(model.adapter, WanAdapter) and model.adapter.fun_control
    assert model.adapter.describe() == "Wan i2v, dim 256, 2 layers, in 48 channels"


def test_the_conditioning_holds_control_then_start_latents(runner: NodeRunner) -> None:
    _, vae, _, positive, negative = _parts(runner)
    control, start = _frames(LENGTH, 1), _frames(1, 2)
    common = {"positive": positive, "negative": negative, "vae": vae, "width": SIZE, "height": SIZE}
    positive_out, _, latent = runner.call(
        WanFunControlToVideo, **common, length=LENGTH, batch_size=2, start_image=start, control_video=control
    )
    concat = positive_out[0][1]["concat_latent_image"]
    assert concat.shape == (1, 32, 3, SIZE // 8, SIZE // 8) and latent["samples"].shape == (2, 16, 3, 8, 8)
    manager = runner.services["models"]
    torch.testing.assert_close(concat[:, :16], vae.encode(manager, control))
    torch.testing.assert_close(concat[:, 16:, :1], vae.encode(manager, start))
    zero = vae.latent_format.process_out(torch.zeros(1, 16, 2, 8, 8))
    torch.testing.assert_close(concat[:, 16:, 1:], zero)  # no start image there: the latent space's zero


def test_the_adapter_feeds_the_normalised_latents_after_x(runner: NodeRunner) -> None:
    model, vae, clip_vision, positive, negative = _parts(runner)
    (vision,) = runner.call(CLIPVisionEncode, clip_vision=clip_vision, image=_frames(1, 8), crop="center")
    common = {"positive": positive, "negative": negative, "vae": vae, "width": SIZE, "height": SIZE}
    positive_out, _, _ = runner.call(
        WanFunControlToVideo,
        **common,
        length=LENGTH,
        batch_size=1,
        clip_vision_output=vision,
        control_video=_frames(LENGTH, 3),
    )
    entry = (positive_out[0][0], positive_out[0][1])
    x = torch.randn(1, 16, 3, 8, 8)
    call = model.adapter.network_call(x, torch.tensor([500.0]), entry, torch.float32)
    hidden = call.per_sample["hidden_states"]
    raw = entry[1]["concat_latent_image"]
    fmt = vae.latent_format
    expected = torch.cat([x, fmt.process_in(raw[:, :16]), fmt.process_in(raw[:, 16:])], dim=1)
    torch.testing.assert_close(hidden, expected)
    assert float(hidden[:, 32:].abs().max()) < 1e-5  # no start image: zeros after normalising


def test_sampling_follows_the_control_video(runner: NodeRunner) -> None:
    model, vae, clip_vision, positive, negative = _parts(runner)
    start = _frames(1, 4)
    (vision,) = runner.call(CLIPVisionEncode, clip_vision=clip_vision, image=start, crop="center")
    common = {"positive": positive, "negative": negative, "vae": vae, "width": SIZE, "height": SIZE}
    videos = []
    for seed in (5, 6):
        positive_c, negative_c, latent = runner.call(
            WanFunControlToVideo,
            **common,
            length=LENGTH,
            batch_size=1,
            clip_vision_output=vision,
            start_image=start,
            control_video=_frames(LENGTH, seed),
        )
        sampled = fidelity.ksample(runner, model, positive_c, negative_c, latent, seed=0, steps=STEPS, cfg=3.0)
        videos.append(fidelity.decoded(runner, sampled, vae))
    assert videos[0].shape == (LENGTH, SIZE, SIZE, 3)
    assert fidelity.max_difference(videos[0], videos[1]) > 1e-3  # another control video, another video


def test_an_image_to_video_latent_is_refused_by_name(runner: NodeRunner) -> None:
    model, vae, clip_vision, positive, negative = _parts(runner)
    start = _frames(1, 7)
    (vision,) = runner.call(CLIPVisionEncode, clip_vision=clip_vision, image=start, crop="center")
    positive_i, negative_i, latent = runner.call(
        WanImageToVideo,
        positive=positive,
        negative=negative,
        vae=vae,
        width=SIZE,
        height=SIZE,
        length=LENGTH,
        batch_size=1,
        clip_vision_output=vision,
        start_image=start,
    )
    with pytest.raises(LatentShapeError, match=r"is a Fun control model: .*from WanFunControlToVideo"):
        fidelity.ksample(runner, model, positive_i, negative_i, latent, seed=0, steps=STEPS, cfg=3.0)
