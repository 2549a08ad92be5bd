"""``VAEMemoryOptions``: the VAE it returns tiles and slices wherever it codes (``VAEDecode``, ``VAEEncode``) while
the input VAE codes as before; ``always`` tiles as ``VAEDecodeTiled`` does, ``never`` lets running out of memory
stand, ``auto`` retries in the chosen tiles; slicing decodes the videos of a batch (and an image VAE's frames) one at
a time with the same result. Running out of memory is raised from the real decoder by a pre-hook when it is given a
latent wider than a tile (the CPU cannot be made to run out of memory on cue)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import torch

from models.oom import ModelOutOfMemoryError
from models.video_vae import VideoVAE
from nodes.loaders import CheckpointLoaderSimple, VAELoader
from nodes.vae import VAEDecode, VAEDecodeTiled, VAEEncode, VAEMemoryOptions
from tests.nodes.node_runner import NodeRunner

PIXELS, TILE, OVERLAP = 128, 64, 16
WAN_VAE = "wan_2.1_vae.safetensors"
SD15 = "v1-5-pruned-emaonly-fp16.safetensors"


def _options(runner: NodeRunner, vae: VideoVAE, tiling: str = "auto", slicing: bool = False, **tiles: int) -> Any:
    inputs = {"tile_size": TILE, "overlap": OVERLAP, "temporal_size": 64, "temporal_overlap": 8, **tiles}
    (configured,) = runner.call(VAEMemoryOptions, vae=vae, tiling=tiling, slicing=slicing, **inputs)
    return configured


def _latent(vae: VideoVAE, batch: int = 1, frames: int = 1) -> dict[str, torch.Tensor]:
    fmt = vae.latent_format
    size = PIXELS // fmt.spatial_ratio
    generator = torch.Generator().manual_seed(0)
    samples = torch.randn(batch, fmt.channels, fmt.latent_frames(frames), size, size, generator=generator)
    return {"samples": fmt.process_out(samples)}


def _decoded(runner: NodeRunner, vae: VideoVAE, latent: dict[str, torch.Tensor]) -> torch.Tensor:
    (images,) = runner.call(VAEDecode, samples=latent, vae=vae)
    return images


@contextmanager
def _decoder_inputs(vae: VideoVAE, limited_to_tiles: bool = False) -> Iterator[list[torch.Size]]:
    """The shapes the VAE's decoder is given; when ``limited_to_tiles``, it runs out of memory on latents wider
    than a tile."""
    shapes: list[torch.Size] = []
    limit = TILE // vae.latent_format.spatial_ratio

    def check(_module: torch.nn.Module, args: tuple[Any, ...]) -> None:
        shapes.append(args[0].shape)
        if limited_to_tiles and args[0].shape[-1] > limit:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    with vae.handle.use() as module:
        hook = module.decoder.register_forward_pre_hook(check)
    try:
        yield shapes
    finally:
        hook.remove()


def test_always_tiles_like_vae_decode_tiled_and_leaves_the_input_vae_whole(runner: NodeRunner) -> None:
    (vae,) = runner.call(VAELoader, vae_name=WAN_VAE)
    latent = _latent(vae)
    whole = _decoded(runner, vae, latent)
    tiled = _decoded(runner, _options(runner, vae, "always"), latent)
    (reference,) = runner.call(
        VAEDecodeTiled, samples=latent, vae=vae, tile_size=TILE, overlap=OVERLAP, temporal_size=64, temporal_overlap=8
    )
    assert torch.equal(tiled, reference)
    assert not torch.equal(tiled, whole)
    assert torch.equal(_decoded(runner, vae, latent), whole)


def test_always_encodes_in_tiles(runner: NodeRunner) -> None:
    (vae,) = runner.call(VAELoader, vae_name=WAN_VAE)
    pixels = torch.rand(1, PIXELS, PIXELS, 3, generator=torch.Generator().manual_seed(1))
    (whole,) = runner.call(VAEEncode, pixels=pixels, vae=vae)
    (one_tile,) = runner.call(VAEEncode, pixels=pixels, vae=_options(runner, vae, "always", tile_size=PIXELS))
    (tiled,) = runner.call(VAEEncode, pixels=pixels, vae=_options(runner, vae, "always"))
    assert torch.equal(one_tile["samples"], whole["samples"])  # a tile as large as the picture codes it whole
    assert tiled["samples"].shape == whole["samples"].shape
    assert not torch.equal(tiled["samples"], whole["samples"])


def test_auto_retries_in_the_chosen_tiles_and_never_reports_the_shortage(runner: NodeRunner) -> None:
    (vae,) = runner.call(VAELoader, vae_name=WAN_VAE)
    latent = _latent(vae)
    (reference,) = runner.call(
        VAEDecodeTiled, samples=latent, vae=vae, tile_size=TILE, overlap=OVERLAP, temporal_size=64, temporal_overlap=8
    )
    with _decoder_inputs(vae, limited_to_tiles=True) as shapes:
        retried = _decoded(runner, _options(runner, vae, "auto"), latent)
        assert shapes[0][-1] == PIXELS // vae.latent_format.spatial_ratio  # tried whole first
        with pytest.raises(ModelOutOfMemoryError):
            _decoded(runner, _options(runner, vae, "never"), latent)
    assert torch.equal(retried, reference)


def test_slicing_decodes_each_video_of_a_batch_alone(runner: NodeRunner) -> None:
    (vae,) = runner.call(VAELoader, vae_name=WAN_VAE)
    latent = _latent(vae, batch=2, frames=5)
    together = _decoded(runner, vae, latent)
    with _decoder_inputs(vae) as shapes:
        sliced = _decoded(runner, _options(runner, vae, "never", slicing=True), latent)
    alone = [_decoded(runner, vae, {"samples": video}) for video in latent["samples"].split(1)]
    assert torch.equal(sliced, torch.cat(alone))
    assert torch.allclose(sliced, together, atol=1e-5)
    assert {shape[0] for shape in shapes} == {1}  # one video at a time


def test_slicing_decodes_an_image_vae_frame_by_frame(runner: NodeRunner) -> None:
    _model, _clip, vae = runner.call(CheckpointLoaderSimple, ckpt_name=SD15)
    latent = _latent(vae, frames=4)
    together = _decoded(runner, vae, latent)
    with _decoder_inputs(vae) as shapes:
        sliced = _decoded(runner, _options(runner, vae, "never", slicing=True), latent)
    assert [shape[0] for shape in shapes] == [1, 1, 1, 1]
    assert torch.allclose(sliced, together, atol=1e-5)
    with vae.handle.use() as module:
        assert module.use_slicing is False


def test_bad_tiles_are_named(runner: NodeRunner) -> None:
    (vae,) = runner.call(VAELoader, vae_name=WAN_VAE)
    with pytest.raises(ValueError, match="overlap: 32 must be below half the tile size"):
        _options(runner, vae, "always", overlap=32)
    with pytest.raises(ValueError, match="tiling: 'sometimes' is not one of auto, always, never"):
        VAEMemoryOptions().configure(vae, "sometimes", TILE, OVERLAP, 64, 8, False)
