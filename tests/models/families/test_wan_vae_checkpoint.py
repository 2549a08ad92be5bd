"""Wan VAEs from single files: 2.1 and 2.2 told apart, their configs read from shapes (the released ones too), the
published latent statistics attached, and the key mapping exact both ways."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from diffusers import AutoencoderKLWan

from models.errors import StateDictError
from models.families.wan.latents import WAN21_LATENT, WAN22_LATENT
from models.families.wan.vae_checkpoint import detect_wan_vae, is_wan_vae, wan_vae_from_state_dict, wan_vae_to_original
from models.loading import load_diffusers_folder, load_state_dict
from models.tiny.wan import TINY_WAN_VAES, tiny_wan_vae, write_tiny_wan_files

LATENTS = {"2.1": WAN21_LATENT, "2.2": WAN22_LATENT}


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("models")
    write_tiny_wan_files(root)
    return root


def file_of(models_dir: Path, stem: str) -> dict[str, torch.Tensor]:
    return load_state_dict(models_dir / "vae" / f"{stem}.safetensors")


def decoded(vae: AutoencoderKLWan) -> torch.Tensor:
    """Two latent frames of 4x4 decoded (5 video frames)."""
    latent = torch.randn(1, vae.config.z_dim, 2, 4, 4, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return vae.decode(latent).sample


def encoded(vae: AutoencoderKLWan) -> torch.Tensor:
    """The latent mean of five 32x32 frames."""
    video = torch.rand(1, 3, 5, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        return vae.encode(video).latent_dist.mean


@pytest.mark.parametrize("stem", list(TINY_WAN_VAES))
def test_each_tiny_vae_file_loads_as_the_vae_it_stands_for(models_dir: Path, stem: str) -> None:
    tiny = TINY_WAN_VAES[stem]
    state_dict = file_of(models_dir, stem)
    assert is_wan_vae(state_dict)
    spec = detect_wan_vae(state_dict)
    assert spec.version == tiny.version
    assert dict(spec.config) == dict(tiny.config)
    vae = wan_vae_from_state_dict(state_dict, torch.float32)
    latent = LATENTS[tiny.version]
    assert (vae.config.latents_mean, vae.config.latents_std) == (list(latent.mean), list(latent.std))
    reference = tiny_wan_vae(stem)
    assert torch.equal(decoded(vae), decoded(reference))
    assert torch.equal(encoded(vae), encoded(reference))
    assert decoded(vae).shape == (
        1,
        3,
        5,
        4 * tiny.config["scale_factor_spatial"],
        4 * tiny.config["scale_factor_spatial"],
    )


@pytest.mark.parametrize("stem", list(TINY_WAN_VAES))
def test_single_file_and_diffusers_folder_give_the_same_vae(models_dir: Path, stem: str, tmp_path: Path) -> None:
    tiny_wan_vae(stem).save_pretrained(tmp_path)
    from_folder = load_diffusers_folder(tmp_path, torch_dtype=torch.float32)
    from_file = wan_vae_from_state_dict(file_of(models_dir, stem), torch.float32)
    folder_state = from_folder.state_dict()
    assert all(torch.equal(tensor, folder_state[key]) for key, tensor in from_file.state_dict().items())
    assert from_file.config.latents_std == from_folder.config.latents_std
    assert (decoded(from_file) - decoded(from_folder)).abs().max() < 1e-5


@pytest.mark.parametrize("stem", list(TINY_WAN_VAES))
def test_to_original_inverts_the_conversion_exactly(stem: str) -> None:
    original = wan_vae_to_original(tiny_wan_vae(stem, rounded=False).state_dict())
    loaded = wan_vae_from_state_dict(original, torch.float32)
    back = wan_vae_to_original(loaded.state_dict())
    assert back.keys() == original.keys()
    assert all(torch.equal(back[key], original[key]) for key in original)


RELEASED = {
    # The VAE configs of Wan-AI/Wan2.1-T2V-14B-Diffusers and Wan-AI/Wan2.2-TI2V-5B-Diffusers (latents aside).
    "2.1": {"base_dim": 96, "z_dim": 16},
    "2.2": {
        "base_dim": 160,
        "decoder_base_dim": 256,
        "z_dim": 48,
        "is_residual": True,
        "in_channels": 12,
        "out_channels": 12,
        "patch_size": 2,
        "scale_factor_spatial": 16,
    },
}
RELEASED_KEYS = {
    # A few keys of wan_2.1_vae.safetensors / wan2.2_vae.safetensors, in Wan's module naming.
    "2.1": (
        "encoder.downsamples.5.time_conv.weight",  # stage 1 ends with a temporal downsample
        "encoder.downsamples.3.shortcut.weight",
        "decoder.upsamples.3.time_conv.weight",
        "decoder.upsamples.4.shortcut.weight",
        "decoder.upsamples.11.resample.1.weight",
        "decoder.upsamples.14.residual.6.bias",
        "decoder.middle.1.to_qkv.weight",
        "conv2.weight",
    ),
    "2.2": (
        "encoder.downsamples.0.downsamples.2.resample.1.weight",
        "encoder.downsamples.1.downsamples.2.time_conv.weight",
        "encoder.downsamples.1.downsamples.0.shortcut.weight",
        "decoder.upsamples.0.upsamples.3.time_conv.weight",
        "decoder.upsamples.3.upsamples.2.residual.6.weight",
        "decoder.head.2.weight",
    ),
}


@pytest.mark.parametrize("version", list(RELEASED))
def test_released_vaes_are_detected_from_shapes(version: str) -> None:
    latent = LATENTS[version]
    config = {**RELEASED[version], "latents_mean": list(latent.mean), "latents_std": list(latent.std)}
    with torch.device("meta"):
        released = AutoencoderKLWan(**config)
    original = wan_vae_to_original(released.state_dict())
    assert set(RELEASED_KEYS[version]) <= original.keys()
    spec = detect_wan_vae({"first_stage_model." + key: tensor for key, tensor in original.items()})
    assert spec.version == version
    assert {key: spec.config[key] for key in released.config if key in spec.config} == {
        key: value for key, value in released.config.items() if key in spec.config
    }
    assert spec.describe() == (
        f"Wan {version} VAE, {latent.channels} latent channels, {latent.spatial_ratio}x spatial and 4x temporal "
        "compression"
    )


def test_a_transformer_or_an_incomplete_vae_is_refused(models_dir: Path) -> None:
    transformer = load_state_dict(models_dir / "diffusion_models" / "wan2.1_t2v_1.3B_fp16.safetensors")
    assert not is_wan_vae(transformer)
    with pytest.raises(StateDictError, match="not a Wan VAE"):
        wan_vae_from_state_dict(transformer, torch.float32)
    state_dict = file_of(models_dir, "wan2.2_vae")
    del state_dict["decoder.upsamples.1.upsamples.0.residual.2.weight"]
    with pytest.raises(StateDictError, match=r"1 missing \(decoder\.upsamples\.1\.upsamples\.0\.residual\.2\.weight\)"):
        wan_vae_from_state_dict(state_dict, torch.float32)
    state_dict = file_of(models_dir, "wan_2.1_vae")
    state_dict["conv2.weight"] = torch.zeros(8, 8, 1, 1, 1)
    with pytest.raises(StateDictError, match="8 latent channels"):
        detect_wan_vae(state_dict)
