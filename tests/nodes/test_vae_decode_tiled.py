"""``VAEDecodeTiled`` on every family's VAE: each gets the tiling settings its diffusers class names (sizes and
strides in pixels, CogVideoX's overlap factor, the image VAE's attributes, SVD's frame chunks), read as pixels (a
tile as large as the picture decodes it whole), and the shared module is left as it was."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from models.video_vae import VideoVAE
from nodes.loaders import CheckpointLoaderSimple, ImageOnlyCheckpointLoader, VAELoader
from nodes.pipeline_loaders import DiffusersPipelineLoader
from nodes.vae import VAEDecode, VAEDecodeTiled
from tests.nodes.node_runner import NodeRunner

PIXELS = 128
TILE, OVERLAP = 64, 16


def _vae_file(name: str) -> Callable[[NodeRunner], VideoVAE]:
    return lambda runner: runner.call(VAELoader, vae_name=name)[0]


def _checkpoint(name: str) -> Callable[[NodeRunner], VideoVAE]:
    return lambda runner: runner.call(CheckpointLoaderSimple, ckpt_name=name)[2]


def _folder(name: str) -> Callable[[NodeRunner], VideoVAE]:
    return lambda runner: runner.call(
        DiffusersPipelineLoader, model_path=name, transformer="transformer", weight_dtype="default"
    )[2]


def _svd(runner: NodeRunner) -> VideoVAE:
    return runner.call(ImageOnlyCheckpointLoader, ckpt_name="svd_xt.safetensors")[2]


VAES: dict[str, Callable[[NodeRunner], Any]] = {
    "wan2.1": _vae_file("wan_2.1_vae.safetensors"),
    "wan2.2": _vae_file("wan2.2_vae.safetensors"),
    "hunyuan": _vae_file("hunyuan_video_vae_bf16.safetensors"),
    "mochi": _vae_file("mochi_vae.safetensors"),
    "ltx": _checkpoint("ltx-video-2b-v0.9.5.safetensors"),
    "sd15": _checkpoint("v1-5-pruned-emaonly-fp16.safetensors"),
    "cogvideox": _folder("CogVideoX-2b"),
}


def _latent(vae: VideoVAE, frames: int, pixels: int = PIXELS) -> dict[str, torch.Tensor]:
    fmt = vae.latent_format
    size = pixels // fmt.spatial_ratio
    generator = torch.Generator().manual_seed(0)
    samples = torch.randn(1, fmt.channels, fmt.latent_frames(frames), size, size, generator=generator)
    return {"samples": fmt.process_out(samples)}


def _tiled(runner: NodeRunner, vae: VideoVAE, latent: dict[str, torch.Tensor], **settings: int) -> torch.Tensor:
    inputs = {"tile_size": TILE, "overlap": OVERLAP, "temporal_size": 64, "temporal_overlap": 8, **settings}
    (images,) = runner.call(VAEDecodeTiled, samples=latent, vae=vae, **inputs)
    return images


@pytest.mark.parametrize("family", list(VAES))
def test_tiles_are_read_in_pixels_and_leave_the_vae_as_it_was(runner: NodeRunner, family: str) -> None:
    vae = VAES[family](runner)
    latent = _latent(vae, frames=1)
    (whole,) = runner.call(VAEDecode, samples=latent, vae=vae)
    assert torch.equal(_tiled(runner, vae, latent, tile_size=PIXELS), whole)  # one tile covers the picture
    tiled = _tiled(runner, vae, latent)
    assert tiled.shape == whole.shape
    assert not torch.equal(tiled, whole), "64 px tiles changed nothing: tiling did not happen"
    (again,) = runner.call(VAEDecode, samples=latent, vae=vae)
    assert torch.equal(again, whole)


def test_hunyuan_decodes_in_temporal_tiles(runner: NodeRunner) -> None:
    vae = VAES["hunyuan"](runner)
    latent = _latent(vae, frames=13, pixels=TILE)
    spatial_only = _tiled(runner, vae, latent)
    temporal = _tiled(runner, vae, latent, temporal_size=8, temporal_overlap=4)
    assert temporal.shape == spatial_only.shape == (13, TILE, TILE, 3)
    assert not torch.equal(temporal, spatial_only)


def test_svd_decodes_frame_chunks(runner: NodeRunner) -> None:
    vae = _svd(runner)
    latent = _latent(vae, frames=10, pixels=TILE)
    (whole,) = runner.call(VAEDecode, samples=latent, vae=vae)
    assert torch.equal(_tiled(runner, vae, latent, temporal_size=16), whole)  # one chunk: the whole decode
    chunked = _tiled(runner, vae, latent, temporal_size=8, temporal_overlap=4)
    assert chunked.shape == whole.shape
    assert not torch.equal(chunked[:8], whole[:8])  # the temporal decoder mixes frames within a chunk only
    (tail,) = runner.call(VAEDecode, samples={"samples": latent["samples"][:, :, 8:]}, vae=vae)
    assert torch.allclose(chunked[8:], tail, atol=1e-6)


def test_temporal_overlap_must_be_below_temporal_size(runner: NodeRunner) -> None:
    vae = VAES["wan2.1"](runner)
    with pytest.raises(ValueError, match="temporal_overlap: 8 must be below temporal_size"):
        _tiled(runner, vae, _latent(vae, frames=1), temporal_size=8, temporal_overlap=8)
