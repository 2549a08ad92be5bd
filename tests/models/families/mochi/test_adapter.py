"""``MochiAdapter`` beyond the pipeline fidelity test: its conditioning checks, its defaults and its estimates."""

from __future__ import annotations

import pytest
import torch

from models.families.base import LatentShapeError
from models.families.mochi.adapter import MochiAdapter
from models.families.mochi.checkpoint import mochi_spec_from_config
from models.sampling.model_sampling import FlowSampling
from models.tiny.mochi import TINY_MOCHI_TRANSFORMER, TINY_TEXT_DIM, tiny_mochi_transformer

LATENT = torch.zeros(1, 12, 2, 8, 8)


@pytest.fixture(scope="module")
def adapter() -> MochiAdapter:
    return MochiAdapter(mochi_spec_from_config(TINY_MOCHI_TRANSFORMER))


def _entry(tokens: int = 8, dim: int = TINY_TEXT_DIM, mask: torch.Tensor | None = None) -> tuple:
    extras = {} if mask is None else {"attention_mask": mask}
    return torch.randn(1, tokens, dim, generator=torch.Generator().manual_seed(0)), extras


def test_defaults(adapter: MochiAdapter) -> None:
    assert adapter.family == "mochi"
    assert adapter.default_sampling() == FlowSampling(shift=1.0)
    assert adapter.work_estimate(LATENT, streams=2).activation_bytes > 0


def test_good_conditioning_passes(adapter: MochiAdapter) -> None:
    adapter.check_conditioning(_entry(mask=torch.ones(1, 8)), LATENT)
    adapter.check_conditioning(_entry(), torch.zeros(3, 12, 2, 8, 8))


@pytest.mark.parametrize(
    ("entry", "latent", "message"),
    [
        (_entry(dim=4096), LATENT, r"takes \[batch, tokens, 32\] \(T5 embeddings"),
        (_entry(mask=torch.ones(1, 7)), LATENT, r"for 8 text tokens it must be \[batch, 8\]"),
        (_entry(mask=torch.ones(8)), LATENT, "attention_mask has shape"),
        (_entry(), torch.zeros(1, 12, 2, 8, 9), "multiples of 2 .*multiples of 16 pixels"),
        ((torch.zeros(2, 8, TINY_TEXT_DIM), {}), torch.zeros(3, 12, 2, 8, 8), "batch 2 but the latent has batch 3"),
    ],
)
def test_bad_conditioning_is_named(adapter: MochiAdapter, entry: tuple, latent: torch.Tensor, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        adapter.check_conditioning(entry, latent)


def test_missing_mask_counts_every_token(adapter: MochiAdapter) -> None:
    network = tiny_mochi_transformer()
    x = torch.randn(1, 12, 2, 8, 8, generator=torch.Generator().manual_seed(1))
    timestep = torch.tensor([700.0])
    with torch.no_grad():
        plain = adapter.predict(network, x, timestep, _entry(), torch.float32)
        masked = adapter.predict(network, x, timestep, _entry(mask=torch.ones(1, 8)), torch.float32)
        padded = adapter.predict(network, x, timestep, _entry(mask=torch.tensor([[1] * 4 + [0] * 4])), torch.float32)
    assert torch.equal(plain, masked)
    assert not torch.allclose(plain, padded)


def test_other_latent_channels_are_refused() -> None:
    with pytest.raises(LatentShapeError, match="16 input channels do not match the Mochi latent"):
        MochiAdapter(mochi_spec_from_config({**TINY_MOCHI_TRANSFORMER, "in_channels": 16}))
