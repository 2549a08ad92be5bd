"""Wan Fun camera control: the tiny Fun camera file loads as a ``WanCameraTransformer3DModel`` whose camera term is
its adapter's output added to the patch embeddings, and ``WanCameraEmbedding`` -> ``WanCameraImageToVideo`` ->
KSampler runs end to end, the camera move changing the video."""

from __future__ import annotations

import pytest
import torch

from models.families.base import LatentShapeError
from models.families.wan.camera import WanCameraTransformer3DModel
from nodes.conditioning import CLIPVisionEncode
from nodes.wan_camera import WanCameraEmbedding, WanCameraImageToVideo
from tests.nodes import fidelity
from tests.nodes.node_runner import NodeRunner
from tests.nodes.wan.parts import wan_parts

CAMERA_FILE = "wan2.1_fun_camera_v1.1_1.3B_bf16.safetensors"
SIZE, LENGTH, STEPS = 64, 9, 2


def _parts(runner: NodeRunner) -> tuple:
    return wan_parts(runner, CAMERA_FILE, "a street at night")


def _rays(runner: NodeRunner, pose: str, length: int = LENGTH) -> torch.Tensor:
    embedding, *_ = runner.call(WanCameraEmbedding, camera_pose=pose, width=SIZE, height=SIZE, length=length)
    return embedding


def test_the_camera_term_is_the_adapter_output_added_to_the_patch_embeddings(runner: NodeRunner) -> None:
    model, *_ = _parts(runner)
    assert model.adapter.camera and model.adapter.describe() == "Wan camera, dim 256, 2 layers, in 32 channels"
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(1, 32, 3, 8, 8, generator=generator)
    text = torch.randn(1, 8, 64, generator=generator)
    image = torch.randn(1, 5, 160, generator=generator)
    camera = _rays(runner, "Pan Left")
    with model.handle.use() as network:
        assert isinstance(network, WanCameraTransformer3DModel)
        seen: list[torch.Tensor] = []
        hook = network.patch_embedding.register_forward_hook(lambda _m, _i, output: seen.append(output))
        with torch.no_grad():
            moved = network(x, torch.tensor([500.0]), text, image, camera_embedding=camera, return_dict=False)[0]
            still = network(x, torch.tensor([500.0]), text, image, return_dict=False)[0]
            expected = network.patch_embedding(x) + network.control_adapter(camera)
        hook.remove()
    torch.testing.assert_close(seen[0], expected)  # with the camera: embeddings plus the adapter's term
    torch.testing.assert_close(seen[1], network.patch_embedding(x).detach())  # without: the plain transformer
    assert (moved - still).abs().max() > 1e-3


def test_a_camera_move_changes_the_video(runner: NodeRunner) -> None:
    model, vae, clip_vision, positive, negative = _parts(runner)
    start = torch.rand(1, SIZE, SIZE, 3, generator=torch.Generator().manual_seed(2))
    (vision,) = runner.call(CLIPVisionEncode, clip_vision=clip_vision, image=start, crop="center")
    common = {"positive": positive, "negative": negative, "vae": vae, "width": SIZE, "height": SIZE}
    videos = []
    for pose in ("Static", "Zoom In"):
        positive_c, negative_c, latent = runner.call(
            WanCameraImageToVideo,
            **common,
            length=LENGTH,
            batch_size=1,
            clip_vision_output=vision,
            start_image=start,
            camera_conditions=_rays(runner, pose),
        )
        sampled = fidelity.ksample(runner, model, positive_c, negative_c, latent, seed=3, steps=STEPS, cfg=3.0)
        videos.append(fidelity.decoded(runner, sampled, vae))
    assert videos[0].shape == (LENGTH, SIZE, SIZE, 3)
    assert fidelity.max_difference(videos[0], videos[1]) > 1e-3


def test_rays_for_another_length_are_refused_by_name(runner: NodeRunner) -> None:
    model, vae, clip_vision, positive, negative = _parts(runner)
    start = torch.rand(1, SIZE, SIZE, 3, generator=torch.Generator().manual_seed(4))
    (vision,) = runner.call(CLIPVisionEncode, clip_vision=clip_vision, image=start, crop="center")
    positive_c, negative_c, latent = runner.call(
        WanCameraImageToVideo,
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
    wrong = {"camera_conditions": _rays(runner, "Pan Up", length=13)}
    positive_c = [[tensor, {**extras, **wrong}] for tensor, extras in positive_c]
    with pytest.raises(LatentShapeError, match=r"camera_conditions is .* give WanCameraEmbedding the latent's size"):
        fidelity.ksample(runner, model, positive_c, negative_c, latent, seed=3, steps=STEPS, cfg=3.0)
