"""SkyReels-V2 single files: routed by the catalog to their own family (never to Wan's, nor Wan files to theirs),
detected from shapes, loaded to the tiny network's exact weights; and the diffusion-forcing schedule."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from models.errors import StateDictError
from models.families.catalog import transformer_family_of
from models.families.skyreels.checkpoint import detect_skyreels_transformer, skyreels_transformer_from_state_dict
from models.families.skyreels.forcing_schedule import chunk_plan, forcing_schedule
from models.tiny.skyreels import DF_FILE, tiny_skyreels_transformer


def _meta(path: Path) -> dict[str, torch.Tensor]:
    with safe_open(str(path), "pt") as handle:
        return {key: torch.empty(handle.get_slice(key).get_shape(), device="meta") for key in handle.keys()}


def test_the_catalog_routes_skyreels_and_wan_files_apart(tiny_models_dir: Path) -> None:
    skyreels = _meta(tiny_models_dir / "diffusion_models" / DF_FILE)
    wan = _meta(tiny_models_dir / "diffusion_models" / "wan2.1_t2v_1.3B_fp16.safetensors")
    assert transformer_family_of(skyreels).name == "skyreels"
    assert transformer_family_of(wan).name == "wan"
    prefixed = {"model.diffusion_model." + key: tensor for key, tensor in skyreels.items()}
    assert transformer_family_of(prefixed).name == "skyreels"


def test_a_file_loads_to_the_tiny_network(tiny_models_dir: Path) -> None:
    state = load_file(tiny_models_dir / "diffusion_models" / DF_FILE)
    spec = detect_skyreels_transformer(state)
    assert spec.variant == "t2v" and spec.config["inject_sample_info"] and spec.config["num_layers"] == 2
    loaded = skyreels_transformer_from_state_dict(state, torch.float32).state_dict()
    expected = tiny_skyreels_transformer("df_1.3b").state_dict()
    assert loaded.keys() == expected.keys()
    assert all(torch.equal(loaded[key], expected[key]) for key in expected)


def test_a_misshapen_fps_embedding_is_named(tiny_models_dir: Path) -> None:
    state = _meta(tiny_models_dir / "diffusion_models" / DF_FILE)
    state["fps_embedding.weight"] = torch.empty(3, 256, device="meta")
    with pytest.raises(StateDictError, match=r"fps_embedding.weight has shape \(3, 256\)"):
        detect_skyreels_transformer(state)


def test_synchronous_frames_move_together() -> None:
    schedule = forcing_schedule(frames=3, steps=4, ar_step=0, block_size=1)
    assert schedule.progress.tolist() == [[k, k, k] for k in range(1, 5)]
    assert bool(schedule.update.all())


def test_asynchronous_blocks_lag_by_ar_step() -> None:
    schedule = forcing_schedule(frames=4, steps=2, ar_step=1, block_size=2)
    assert schedule.progress.tolist() == [[1, 1, 0, 0], [2, 2, 1, 1], [3, 3, 2, 2]]
    assert schedule.update.tolist()[2] == [False, False, True, True]


def test_ready_frames_are_never_updated() -> None:
    schedule = forcing_schedule(frames=4, steps=3, ar_step=0, block_size=1, ready=2)
    assert not bool(schedule.update[:, :2].any())
    assert schedule.iterations == 3


def test_chunks_cover_the_video_exactly() -> None:
    chunks = chunk_plan(frames=10, base_frames=5, overlap=3, block_size=1)
    assert [chunk.frames for chunk in chunks] == [5, 5, 5, 4]
    assert chunks[0].frames + sum(chunk.frames - chunk.keep_from for chunk in chunks[1:]) == 10
    assert [chunk.source for chunk in chunks[1:]] == [2, 4, 6]
    assert chunk_plan(frames=5, base_frames=5, overlap=3, block_size=1) == chunk_plan(5, 5, None, 1)
    with pytest.raises(ValueError, match="overlap of 5 latent frames"):
        chunk_plan(frames=10, base_frames=5, overlap=5, block_size=1)


def test_end_frames_are_shown_clean_and_never_updated() -> None:
    """Asynchronous: the end frame's block still counts in the schedule (its lag sets the iterations)."""
    schedule = forcing_schedule(frames=3, steps=2, ar_step=1, block_size=1, ready=1, end=1)
    assert schedule.progress.tolist() == [[3, 1, 3], [3, 2, 3], [3, 3, 3]]
    assert schedule.update.tolist() == [[False, True, False], [False, True, False], [False, False, False]]


def test_a_start_is_the_first_chunks_prefix_only() -> None:
    plain = chunk_plan(frames=10, base_frames=5, overlap=3, block_size=1)
    started = chunk_plan(frames=10, base_frames=5, overlap=3, block_size=1, start=1)
    assert started[0].prefix == 1 and started[1:] == plain[1:]
    assert chunk_plan(frames=4, base_frames=5, overlap=None, block_size=1, start=1)[0].prefix == 1
