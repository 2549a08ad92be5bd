"""Stable Diffusion 1.5 VAEs from single files in the original LDM key layout (``encoder.down.N.block.M``,
``encoder.mid.attn_1``, ``decoder.up.N``, ``quant_conv``; under ``first_stage_model.`` in checkpoints, bare in
``vae-ft-mse-840000-ema-pruned.safetensors``), built as diffusers' ``AutoencoderKL``.

The LDM ``ddconfig`` is read from shapes (base width from ``encoder.conv_in``, multipliers from each level's first
resnet, resnets per level, latent channels from ``decoder.conv_in``); diffusers'
``create_vae_diffusers_config_from_ldm`` and ``convert_ldm_vae_checkpoint`` do the rest. SVD's VAE (temporal decoder
layers) is not an SD1.5 VAE.

A video is coded as a batch of images (``FramesVaeCodec``), as ``AnimateDiffPipeline`` decodes it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import torch

from models.errors import StateDictError
from models.families.kinds import VaeCodec
from models.families.sd15.latents import SCALING_FACTOR
from models.families.single_file import StateShapes, build_from_state_dict, key_prefix

if TYPE_CHECKING:
    from diffusers import AutoencoderKL

__all__ = [
    "LDM_VAE_PREFIX",
    "FramesVaeCodec",
    "detect_sd15_vae",
    "is_sd15_vae",
    "sd15_vae_from_state_dict",
    "sd15_vae_to_original",
]

LDM_VAE_PREFIX = "first_stage_model."
FAMILY = "Stable Diffusion 1.5"
_IDENTITY = "decoder.mid.block_1.conv1.weight"
_COMPANIONS = ("encoder.conv_in.weight", "decoder.conv_in.weight", "post_quant_conv.weight")
_TEMPORAL = ("time_stack", "time_mix", "mix_factor")  # SVD's temporal decoder
_ATTENTION_TO_LDM = (
    ("group_norm.", "norm."),
    ("to_q.", "q."),
    ("to_k.", "k."),
    ("to_v.", "v."),
    ("to_out.0.", "proj_out."),
)


class FramesVaeCodec(VaeCodec):
    """An image VAE coding a video ``[B, 3, N, H, W]`` frame by frame (the frames as one batch)."""

    def encode(self, module: torch.nn.Module, video: torch.Tensor) -> torch.Tensor:
        frames = _frames_as_batch(video)
        latents = module.encode(frames).latent_dist.mode()
        return _batch_as_frames(latents, video.shape[0])

    def decode(self, module: torch.nn.Module, latent: torch.Tensor) -> torch.Tensor:
        images = module.decode(_frames_as_batch(latent), return_dict=False)[0]
        return _batch_as_frames(images, latent.shape[0])


def is_sd15_vae(state_dict: Mapping[str, torch.Tensor]) -> bool:
    """Whether ``state_dict`` holds an LDM-layout image VAE (any prefix; not SVD's temporal one)."""
    prefix = _prefix_of(state_dict)
    if prefix is None:
        return False
    return not any(key.startswith(prefix) and marker in key for key in state_dict for marker in _TEMPORAL)


def detect_sd15_vae(state_dict: Mapping[str, torch.Tensor]) -> dict[str, object]:
    """The ``AutoencoderKL`` config of an LDM VAE from its shapes; ``StateDictError`` for another model."""
    from diffusers.loaders.single_file_utils import create_vae_diffusers_config_from_ldm

    prefix = _prefix_of(state_dict)
    if prefix is None or not is_sd15_vae(state_dict):
        raise StateDictError(f"not a {FAMILY} VAE: no {_IDENTITY} next to {', '.join(_COMPANIONS)}")
    shapes = StateShapes(state_dict, prefix, f"{FAMILY} VAE")
    width, in_channels = shapes.get("encoder.conv_in.weight", 4)[:2]
    levels = shapes.count("encoder.down")
    multipliers = [shapes.get(f"encoder.down.{level}.block.0.conv2.weight", 4)[0] // width for level in range(levels)]
    ddconfig = {
        "in_channels": in_channels,
        "out_ch": shapes.get("decoder.conv_out.weight", 4)[0],
        "ch": width,
        "ch_mult": multipliers,
        "num_res_blocks": shapes.count("encoder.down.0.block"),
        "z_channels": shapes.get("decoder.conv_in.weight", 4)[1],
    }
    original = {"model": {"params": {"first_stage_config": {"params": {"ddconfig": ddconfig}}}}}
    return create_vae_diffusers_config_from_ldm(original, state_dict, scaling_factor=SCALING_FACTOR)


def sd15_vae_from_state_dict(state_dict: Mapping[str, torch.Tensor], dtype: torch.dtype) -> AutoencoderKL:
    """The ``AutoencoderKL`` of an LDM VAE file (other models' keys ignored), in ``dtype``."""
    from diffusers import AutoencoderKL
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

    config = detect_sd15_vae(state_dict)
    prefix = _prefix_of(state_dict)
    assert prefix is not None
    ldm = {LDM_VAE_PREFIX + key[len(prefix) :]: tensor for key, tensor in state_dict.items() if key.startswith(prefix)}
    converted = convert_ldm_vae_checkpoint(ldm, config)
    return build_from_state_dict(AutoencoderKL, config, converted, dtype, f"{FAMILY} VAE")


def sd15_vae_to_original(vae: AutoencoderKL, prefix: str = LDM_VAE_PREFIX) -> dict[str, torch.Tensor]:
    """The VAE's tensors in the LDM layout under ``prefix`` (attention projections as 1x1 convolutions)."""
    from diffusers.loaders.single_file_utils import DIFFUSERS_TO_LDM_MAPPING

    fixed = DIFFUSERS_TO_LDM_MAPPING["vae"]
    levels = len(vae.config["block_out_channels"])
    tensors = {}
    for key, tensor in vae.state_dict().items():
        name = fixed.get(key) or _ldm_name(key, levels)
        if ".attn_1." in name and tensor.dim() == 2:
            tensor = tensor[:, :, None, None]
        tensors[prefix + name] = tensor.detach().contiguous()
    return tensors


def _ldm_name(key: str, levels: int) -> str:
    side, block, *rest = key.split(".")
    if block == "mid_block":
        kind, index, *tail = rest
        if kind == "attentions":
            return f"{side}.mid.attn_1.{_attention_name('.'.join(tail))}"
        return f"{side}.mid.block_{int(index) + 1}.{_resnet_name('.'.join(tail))}"
    level, kind, index, *tail = rest
    ldm_level = int(level) if side == "encoder" else levels - 1 - int(level)
    stage = "down" if side == "encoder" else "up"
    if kind in ("downsamplers", "upsamplers"):
        return f"{side}.{stage}.{ldm_level}.{stage}sample.{'.'.join(tail)}"
    return f"{side}.{stage}.{ldm_level}.block.{index}.{_resnet_name('.'.join(tail))}"


def _resnet_name(name: str) -> str:
    return name.replace("conv_shortcut.", "nin_shortcut.")


def _attention_name(name: str) -> str:
    for diffusers_name, ldm_name in _ATTENTION_TO_LDM:
        if name.startswith(diffusers_name):
            return ldm_name + name[len(diffusers_name) :]
    return name


def _frames_as_batch(video: torch.Tensor) -> torch.Tensor:
    """``[B, C, N, H, W]`` -> ``[B * N, C, H, W]``."""
    return video.permute(0, 2, 1, 3, 4).reshape(-1, video.shape[1], *video.shape[3:])


def _batch_as_frames(images: torch.Tensor, batch: int) -> torch.Tensor:
    """``[B * N, C, H, W]`` -> ``[B, C, N, H, W]``."""
    return images.reshape(batch, -1, *images.shape[1:]).permute(0, 2, 1, 3, 4)


def _prefix_of(state_dict: Mapping[str, torch.Tensor]) -> str | None:
    return key_prefix(state_dict, _IDENTITY, *_COMPANIONS)
