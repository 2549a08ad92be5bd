"""Diffusers ``AnimateDiffPipeline`` and ``StableDiffusionPipeline`` folders load through the generic pipeline
loaders: the ``unet`` component (``PipelineLayout.network``) as ``MODEL`` with the right adapter, the CLIP-L text
encoder and the VAE, holding the weights that were saved."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from diffusers import AnimateDiffPipeline, EulerDiscreteScheduler, StableDiffusionPipeline, UNetMotionModel
from transformers import CLIPTokenizer

from models.devices import DeviceProbe
from models.families.animatediff.adapter import AnimateDiffAdapter
from models.families.sd15.adapter import Sd15Adapter
from models.families.sd15.latents import SD15_LATENT
from models.memory import MemoryConfig, ModelManager
from models.pipeline_folder import (
    load_pipeline_text_encoder,
    load_pipeline_transformer,
    load_pipeline_vae,
    read_pipeline_folder,
)
from models.text_encoders.kinds import CLIP_L_TOKENIZER
from models.tiny.animatediff import tiny_motion_adapter, tiny_sd15_unet, tiny_sd15_vae
from models.tiny.text_families import tiny_clip_l


@pytest.fixture
def manager() -> ModelManager:
    return ModelManager(MemoryConfig(mode="cpu"), DeviceProbe())


def _parts(tiny_models_dir: Path) -> dict[str, object]:
    tokenizer = CLIPTokenizer.from_pretrained(tiny_models_dir / "tokenizers" / CLIP_L_TOKENIZER)
    return {
        "vae": tiny_sd15_vae(),
        "text_encoder": tiny_clip_l(),
        "tokenizer": tokenizer,
        "unet": tiny_sd15_unet(),
        "scheduler": EulerDiscreteScheduler(steps_offset=1),
    }


def test_animatediff_folder_loads_its_motion_unet(tiny_models_dir: Path, tmp_path: Path, manager: ModelManager) -> None:
    parts = _parts(tiny_models_dir)
    pipeline = AnimateDiffPipeline(**parts, motion_adapter=tiny_motion_adapter())
    pipeline.save_pretrained(tmp_path / "animatediff")
    folder = read_pipeline_folder(tmp_path / "animatediff")
    model = load_pipeline_transformer(manager, folder, "transformer")
    assert isinstance(model.adapter, AnimateDiffAdapter) and model.adapter.max_frames == 32
    with model.handle.use() as network:
        assert isinstance(network, UNetMotionModel)
        saved = pipeline.unet.state_dict()
        assert all(torch.equal(value, saved[key]) for key, value in network.state_dict().items())
    assert load_pipeline_vae(manager, folder).latent_format is SD15_LATENT
    assert load_pipeline_text_encoder(manager, folder).kind.name == "stable_diffusion"
    manager.free()


def test_stable_diffusion_folder_loads_its_unet(tiny_models_dir: Path, tmp_path: Path, manager: ModelManager) -> None:
    parts = _parts(tiny_models_dir)
    pipeline = StableDiffusionPipeline(
        **parts, safety_checker=None, feature_extractor=None, requires_safety_checker=False
    )
    pipeline.save_pretrained(tmp_path / "sd15")
    model = load_pipeline_transformer(manager, read_pipeline_folder(tmp_path / "sd15"), "transformer")
    assert type(model.adapter) is Sd15Adapter
    manager.free()
