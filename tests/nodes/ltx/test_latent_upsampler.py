"""Fidelity to diffusers of LTX-Video's latent upsampling at the node level: ``LatentUpscaleModelLoader`` +
``LTXVLatentUpsampler`` (+ ``VAEDecode``) reproduce ``LTXLatentUpsamplePipeline(latents=...)`` for the same tiny
files, with the pipeline's defaults ``adain_factor=0`` and ``tone_map_compression_ratio=0`` (ComfyUI's node has
neither); spatial files from the models folder, temporal and spatiotemporal ones in the release layout (diffusers'
key names, a ``config`` JSON in the safetensors metadata) loaded through the same loader."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from diffusers.pipelines.ltx.modeling_latent_upsampler import LTXLatentUpsamplerModel
from diffusers.pipelines.ltx.pipeline_ltx_latent_upsample import LTXLatentUpsamplePipeline
from safetensors import safe_open
from safetensors.torch import save_file

from models.errors import StateDictError
from models.families.ltx.upsampler import CONFIG_METADATA, detect_ltx_upsampler
from models.memory import ModelManager
from models.model_loaders import LatentUpscaleModel, load_latent_upscale_model
from models.tiny.ltx import TINY_LTX_UPSAMPLER_CONFIG
from models.video_vae import VideoVAE
from nodes.loaders import CheckpointLoaderSimple
from nodes.ltxv_sampling import LatentUpscaleModelLoader, LTXVLatentUpsampler
from tests.nodes import fidelity
from tests.nodes.node_runner import NodeRunner

CHECKPOINT = "ltx-video-2b-v0.9.5.safetensors"
UPSCALER = "ltxv-spatial-upscaler-0.9.7.safetensors"
LATENT_SHAPE = (2, 128, 2, 2, 3)  # two videos of 9 frames at 96x64
TOLERANCE = 1e-4


def _latent(seed: int) -> torch.Tensor:
    """A random VAE-normalised LTX-Video LATENT of ``LATENT_SHAPE``."""
    return torch.randn(LATENT_SHAPE, generator=torch.Generator().manual_seed(seed))


def _pipeline(vae: VideoVAE, upscaler: LatentUpscaleModel, latent: torch.Tensor, output_type: str) -> torch.Tensor:
    """``LTXLatentUpsamplePipeline`` on the same modules the nodes use, from the normalised ``latent``."""
    height, width = (size * 32 for size in latent.shape[-2:])
    with vae.handle.use() as autoencoder, upscaler.handle.use() as upsampler:
        pipeline = LTXLatentUpsamplePipeline(autoencoder, upsampler)
        return pipeline(
            latents=latent,
            height=height,
            width=width,
            adain_factor=0.0,
            tone_map_compression_ratio=0.0,
            generator=torch.Generator().manual_seed(0),
            output_type=output_type,
        ).frames


def _release_file(path: Path, spatial: bool, temporal: bool) -> Path:
    """A tiny random upsampler saved as the releases are: diffusers' key names, the config in the metadata."""
    config = {**TINY_LTX_UPSAMPLER_CONFIG, "spatial_upsample": spatial, "temporal_upsample": temporal}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        model = LTXLatentUpsamplerModel(**config)
    metadata = {CONFIG_METADATA: json.dumps({"_class_name": "LatentUpsampler", **config})}
    save_file({key: tensor.contiguous() for key, tensor in model.state_dict().items()}, path, metadata=metadata)
    return path


def test_nodes_match_the_latent_upsample_pipeline(runner: NodeRunner) -> None:
    _, _, vae = runner.call(CheckpointLoaderSimple, ckpt_name=CHECKPOINT)
    (upscaler,) = runner.call(LatentUpscaleModelLoader, model_name=UPSCALER)
    latent = _latent(11)
    (upscaled,) = runner.call(LTXVLatentUpsampler, samples={"samples": latent}, upscale_model=upscaler, vae=vae)
    assert upscaled["samples"].shape == (2, 128, 2, 4, 6)

    latent_difference = (upscaled["samples"] - _pipeline(vae, upscaler, latent, "latent")).abs().max().item()
    print(f"LTXVLatentUpsampler latent max difference: {latent_difference:.3g}")
    assert latent_difference < TOLERANCE, latent_difference

    frames = fidelity.decoded(runner, upscaled, vae)
    reference = _pipeline(vae, upscaler, latent, "pt")
    assert frames.shape == (2 * 9, 128, 192, 3)
    batch_frames = reference.flatten(0, 1).permute(0, 2, 3, 1).float()  # [B, F, C, H, W] -> IMAGE frames
    difference = fidelity.max_difference(frames, batch_frames)
    print(f"LTXVLatentUpsampler + VAEDecode frames max difference: {difference:.3g}")
    assert difference < TOLERANCE, difference


@pytest.mark.parametrize(
    ("spatial", "temporal", "shape", "kind"),
    [(False, True, (3, 2, 3), "temporal"), (True, True, (3, 4, 6), "spatial and temporal")],
    ids=["temporal", "spatiotemporal"],
)
def test_temporal_upsamplers_load_and_match_the_pipeline(
    runner: NodeRunner,
    manager: ModelManager,
    tmp_path: Path,
    spatial: bool,
    temporal: bool,
    shape: tuple[int, int, int],
    kind: str,
) -> None:
    path = _release_file(tmp_path / "upscaler.safetensors", spatial, temporal)
    with safe_open(path, "pt") as handle:
        state = {key: handle.get_tensor(key) for key in handle.keys()}
        spec = detect_ltx_upsampler(state, handle.metadata())
    assert spec.describe() == f"LTX-Video {kind} latent upsampler (2x), 32 channels"
    upscaler = load_latent_upscale_model(manager, path)
    _, _, vae = runner.call(CheckpointLoaderSimple, ckpt_name=CHECKPOINT)
    latent = _latent(12)
    (upscaled,) = runner.call(LTXVLatentUpsampler, samples={"samples": latent}, upscale_model=upscaler, vae=vae)
    assert upscaled["samples"].shape == (2, 128, *shape)  # 2T - 1 latent frames: the first stays one frame
    difference = (upscaled["samples"] - _pipeline(vae, upscaler, latent, "latent")).abs().max().item()
    assert difference < TOLERANCE, difference


def test_an_upsampler_of_another_factor_is_refused() -> None:
    state = dict(LTXLatentUpsamplerModel(**TINY_LTX_UPSAMPLER_CONFIG).state_dict())
    state["upsampler.0.weight"] = torch.zeros(96, 32, 3, 3, 3)  # 3x the channels: no 2x pixel shuffle
    with pytest.raises(StateDictError, match=r"upsampler\.0\.weight has shape \(96, 32, 3, 3, 3\)"):
        detect_ltx_upsampler(state)
