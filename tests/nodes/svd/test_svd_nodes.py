"""The SVD nodes: ComfyUI's sockets, the checkpoint's three parts, the conditioning they make, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from models.errors import ModelLoadError
from models.families.svd.latents import SVD_LATENT
from models.memory import ModelManager
from models.model_loaders import load_image_only_checkpoint
from models.tiny.svd import CHECKPOINT_FILE, CLIP_PREFIX, TINY_IMAGE_DIM
from nodes.loaders import ImageOnlyCheckpointLoader
from nodes.svd import SVD_img2vid_Conditioning, VideoLinearCFGGuidance
from tests.nodes.node_runner import NodeRunner

COMFY_INPUTS = {  # /work/shared/COMFY_NODES.md: name -> (type, default)
    SVD_img2vid_Conditioning: [
        ("clip_vision", "CLIP_VISION", None),
        ("init_image", "IMAGE", None),
        ("vae", "VAE", None),
        ("width", "INT", 1024),
        ("height", "INT", 576),
        ("video_frames", "INT", 14),
        ("motion_bucket_id", "INT", 127),
        ("fps", "INT", 6),
        ("augmentation_level", "FLOAT", 0.0),
    ],
    VideoLinearCFGGuidance: [("model", "MODEL", None), ("min_cfg", "FLOAT", 1.0)],
}


@pytest.mark.parametrize("node", list(COMFY_INPUTS))
def test_sockets_are_comfyuis(node: type) -> None:
    required = node.INPUT_TYPES()["required"]
    found = [(name, spec[0], spec[1].get("default")) for name, spec in required.items()]
    assert found == COMFY_INPUTS[node]
    assert ImageOnlyCheckpointLoader.RETURN_TYPES == ("MODEL", "CLIP_VISION", "VAE")


def _conditioning(runner: NodeRunner, image: torch.Tensor, **sizes: int) -> tuple:
    _, clip_vision, vae = runner.call(ImageOnlyCheckpointLoader, ckpt_name="svd_xt.safetensors")
    inputs = {"width": 64, "height": 48, "video_frames": 3, "motion_bucket_id": 90, "fps": 8} | sizes
    return runner.call(
        SVD_img2vid_Conditioning, clip_vision=clip_vision, init_image=image, vae=vae, augmentation_level=0.1, **inputs
    )


def test_the_checkpoint_gives_model_clip_vision_and_vae(runner: NodeRunner) -> None:
    model, clip_vision, vae = runner.call(ImageOnlyCheckpointLoader, ckpt_name="svd_xt.safetensors")
    assert model.adapter.family == "svd" and model.sampling.sigma_max == 700.0
    assert vae.latent_format == SVD_LATENT
    with clip_vision.handle.use() as encoder:
        assert encoder.config.image_size == 224
    (guided,) = runner.call(VideoLinearCFGGuidance, model=model, min_cfg=1.5)
    assert (guided.video_min_cfg, model.video_min_cfg, guided.handle) == (1.5, None, model.handle)


def test_conditioning_holds_the_image_and_an_unconditional_negative(runner: NodeRunner) -> None:
    image = torch.rand(1, 96, 128, 3, generator=torch.Generator().manual_seed(0))
    positive, negative, latent = _conditioning(runner, image)
    assert latent["samples"].shape == (1, 4, 3, 6, 8)
    (embeds, extras), (zeros, negative_extras) = positive[0], negative[0]
    assert embeds.shape == (1, 1, TINY_IMAGE_DIM) and embeds.abs().sum() > 0
    assert extras["concat_latent_image"].shape == (1, 4, 1, 6, 8)
    assert (extras["fps"], extras["motion_bucket_id"], extras["augmentation_level"]) == (8, 90, 0.1)
    assert not zeros.any() and not negative_extras["concat_latent_image"].any()
    assert negative_extras["fps"] == 8


def test_conditioning_refuses_several_images_and_odd_sizes(runner: NodeRunner) -> None:
    with pytest.raises(ValueError, match="init_image: 2 images"):
        _conditioning(runner, torch.rand(2, 64, 64, 3))
    with pytest.raises(ValueError, match="width: 60 is not a multiple of 8"):
        _conditioning(runner, torch.rand(1, 64, 64, 3), width=60)


def test_a_checkpoint_without_clip_vision_is_refused(
    svd_models_dir: Path, tmp_path: Path, manager: ModelManager
) -> None:
    tensors = load_file(svd_models_dir / CHECKPOINT_FILE)
    path = tmp_path / "no_clip.safetensors"
    save_file({key: t for key, t in tensors.items() if not key.startswith(CLIP_PREFIX)}, path)
    with pytest.raises(ModelLoadError, match="holds no CLIP vision encoder"):
        load_image_only_checkpoint(manager, path)
