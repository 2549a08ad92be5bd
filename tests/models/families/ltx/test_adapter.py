"""``LTXAdapter``: packing, RoPE coordinates (keyframe guides appended at the end take their real frame's time),
per-token timesteps from a noise mask, conditioning checks, and the VAE codec's normalisation."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from models.errors import StateDictError
from models.families.base import LatentShapeError
from models.families.ltx.adapter import LTXAdapter, ltxv_video_coords, pack_latent, unpack_tokens
from models.families.ltx.checkpoint import LtxTransformerSpec
from models.families.ltx.family import LTX_TRANSFORMERS, LTX_VAES
from models.families.ltx.latents import LtxvCodec
from models.tiny.ltx import TINY_LTX_TRANSFORMER_CONFIG, tiny_ltx_transformer, tiny_ltx_vae

CAPTION = TINY_LTX_TRANSFORMER_CONFIG["caption_channels"]
FRAME_RATE = 24.0


class Recorder(torch.nn.Module):
    """Stands in for the transformer: records its keyword arguments and returns its input."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[dict[str, Any]] = []

    def forward(self, **kwargs: Any) -> tuple[torch.Tensor]:
        self.calls.append(kwargs)
        return (kwargs["hidden_states"],)


def adapter() -> LTXAdapter:
    return LTXAdapter(LtxTransformerSpec(dict(TINY_LTX_TRANSFORMER_CONFIG, patch_size=1, patch_size_t=1)))


def entry(**extras: Any) -> tuple[torch.Tensor, dict[str, Any]]:
    return torch.randn(1, 6, CAPTION, generator=torch.Generator().manual_seed(0)), extras


@pytest.mark.parametrize(("patch", "patch_t"), [(1, 1), (2, 1), (2, 2)])
def test_pack_and_unpack_are_inverse(patch: int, patch_t: int) -> None:
    latent = torch.randn(2, 3, 4, 4, 6)
    tokens = pack_latent(latent, patch, patch_t)
    assert tokens.shape == (2, 4 * 4 * 6 // (patch * patch * patch_t), 3 * patch * patch * patch_t)
    assert torch.equal(unpack_tokens(tokens, 4, 4, 6, patch, patch_t), latent)
    assert torch.equal(pack_latent(latent)[0, 1], latent[0, :, 0, 0, 1])  # frame-major, then rows, then columns


def test_keyframe_tokens_get_their_frames_time() -> None:
    """Latent frames 3 (one image guide at pixel frame 16) and 4..5 (a 9-frame guide at pixel frame 40) appended
    after 3 generated latent frames."""
    coords = ltxv_video_coords(1, 6, 2, 3, FRAME_RATE, [(3, 1, 16), (4, 2, 40)])
    assert coords.shape == (1, 3, 6 * 2 * 3)
    time = coords[0, 0].reshape(6, 2, 3)
    expected = [0.0, 8.0, 16.0, 16.0, 40.0, 48.0]
    for frame, pixel in enumerate(expected):
        assert torch.allclose(time[frame], torch.full((2, 3), pixel / FRAME_RATE)), frame
    rows = coords[0, 1].reshape(6, 2, 3)
    columns = coords[0, 2].reshape(6, 2, 3)
    assert torch.equal(rows[3], rows[0]) and torch.equal(rows[0][:, 0], torch.tensor([0.0, 32.0]))
    assert torch.equal(columns[5], columns[1]) and torch.equal(columns[0][0], torch.tensor([0.0, 32.0, 64.0]))


def test_coordinates_without_keyframes_equal_the_interpolation_scale_path() -> None:
    transformer = tiny_ltx_transformer()
    generator = torch.Generator().manual_seed(2)
    tokens = torch.randn(1, 2 * 3 * 3, 128, generator=generator)
    common = {
        "hidden_states": tokens,
        "encoder_hidden_states": torch.randn(1, 6, CAPTION, generator=generator),
        "timestep": torch.tensor([500.0]),
        "encoder_attention_mask": torch.ones(1, 6),
        "return_dict": False,
    }
    with torch.no_grad():
        scaled = transformer(num_frames=2, height=3, width=3, rope_interpolation_scale=(8 / 25, 32, 32), **common)
        coords = transformer(video_coords=ltxv_video_coords(1, 2, 3, 3, 25.0), **common)
    assert torch.equal(scaled[0], coords[0])


def test_predict_passes_keyframe_coordinates_and_the_text_mask() -> None:
    network = Recorder()
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0, 0.0, 0.0]])
    x = torch.randn(2, 128, 3, 2, 2)
    output = adapter().predict(
        network,
        x,
        torch.tensor([900.0, 900.0]),
        entry(attention_mask=mask, frame_rate=FRAME_RATE, keyframe_idxs=[(2, 1, 17)]),
        torch.float32,
    )
    assert torch.equal(output, x)  # unpacked back as packed
    (call,) = network.calls
    assert torch.equal(call["encoder_attention_mask"], mask.expand(2, -1))
    assert call["encoder_hidden_states"].shape == (2, 6, CAPTION)
    time = call["video_coords"][:, 0].reshape(2, 3, 2, 2)
    assert torch.allclose(time[:, 2], torch.tensor(17.0 / FRAME_RATE))
    assert torch.allclose(time[:, 1], torch.tensor(8.0 / FRAME_RATE))
    assert "rope_interpolation_scale" not in call

    adapter().predict(network, x, torch.tensor([900.0, 900.0]), entry(), torch.float32)
    plain = network.calls[-1]
    assert plain["rope_interpolation_scale"] == (8 / 25.0, 32, 32)  # LTXPipeline's default frame rate
    assert (plain["num_frames"], plain["height"], plain["width"]) == (3, 2, 2)
    assert torch.equal(plain["encoder_attention_mask"], torch.ones(2, 6))


def test_noise_mask_makes_per_token_timesteps() -> None:
    network = Recorder()
    mask = torch.ones(1, 1, 3, 2, 2)
    mask[:, :, 0] = 0.0
    mask[:, :, 2] = 0.25
    adapter().predict(network, torch.randn(1, 128, 3, 2, 2), torch.tensor([800.0]), entry(), torch.float32, mask)
    timestep = network.calls[0]["timestep"]
    assert timestep.shape == (1, 12)
    assert torch.equal(timestep[0], torch.tensor([0.0] * 4 + [800.0] * 4 + [200.0] * 4))
    clean = torch.randn(1, 128, 3, 2, 2)
    assert adapter().known_state(None, torch.tensor(0.5), torch.randn_like(clean), clean) is clean


def test_conditioning_checks_name_the_problem() -> None:
    latent = torch.zeros(1, 128, 3, 2, 2)
    with pytest.raises(LatentShapeError, match=rf"takes \[batch, tokens, {CAPTION}\]"):
        adapter().check_conditioning((torch.zeros(1, 6, 4096), {}), latent)
    with pytest.raises(LatentShapeError, match="attention_mask has shape"):
        adapter().check_conditioning(entry(attention_mask=torch.ones(1, 5)), latent)
    with pytest.raises(LatentShapeError, match="LTXVCropGuides"):
        adapter().check_conditioning(entry(keyframe_idxs=[(2, 2, 16)]), latent)
    with pytest.raises(LatentShapeError, match="latent_start, latent_frames, pixel_frame_idx"):
        adapter().check_conditioning(entry(keyframe_idxs=[(2, 1)]), latent)
    adapter().check_conditioning(entry(attention_mask=torch.ones(1, 6), keyframe_idxs=[(2, 1, 16)]), latent)
    assert adapter().default_sampling().shift == pytest.approx(math.exp(2.37))


def test_codec_encodes_the_normalised_latent() -> None:
    vae = tiny_ltx_vae()
    video = torch.rand(1, 3, 9, 64, 64, generator=torch.Generator().manual_seed(4)) * 2 - 1
    with torch.no_grad():
        latent = LtxvCodec().encode(vae, video)
        raw = vae.encode(video).latent_dist.mode()
        decoded = LtxvCodec().decode(vae, latent)
        expected = vae.decode(raw, torch.tensor([0.0]), return_dict=False)[0]
    mean, std = vae.latents_mean.view(1, -1, 1, 1, 1), vae.latents_std.view(1, -1, 1, 1, 1)
    assert latent.shape == (1, 128, 2, 2, 2)
    assert torch.allclose(latent, (raw - mean) / std)
    assert decoded.shape == video.shape
    assert (decoded - expected).abs().max() < 1e-5


def test_diffusers_configs_give_the_adapter_and_latent_format() -> None:
    config = dict(tiny_ltx_transformer().config)
    assert LTX_TRANSFORMERS.adapter_from_config(config).describe() == "LTX-Video, dim 128, 2 layers"
    assert LTX_VAES.latent_format_from_config(dict(tiny_ltx_vae().config)).channels == 128
    with pytest.raises(StateDictError, match="16 latent channels"):
        LTX_VAES.latent_format_from_config({"latent_channels": 16})
    with pytest.raises(LatentShapeError, match="input channels"):
        LTX_TRANSFORMERS.adapter_from_config({**config, "in_channels": 64})
