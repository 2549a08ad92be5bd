"""The LTX-Video sampling nodes (``nodes.ltxv_sampling``): the schedule, the flow shift, the latent upsampler loader
and the upsampler, with the tiny LTX-Video files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from models.errors import CorruptModelFileError
from models.families.ltx.schedule import ltxv_mu, ltxv_sigmas
from models.families.ltx.upsampler import upsample_latent
from models.memory import ModelManager
from models.model_loaders import LatentUpscaleModel, WrongModelKindError, load_latent_upscale_model
from models.sampling.model_sampling import FlowSampling
from nodes.loaders import CheckpointLoaderSimple
from nodes.ltxv_sampling import LatentUpscaleModelLoader, LTXVLatentUpsampler, LTXVScheduler, ModelSamplingLTXV
from tests.nodes.node_runner import NodeRunner

CHECKPOINT = "ltx-video-2b-v0.9.5.safetensors"
UPSCALER = "ltxv-spatial-upscaler-0.9.7.safetensors"


def test_node_declarations_match_comfyui(runner: NodeRunner) -> None:
    scheduler = LTXVScheduler.INPUT_TYPES()
    assert list(scheduler["required"]) == ["steps", "max_shift", "base_shift", "stretch", "terminal"]
    assert list(scheduler["optional"]) == ["latent"]
    assert scheduler["required"]["terminal"][1] | {"tooltip": ""} == {
        "default": 0.1, "min": 0.0, "max": 0.99, "step": 0.01, "tooltip": "",
    }  # fmt: skip
    sampling = ModelSamplingLTXV.INPUT_TYPES()
    assert list(sampling["required"]) == ["model", "max_shift", "base_shift"] and list(sampling["optional"]) == [
        "latent"
    ]
    assert (
        sampling["required"]["max_shift"][1]["default"] == 2.05
        and sampling["required"]["base_shift"][1]["default"] == 0.95
    )
    assert list(LTXVLatentUpsampler.INPUT_TYPES()["required"]) == ["samples", "upscale_model", "vae"]
    assert LatentUpscaleModelLoader.RETURN_TYPES == ("LATENT_UPSCALE_MODEL",)
    for node in (LTXVScheduler, ModelSamplingLTXV, LatentUpscaleModelLoader, LTXVLatentUpsampler):
        runner.bind(node)


def test_scheduler_sizes_the_shift_by_the_latent(runner: NodeRunner) -> None:
    latent = {"samples": torch.zeros(1, 128, 2, 3, 3)}
    (sigmas,) = runner.call(
        LTXVScheduler, steps=4, max_shift=2.05, base_shift=0.95, stretch=True, terminal=0.1, latent=latent
    )
    assert torch.equal(sigmas, ltxv_sigmas(4, tokens=18))
    assert sigmas[0] == 1.0 and sigmas[-1] == 0.0 and math.isclose(sigmas[-2].item(), 0.1, abs_tol=1e-6)
    (default,) = runner.call(LTXVScheduler, steps=4, max_shift=2.05, base_shift=0.95, stretch=False, terminal=0.1)
    assert torch.equal(default, ltxv_sigmas(4, stretch=False, tokens=4096))
    with pytest.raises(ValueError, match=r"^terminal: 1\.0 must be in \[0, 1\)"):
        runner.call(LTXVScheduler, steps=4, max_shift=2.05, base_shift=0.95, stretch=True, terminal=1.0)
    with pytest.raises(ValueError, match=r"^latent: not a LATENT"):
        runner.call(
            LTXVScheduler, steps=4, max_shift=2.05, base_shift=0.95, stretch=True, terminal=0.1, latent=torch.zeros(1)
        )
    with pytest.raises(ValueError, match=r"^max_shift: 100\.0 .* beyond floating point"):
        runner.call(
            LTXVScheduler, steps=4, max_shift=100.0, base_shift=0.95, stretch=True, terminal=0.1,
            latent={"samples": torch.zeros(1, 128, 40, 30, 30)},
        )  # fmt: skip


def test_model_sampling_sets_the_flow_shift(runner: NodeRunner) -> None:
    (model, _, _) = runner.call(CheckpointLoaderSimple, ckpt_name=CHECKPOINT)
    latent = {"samples": torch.zeros(1, 128, 13, 16, 24)}
    (patched,) = runner.call(ModelSamplingLTXV, model=model, max_shift=2.05, base_shift=0.95, latent=latent)
    assert patched.sampling == FlowSampling(shift=math.exp(ltxv_mu(13 * 16 * 24)), multiplier=1000.0)
    assert patched.handle is model.handle and model.sampling != patched.sampling
    (default,) = runner.call(ModelSamplingLTXV, model=model, max_shift=1.0, base_shift=0.5)
    assert math.isclose(default.sampling.shift, math.exp(1.0))  # 4096 tokens: max_shift
    with pytest.raises(ValueError, match=r"^max_shift: 100\.0 .* beyond floating point"):
        runner.call(
            ModelSamplingLTXV, model=model, max_shift=100.0, base_shift=0.0,
            latent={"samples": torch.zeros(1, 128, 40, 30, 30)},
        )  # fmt: skip


def test_upscale_model_loader(runner: NodeRunner, manager: ModelManager, tiny_models_dir: Path, tmp_path: Path) -> None:
    (upscaler,) = runner.call(LatentUpscaleModelLoader, model_name=UPSCALER)
    assert isinstance(upscaler, LatentUpscaleModel) and upscaler.name == UPSCALER
    assert upscaler.compute_dtype == torch.float32
    (again,) = runner.call(LatentUpscaleModelLoader, model_name=UPSCALER)
    assert again.handle is upscaler.handle  # one manager entry per file

    with pytest.raises(ValueError, match=r"^model_name: 'missing\.safetensors' is not in the latent_upscale_models"):
        runner.call(LatentUpscaleModelLoader, model_name="missing.safetensors")
    with pytest.raises(
        WrongModelKindError,
        match=r"^t5xxl_fp16\.safetensors: this is a T5-XXL text encoder, not an LTX-Video latent upsampler: load it "
        r"with CLIPLoader",
    ):
        load_latent_upscale_model(manager, tiny_models_dir / "text_encoders" / "t5xxl_fp16.safetensors")

    source = tiny_models_dir / "latent_upscale_models" / UPSCALER
    with safe_open(source, "pt") as handle:
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}
        config = json.loads(handle.metadata()["config"])
    bad = tmp_path / "disagreeing.safetensors"
    save_file(tensors, bad, metadata={"config": json.dumps({**config, "mid_channels": 7})})
    with pytest.raises(CorruptModelFileError, match=r"^disagreeing\.safetensors: .*disagrees with its tensors"):
        load_latent_upscale_model(manager, bad)


def test_latent_upsampler_doubles_width_and_height(runner: NodeRunner) -> None:
    (_, _, vae) = runner.call(CheckpointLoaderSimple, ckpt_name=CHECKPOINT)
    (upscaler,) = runner.call(LatentUpscaleModelLoader, model_name=UPSCALER)
    samples = torch.randn(1, 128, 2, 2, 3, generator=torch.Generator().manual_seed(1))
    latent = {"samples": samples, "noise_mask": torch.ones(1, 1, 2, 2, 3)}
    (result,) = runner.call(LTXVLatentUpsampler, samples=latent, upscale_model=upscaler, vae=vae)
    assert set(result) == {"samples"} and result["samples"].shape == (1, 128, 2, 4, 6)
    with vae.handle.use() as autoencoder, upscaler.handle.use() as upsampler, torch.no_grad():
        expected = upsample_latent(upsampler, autoencoder, samples)
    assert torch.equal(result["samples"], expected)

    with pytest.raises(ValueError, match=r"^upscale_model: not a latent upscale model"):
        runner.call(LTXVLatentUpsampler, samples=latent, upscale_model=object(), vae=vae)
    with pytest.raises(ValueError, match=r"^samples has 16 channels"):
        runner.call(
            LTXVLatentUpsampler, samples={"samples": torch.zeros(1, 16, 2, 2, 2)}, upscale_model=upscaler, vae=vae
        )
    with pytest.raises(ValueError, match=r"^vae: an LTX-Video VAE is needed"):
        runner.call(LTXVLatentUpsampler, samples=latent, upscale_model=upscaler, vae=upscaler)
