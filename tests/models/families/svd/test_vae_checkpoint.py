"""The SVD VAE from a single file (encoder from the conditioner, temporal decoder from ``first_stage_model``) and its
codec (frames as the VAE's batch, decoded ``num_frames`` at a time)."""

from __future__ import annotations

import pytest
import torch
from accelerate import init_empty_weights
from diffusers import AutoencoderKLTemporalDecoder
from safetensors.torch import load_file

from models.families.catalog import vae_family_of
from models.families.svd.vae_checkpoint import (
    CONDITIONER_ENCODER_PREFIX,
    SvdCodec,
    SvdVaeSpec,
    detect_svd_vae,
    is_svd_vae,
    svd_vae_from_state_dict,
    svd_vae_to_original,
)
from models.tiny.svd import CHECKPOINT_FILE, TINY_SVD_VAE, tiny_svd_vae, write_tiny_svd_files

RELEASE_KEYS = (  # tensor names of stabilityai's svd.safetensors (public key listings)
    "conditioner.embedders.3.encoder.encoder.conv_in.weight",
    "conditioner.embedders.3.encoder.encoder.down.0.downsample.conv.weight",
    "conditioner.embedders.3.encoder.encoder.down.1.block.0.nin_shortcut.weight",
    "conditioner.embedders.3.encoder.encoder.mid.attn_1.q.weight",
    "conditioner.embedders.3.encoder.encoder.mid.attn_1.proj_out.bias",
    "conditioner.embedders.3.encoder.encoder.mid.block_2.norm2.weight",
    "conditioner.embedders.3.encoder.encoder.norm_out.weight",
    "conditioner.embedders.3.encoder.quant_conv.weight",
    "first_stage_model.encoder.conv_in.weight",
    "first_stage_model.decoder.mid.block_1.mix_factor",
    "first_stage_model.decoder.mid.block_1.time_stack.in_layers.0.weight",
    "first_stage_model.decoder.up.0.block.0.time_stack.out_layers.3.weight",
    "first_stage_model.decoder.conv_out.time_mix_conv.weight",
)


RELEASE_CONFIG = {  # stabilityai/stable-video-diffusion-img2vid-xt vae/config.json
    "block_out_channels": (128, 256, 512, 512),
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "layers_per_block": 2,
    "latent_channels": 4,
}


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory: pytest.TempPathFactory) -> dict[str, torch.Tensor]:
    folder = tmp_path_factory.mktemp("svd")
    write_tiny_svd_files(folder)
    return load_file(folder / CHECKPOINT_FILE)


def test_the_mapping_gives_the_release_names() -> None:
    with init_empty_weights():
        model = AutoencoderKLTemporalDecoder(**RELEASE_CONFIG)
    names = svd_vae_to_original(model.state_dict(), SvdVaeSpec(dict(model.config)))
    assert [key for key in RELEASE_KEYS if key not in names] == []


def test_the_tiny_file_loads_to_the_model_it_was_written_from(tiny_file: dict[str, torch.Tensor]) -> None:
    assert is_svd_vae(tiny_file) and vae_family_of(tiny_file).name == "svd"
    assert detect_svd_vae(tiny_file).config["block_out_channels"] == TINY_SVD_VAE["block_out_channels"]
    loaded = svd_vae_from_state_dict(tiny_file, torch.float32)
    expected = tiny_svd_vae().state_dict()
    assert all(torch.equal(tensor, expected[key]) for key, tensor in loaded.state_dict().items())


def test_without_the_conditioner_the_encoder_has_no_quant_conv(tiny_file: dict[str, torch.Tensor]) -> None:
    own = {key: t for key, t in tiny_file.items() if not key.startswith(CONDITIONER_ENCODER_PREFIX)}
    loaded = svd_vae_from_state_dict(own, torch.float32)
    expected = tiny_svd_vae().state_dict()
    assert torch.equal(loaded.state_dict()["encoder.conv_in.weight"], expected["encoder.conv_in.weight"])
    weight = loaded.state_dict()["quant_conv.weight"]
    assert torch.equal(weight.flatten(1), torch.eye(weight.shape[0]))


def test_the_codec_takes_frames_as_the_batch() -> None:
    vae = tiny_svd_vae()
    video = torch.rand(1, 3, 2, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    codec = SvdCodec()
    with torch.no_grad():
        latent = codec.encode(vae, video)
        assert latent.shape == (1, 4, 2, 4, 4)
        expected = vae.encode(video[0].transpose(0, 1)).latent_dist.mode()
        torch.testing.assert_close(latent[0].transpose(0, 1), expected)
        decoded = codec.decode(vae, latent)
        reference = vae.decode(latent[0].transpose(0, 1), num_frames=2).sample
    assert decoded.shape == (1, 3, 2, 32, 32)
    torch.testing.assert_close(decoded[0].transpose(0, 1), reference)
