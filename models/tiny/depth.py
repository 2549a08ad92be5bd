"""A tiny random-weight stand-in of a released depth estimation model (``depth_estimation/``), saved as the release
is: a transformers model folder with ``config.json``, ``model.safetensors`` and ``preprocessor_config.json``.

- ``Depth-Anything-V2-Small-hf``: ``DepthAnythingForDepthEstimation`` on a DINOv2 backbone (patch 14), with the
  release's image processor settings (``DPTImageProcessor``: the shorter change of scale towards 518x518 keeping the
  aspect ratio, sides multiples of 14, bicubic, ImageNet mean and std). The backbone is four layers of width 32 and
  the neck and head are a few channels wide, so a frame runs in well under a second on a CPU.

Weights are transformers' initialisation under a seeded, forked RNG (the global RNG is left as it was), except the
neck and head convolutions: He-initialised, and the last one biased to 1, since with the default initialisation the
head's final ReLU gives (almost) zero everywhere and the map would test nothing.
"""

from __future__ import annotations

from pathlib import Path

import torch

from models.control.depth import DEPTH_FOLDER

__all__ = ["DEPTH_ANYTHING_V2_SMALL", "DEPTH_FOLDER", "TINY_DEPTH_MODELS", "write_tiny_depth_models"]

DEPTH_ANYTHING_V2_SMALL = "Depth-Anything-V2-Small-hf"
TINY_DEPTH_MODELS = (DEPTH_ANYTHING_V2_SMALL,)
"""The model folder names written into ``depth_estimation/``."""

PATCH_SIZE = 14
PROCESSOR_SIDE = 518  # the release's 37 x 14 patches
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PIL_BICUBIC = 3
LAST_LAYER_GAIN = 0.1
LAST_LAYER_BIAS = 1.0


def _depth_anything_config() -> object:
    """The release's layout (a DINOv2 backbone feeding four reassembled stages, relative depth), made tiny."""
    from transformers import DepthAnythingConfig, Dinov2Config

    backbone = Dinov2Config(
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=2,
        intermediate_size=64,
        patch_size=PATCH_SIZE,
        image_size=PROCESSOR_SIDE,
        out_indices=[1, 2, 3, 4],
        reshape_hidden_states=False,
    )
    return DepthAnythingConfig(
        backbone_config=backbone,
        patch_size=PATCH_SIZE,
        reassemble_hidden_size=32,
        reassemble_factors=[4, 2, 1, 0.5],
        neck_hidden_sizes=[8, 16, 32, 32],
        fusion_hidden_size=8,
        head_hidden_size=8,
        depth_estimation_type="relative",
    )


def tiny_depth_anything(seed: int = 0) -> torch.nn.Module:
    """A tiny ``DepthAnythingForDepthEstimation`` whose relative depth varies with the picture, in eval mode."""
    from transformers import DepthAnythingForDepthEstimation

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = DepthAnythingForDepthEstimation(_depth_anything_config())
        convolutions = [
            layer
            for name, layer in model.named_modules()
            if isinstance(layer, torch.nn.Conv2d | torch.nn.ConvTranspose2d) and not name.startswith("backbone")
        ]
        for layer in convolutions:
            torch.nn.init.kaiming_normal_(layer.weight)
            if layer.bias is not None:
                torch.nn.init.zeros_(layer.bias)
    last = model.head.conv3
    last.weight.data.mul_(LAST_LAYER_GAIN)
    torch.nn.init.constant_(last.bias, LAST_LAYER_BIAS)
    return model.eval()


def depth_anything_processor() -> object:
    """The image processor of the Depth Anything V2 releases, built from their settings."""
    from transformers import DPTImageProcessor

    return DPTImageProcessor(
        do_resize=True,
        size={"height": PROCESSOR_SIDE, "width": PROCESSOR_SIDE},
        keep_aspect_ratio=True,
        ensure_multiple_of=PATCH_SIZE,
        resample=PIL_BICUBIC,
        do_rescale=True,
        rescale_factor=1 / 255,
        do_normalize=True,
        image_mean=list(IMAGENET_MEAN),
        image_std=list(IMAGENET_STD),
        do_pad=False,
    )


def write_tiny_depth_models(models_dir: Path, seed: int = 0) -> list[Path]:
    """Write the tiny depth model folders into ``models_dir/depth_estimation``; returns the folders."""
    folder = Path(models_dir) / DEPTH_FOLDER / DEPTH_ANYTHING_V2_SMALL
    tiny_depth_anything(seed).save_pretrained(folder, safe_serialization=True)
    depth_anything_processor().save_pretrained(folder)
    return [folder]
