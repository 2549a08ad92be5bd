"""A diffusers ``StableVideoDiffusionPipeline`` folder through ``DiffusersPipelineLoader``: its ``unet`` component is
the MODEL (``PipelineLayout.network``), the image encoder the CLIP_VISION, and the CLIP output, which an image-only
pipeline lacks, blocks what uses it with a message."""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import EulerDiscreteScheduler, StableVideoDiffusionPipeline
from transformers import CLIPImageProcessor

from graph.node_call import ExecutionBlocker
from models.families.svd.adapter import SvdAdapter
from models.families.svd.latents import SVD_LATENT
from models.folders import ModelFolders
from models.memory import MODELS_SERVICE, ModelManager
from models.tiny.svd import tiny_svd_image_encoder, tiny_svd_unet, tiny_svd_vae
from nodes.folders import Folders
from nodes.model_files import MODEL_FOLDERS_SERVICE
from nodes.pipeline_loaders import DiffusersPipelineLoader
from tests.nodes.node_runner import NodeRunner

FOLDER = "stable-video-diffusion-img2vid-xt"


def test_svd_folder_loads_its_unet_vae_and_image_encoder(tmp_path: Path, manager: ModelManager) -> None:
    pipeline = StableVideoDiffusionPipeline(
        vae=tiny_svd_vae(),
        image_encoder=tiny_svd_image_encoder(),
        unet=tiny_svd_unet(),
        scheduler=EulerDiscreteScheduler(),
        feature_extractor=CLIPImageProcessor(),
    )
    models_dir = tmp_path / "models"
    pipeline.save_pretrained(models_dir / "diffusers" / FOLDER)
    services = {MODELS_SERVICE: manager, MODEL_FOLDERS_SERVICE: ModelFolders(models_dir)}
    runner = NodeRunner(Folders.under(tmp_path), services=services)

    model, clip, vae, vision = runner.call(
        DiffusersPipelineLoader, model_path=FOLDER, transformer="transformer", weight_dtype="default"
    )

    assert isinstance(model.adapter, SvdAdapter)
    with model.handle.use() as unet:
        saved = pipeline.unet.state_dict()
        assert all(torch.equal(value, saved[key]) for key, value in unet.state_dict().items())
    assert isinstance(clip, ExecutionBlocker) and "no text encoder" in str(clip.message)
    assert vae.latent_format is SVD_LATENT
    with vision.handle.use() as encoder:
        assert type(encoder).__name__ == "CLIPVisionModelWithProjection"
