"""The tiny Mochi stand-ins: the release file names and layouts, bfloat16, holding exactly the weights the builders
give; seeded, and leaving the global RNG alone."""

from __future__ import annotations

from pathlib import Path

import torch

from models.families.mochi.checkpoint import ORIGINAL_PREFIX
from models.loading import load_state_dict
from models.tiny.mochi import (
    TRANSFORMER_FILE,
    VAE_FILE,
    tiny_mochi_transformer,
    tiny_mochi_vae,
    write_tiny_mochi_files,
)


def test_files_are_written_as_released(tmp_path: Path) -> None:
    paths = write_tiny_mochi_files(tmp_path)
    assert paths == [
        tmp_path / "diffusion_models/mochi_preview_bf16.safetensors",
        tmp_path / "vae/mochi_vae.safetensors",
    ]
    assert [tmp_path / TRANSFORMER_FILE, tmp_path / VAE_FILE] == paths
    transformer = load_state_dict(paths[0])
    vae = load_state_dict(paths[1])
    assert all(key.startswith(ORIGINAL_PREFIX) for key in transformer)
    assert {key.split(".", 1)[0] for key in vae} == {"encoder", "decoder"}
    assert {t.dtype for t in transformer.values()} == {t.dtype for t in vae.values()} == {torch.bfloat16}
    assert sum(t.numel() for t in transformer.values()) < 1_000_000
    assert sum(t.numel() for t in vae.values()) < 3_000_000


def test_builders_are_seeded_and_leave_the_global_rng_alone() -> None:
    state = torch.random.get_rng_state()
    first = tiny_mochi_transformer(seed=0).proj_out.weight
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.equal(first, tiny_mochi_transformer(seed=0).proj_out.weight)
    assert not torch.equal(first, tiny_mochi_transformer(seed=1).proj_out.weight)
    vae = tiny_mochi_vae(seed=0).decoder.proj_out.weight
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.equal(vae, vae.to(torch.bfloat16).float())  # the file's values
    assert not torch.equal(vae, tiny_mochi_vae(seed=0, rounded=False).decoder.proj_out.weight)
