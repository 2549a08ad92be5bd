"""Wan Fun camera conditioning: ``WanCameraEmbedding``'s moves as packed Plücker rays (checked against the rays'
closed form), any camera path packed the same way, and ``WanCameraImageToVideo``'s conditioning."""

from __future__ import annotations

import math

import pytest
import torch

from models.control.camera import preset_path
from models.control.wan_camera import wan_fun_camera_path
from nodes.conditioning import CLIPTextEncode
from nodes.loaders import CLIPLoader, VAELoader
from nodes.wan_camera import CameraPathToWanEmbedding, WanCameraEmbedding, WanCameraImageToVideo
from tests.nodes.node_runner import NodeRunner

WIDTH, HEIGHT, LENGTH = 64, 48, 5  # 4:3 is narrower than the presets' 16:9, so fx is stretched


@pytest.fixture
def tiny_conditioning(runner: NodeRunner) -> tuple:
    """The tiny Wan VAE and a prompt's conditioning (positive and negative)."""
    (vae,) = runner.call(VAELoader, vae_name="wan_2.1_vae.safetensors")
    (clip,) = runner.call(CLIPLoader, clip_name="umt5_xxl_fp16.safetensors", type="wan")
    (positive,) = runner.call(CLIPTextEncode, clip=clip, text="a lighthouse at dusk")
    (negative,) = runner.call(CLIPTextEncode, clip=clip, text="blurry")
    return vae, positive, negative


def _embedding(runner: NodeRunner, pose: str, speed: float = 1.0) -> torch.Tensor:
    embedding, width, height, length = runner.call(
        WanCameraEmbedding, camera_pose=pose, width=WIDTH, height=HEIGHT, length=LENGTH, speed=speed
    )
    assert (width, height, length) == (WIDTH, HEIGHT, LENGTH)
    assert embedding.shape == (1, 24, 2, HEIGHT, WIDTH)
    return embedding.double()


def _directions() -> torch.Tensor:
    """``[3, H, W]`` unit rays through pixel centres for the default intrinsics on a 4:3 frame: fx = 0.5 stretched by
    (16/9) / (4/3), so K = (fx W, fy H, W/2, H/2)."""
    fx = HEIGHT * (1280 / 720) * 0.5  # the normalised fx (H * 16/9 * 0.5 / W) in pixels
    fy, cx, cy = 0.5 * HEIGHT, 0.5 * WIDTH, 0.5 * HEIGHT
    u = (torch.arange(WIDTH, dtype=torch.float64) + 0.5 - cx) / fx
    v = (torch.arange(HEIGHT, dtype=torch.float64) + 0.5 - cy) / fy
    rays = torch.stack((u.expand(HEIGHT, WIDTH), v[:, None].expand(HEIGHT, WIDTH), torch.ones(HEIGHT, WIDTH)))
    return rays / rays.norm(dim=0, keepdim=True)


def _frame(packed: torch.Tensor, frame: int) -> torch.Tensor:
    """``[6, H, W]``: video frame ``frame``'s rays back out of the packing (frame 0 fills latent frame 0)."""
    if frame == 0:
        return packed[0, 0::4, 0]
    latent, within = divmod(frame - 1, 4)
    return packed[0, within::4, latent + 1]


def test_static_rays_have_no_moment_and_point_through_the_pixels(runner: NodeRunner) -> None:
    packed = _embedding(runner, "Static")
    for frame in range(LENGTH):
        rays = _frame(packed, frame)
        assert float(rays[:3].abs().max()) < 1e-6
        torch.testing.assert_close(rays[3:], _directions(), atol=1e-6, rtol=0)
    torch.testing.assert_close(packed[0, 0:4, 0], packed[0, 0:1, 0].expand(4, -1, -1))  # frame 0 counted four times


def test_pan_right_moves_the_centre_along_x(runner: NodeRunner) -> None:
    packed = _embedding(runner, "Pan Right", speed=2.0)
    directions = _directions()
    for frame in range(LENGTH):
        centre = torch.tensor([frame / LENGTH * 2.0 * 1.5, 0.0, 0.0], dtype=torch.float64)
        moment = torch.linalg.cross(centre[:, None, None].expand_as(directions), directions, dim=0)
        rays = _frame(packed, frame)
        torch.testing.assert_close(rays[:3], moment, atol=1e-6, rtol=0)
        torch.testing.assert_close(rays[3:], directions, atol=1e-6, rtol=0)


def test_clockwise_rolls_the_rays_about_the_optical_axis(runner: NodeRunner) -> None:
    packed = _embedding(runner, "ClockWise (CW)")
    angle = (LENGTH - 1) / LENGTH * math.pi / 3
    rotation = torch.tensor(
        [[math.cos(angle), -math.sin(angle), 0.0], [math.sin(angle), math.cos(angle), 0.0], [0.0, 0.0, 1.0]],
        dtype=torch.float64,
    )
    expected = torch.einsum("ij,jhw->ihw", rotation, _directions())
    torch.testing.assert_close(_frame(packed, LENGTH - 1)[3:], expected, atol=1e-6, rtol=0)


def test_any_camera_path_packs_the_same_way(runner: NodeRunner) -> None:
    same_move = wan_fun_camera_path("Pan Down", LENGTH, WIDTH, HEIGHT)
    (packed,) = runner.call(CameraPathToWanEmbedding, camera_path=same_move, width=WIDTH, height=HEIGHT)
    torch.testing.assert_close(packed.double(), _embedding(runner, "Pan Down"))
    (dolly,) = runner.call(
        CameraPathToWanEmbedding, camera_path=preset_path("dolly_in", LENGTH), width=WIDTH, height=HEIGHT
    )
    assert dolly.shape == (1, 24, 2, HEIGHT, WIDTH) and float(dolly[0, :12, 1].abs().max()) > 0  # it moves


def test_a_length_that_does_not_pack_is_named(runner: NodeRunner) -> None:
    with pytest.raises(ValueError, match=r"WanCameraEmbedding: .*length must be 4k \+ 1 frames"):
        runner.call(WanCameraEmbedding, camera_pose="Pan Up", width=WIDTH, height=HEIGHT, length=6)
    with pytest.raises(ValueError, match="WanCameraEmbedding: camera_pose must be one of"):
        runner.call(WanCameraEmbedding, camera_pose="Dolly", width=WIDTH, height=HEIGHT, length=LENGTH)


def test_camera_image_to_video_attaches_the_embedding(runner: NodeRunner, tiny_conditioning: tuple) -> None:
    vae, positive, negative = tiny_conditioning
    packed = _embedding(runner, "Zoom In").float()
    common = {"positive": positive, "negative": negative, "vae": vae, "width": WIDTH, "height": HEIGHT}
    start = torch.rand(1, HEIGHT, WIDTH, 3, generator=torch.Generator().manual_seed(1))
    out_positive, out_negative, latent = runner.call(
        WanCameraImageToVideo, **common, length=LENGTH, batch_size=1, start_image=start, camera_conditions=packed
    )
    extras = out_positive[0][1]
    assert torch.equal(extras["camera_conditions"], packed) and "camera_conditions" in out_negative[0][1]
    assert extras["concat_latent_image"].shape == (1, 16, 2, HEIGHT // 8, WIDTH // 8)
    assert latent["samples"].shape == (1, 16, 2, HEIGHT // 8, WIDTH // 8)
    with pytest.raises(ValueError, match=r"WanCameraImageToVideo: camera_conditions is .*\(from WanCameraEmbedding"):
        runner.call(WanCameraImageToVideo, **common, length=9, batch_size=1, camera_conditions=packed)
