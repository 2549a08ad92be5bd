"""SD1.5 single files in the LDM layout: the tiny UNet and VAE written in that layout load back, through diffusers'
converters and configs read from shapes, to the very modules they came from; other families' files do not match."""

from __future__ import annotations

import pytest
import torch

from models.errors import StateDictError
from models.families.sd15.latents import SD15_LATENT, latent_format_from_config
from models.families.sd15.text_encoder import CHECKPOINT_CLIP_PREFIX, is_sd_clip_text, sd_clip_text_from_state_dict
from models.families.sd15.unet_checkpoint import (
    detect_sd15_unet,
    is_sd15_unet,
    sd15_unet_from_state_dict,
    sd15_unet_to_original,
)
from models.families.sd15.vae_checkpoint import (
    FramesVaeCodec,
    is_sd15_vae,
    sd15_vae_from_state_dict,
    sd15_vae_to_original,
)
from models.text_encoders.clip_text import clip_text_to_single_file, is_clip_l_text
from models.tiny.animatediff import TINY_SD15_UNET, tiny_sd15_unet, tiny_sd15_vae
from models.tiny.text_families import tiny_clip_l


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    left, right = a.state_dict(), b.state_dict()
    return left.keys() == right.keys() and all(torch.equal(left[key], right[key]) for key in left)


def test_unet_round_trips_through_the_ldm_layout() -> None:
    unet = tiny_sd15_unet()
    original = sd15_unet_to_original(unet)
    assert is_sd15_unet(original) and not is_sd15_vae(original)
    spec = detect_sd15_unet(original)
    assert spec.config["block_out_channels"] == list(TINY_SD15_UNET["block_out_channels"])
    assert spec.config["down_block_types"] == list(TINY_SD15_UNET["down_block_types"])
    assert (spec.config["cross_attention_dim"], spec.config["layers_per_block"]) == (32, 2)
    assert _same(sd15_unet_from_state_dict(dict(original), torch.float32), unet)


def test_unet_matcher_refuses_svd_and_sdxl_keys() -> None:
    original = sd15_unet_to_original(tiny_sd15_unet())
    meta = {key: torch.empty(tensor.shape, device="meta") for key, tensor in original.items()}
    assert is_sd15_unet(meta)
    for extra in (
        "model.diffusion_model.input_blocks.1.0.time_stack.in_layers.0.weight",
        "model.diffusion_model.label_emb.0.0.weight",
    ):
        assert not is_sd15_unet({**meta, extra: torch.empty(1, device="meta")})
        with pytest.raises(StateDictError):
            detect_sd15_unet({**meta, extra: torch.empty(1, device="meta")})


def test_vae_round_trips_and_codes_frames_as_images() -> None:
    vae = tiny_sd15_vae()
    original = sd15_vae_to_original(vae)
    assert is_sd15_vae(original) and not is_sd15_unet(original)
    assert not is_sd15_vae({**original, "first_stage_model.decoder.up.0.block.0.time_stack.bias": torch.zeros(1)})
    loaded = sd15_vae_from_state_dict(dict(original), torch.float32)
    assert _same(loaded, vae)
    assert latent_format_from_config(loaded.config) is SD15_LATENT
    video = torch.rand(1, 3, 3, 32, 32) * 2 - 1
    latent = FramesVaeCodec().encode(loaded, video)
    assert latent.shape == (1, 4, 3, 4, 4)
    second = loaded.encode(video[:, :, 1]).latent_dist.mode()
    assert torch.allclose(latent[:, :, 1], second, atol=1e-5)
    assert FramesVaeCodec().decode(loaded, latent).shape == (1, 3, 3, 32, 32)


def test_clip_loads_from_a_checkpoint_prefix_or_alone() -> None:
    clip = tiny_clip_l()
    alone = clip_text_to_single_file(clip)
    in_checkpoint = {CHECKPOINT_CLIP_PREFIX + key: tensor for key, tensor in alone.items()}
    in_checkpoint |= sd15_unet_to_original(tiny_sd15_unet())
    assert is_sd_clip_text(alone) and is_sd_clip_text(in_checkpoint) and not is_clip_l_text(in_checkpoint)
    assert _same(sd_clip_text_from_state_dict(in_checkpoint, torch.float32), clip)
    assert not is_sd_clip_text(sd15_unet_to_original(tiny_sd15_unet()))
