"""``HunyuanAdapter``: conditioning checks with messages that say what to connect, embedded guidance, the sampling
defaults, and the token-replace switch."""

from __future__ import annotations

import pytest
import torch

from models.families.base import LatentShapeError
from models.families.hunyuan.adapter import DEFAULT_SHIFT, HunyuanAdapter
from models.families.hunyuan.family import hunyuan_adapter_from_config
from models.sampling.model_sampling import FlowSampling
from models.tiny.hunyuan import TINY_POOLED_DIM, TINY_TEXT_DIM, tiny_hunyuan_transformer

LATENT = torch.zeros(1, 16, 3, 8, 8)


def _adapter(variant: str) -> HunyuanAdapter:
    return hunyuan_adapter_from_config(dict(tiny_hunyuan_transformer(variant).config))


def _entry(**extras: object) -> tuple[torch.Tensor, dict]:
    generator = torch.Generator().manual_seed(0)
    values = {"pooled_output": torch.randn(1, TINY_POOLED_DIM, generator=generator), **extras}
    return torch.randn(1, 8, TINY_TEXT_DIM, generator=generator), values


def test_sampling_defaults_and_clean_known_state() -> None:
    adapter = _adapter("t2v")
    assert adapter.default_sampling() == FlowSampling(shift=DEFAULT_SHIFT) and DEFAULT_SHIFT == 7.0
    clean, noise = torch.ones(1, 16, 1, 2, 2), torch.randn(1, 16, 1, 2, 2)
    assert adapter.known_state(adapter.default_sampling(), torch.tensor(0.5), noise, clean) is clean


def test_missing_pooled_output_says_which_encoder() -> None:
    embeds, extras = _entry()
    del extras["pooled_output"]
    with pytest.raises(ValueError, match="DualCLIPLoader type hunyuan_video"):
        _adapter("t2v").check_conditioning((embeds, extras), LATENT)


def test_text_of_another_family_is_refused() -> None:
    with pytest.raises(LatentShapeError, match=f"takes \\[batch, tokens, {TINY_TEXT_DIM}\\]"):
        _adapter("t2v").check_conditioning((torch.zeros(1, 8, 64), _entry()[1]), LATENT)


def test_latent_size_must_fit_the_patch() -> None:
    with pytest.raises(LatentShapeError, match="multiples of 2"):
        _adapter("t2v").check_conditioning(_entry(), torch.zeros(1, 16, 3, 7, 8))


@pytest.mark.parametrize(
    ("variant", "extras", "message"),
    [
        ("i2v_concat", {}, "needs a start image"),
        ("t2v", {"concat_latent_image": torch.zeros(1, 16, 1, 8, 8)}, "needs the 33-channel image-to-video model"),
        ("i2v_concat", {"concat_latent_image": torch.zeros(1, 16, 1, 8, 8), "guiding_frame_index": 0}, "token-replace"),
        ("t2v", {"guiding_frame_index": 0}, "token-replace blocks"),  # a plain diffusers folder
        ("i2v_replace", {"guiding_frame_index": 2}, "only the first frame"),
        ("i2v_replace", {"ref_latent": torch.zeros(1, 16, 1, 8, 8)}, "custom"),
        ("i2v_concat", {"concat_latent_image": torch.zeros(1, 16, 1, 4, 4)}, "same width and height"),
    ],
)
def test_image_conditioning_mismatches_are_explained(variant: str, extras: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _adapter(variant).check_conditioning(_entry(**extras), LATENT)


def test_image_conditioning_that_fits_passes() -> None:
    image = torch.zeros(1, 16, 1, 8, 8)
    _adapter("i2v_concat").check_conditioning(_entry(concat_latent_image=image), LATENT)
    _adapter("i2v_replace").check_conditioning(_entry(guiding_frame_index=0), LATENT)


def test_guidance_defaults_to_six_and_is_embedded() -> None:
    network, adapter = tiny_hunyuan_transformer("t2v"), _adapter("t2v")
    x, timestep = torch.randn(1, 16, 2, 4, 4, generator=torch.Generator().manual_seed(1)), torch.tensor([700.0])

    def predict(**extras: object) -> torch.Tensor:
        with torch.no_grad():
            return adapter.predict(network, x, timestep, _entry(**extras), torch.float32)

    assert torch.equal(predict(), predict(guidance=6.0))
    assert not torch.allclose(predict(), predict(guidance=3.5))


def test_token_replace_network_without_guiding_frame_computes_the_plain_blocks() -> None:
    """A 16-channel single file is built with token-replace blocks; without ``guiding_frame_index`` it must match
    the plain text-to-video network, and with it differ in the first frame's modulation."""
    plain, replace = tiny_hunyuan_transformer("t2v"), tiny_hunyuan_transformer("i2v_replace")
    replace.load_state_dict(plain.state_dict())
    adapter = _adapter("i2v_replace")
    x, timestep = torch.randn(1, 16, 2, 4, 4, generator=torch.Generator().manual_seed(2)), torch.tensor([900.0])
    with torch.no_grad():
        expected = adapter.predict(plain, x, timestep, _entry(), torch.float32)
        same = adapter.predict(replace, x, timestep, _entry(), torch.float32)
        guided = adapter.predict(replace, x, timestep, _entry(guiding_frame_index=0), torch.float32)
    assert (same - expected).abs().max() < 1e-5
    assert (guided - expected).abs().max() > 1e-4
    assert not replace.time_text_embed._forward_hooks  # the switch leaves no hook behind
