"""SVD UNets from single files: the SGM names of the release, the config read from shapes, and the tiny file loading
to the very model it was written from."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from accelerate import init_empty_weights
from diffusers import UNetSpatioTemporalConditionModel
from safetensors.torch import load_file

from models.errors import StateDictError
from models.families.sd15.unet_checkpoint import is_sd15_unet
from models.families.svd.unet_checkpoint import (
    ORIGINAL_PREFIX,
    detect_svd_unet,
    is_svd_unet,
    svd_spec_from_config,
    svd_unet_from_state_dict,
    unet_original_name,
)
from models.tiny.svd import CHECKPOINT_FILE, tiny_svd_unet, write_tiny_svd_files

RELEASE_KEYS = (  # tensor names of stabilityai's svd.safetensors / svd_xt.safetensors (public key listings)
    "input_blocks.0.0.weight",
    "input_blocks.1.0.emb_layers.1.weight",
    "input_blocks.1.0.in_layers.0.weight",
    "input_blocks.1.0.in_layers.2.weight",
    "input_blocks.1.0.out_layers.3.bias",
    "input_blocks.1.0.time_mixer.mix_factor",
    "input_blocks.1.0.time_stack.emb_layers.1.bias",
    "input_blocks.1.0.time_stack.in_layers.2.weight",
    "input_blocks.1.0.time_stack.out_layers.0.weight",
    "input_blocks.1.1.norm.weight",
    "input_blocks.1.1.proj_in.weight",
    "input_blocks.1.1.proj_out.bias",
    "input_blocks.1.1.time_mixer.mix_factor",
    "input_blocks.1.1.time_pos_embed.0.weight",
    "input_blocks.1.1.time_pos_embed.2.bias",
    "input_blocks.1.1.time_stack.0.attn1.to_q.weight",
    "input_blocks.1.1.time_stack.0.attn2.to_out.0.bias",
    "input_blocks.1.1.time_stack.0.ff.net.0.proj.weight",
    "input_blocks.1.1.time_stack.0.ff_in.net.2.weight",
    "input_blocks.1.1.time_stack.0.norm3.weight",
    "input_blocks.1.1.time_stack.0.norm_in.bias",
    "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight",
    "input_blocks.1.1.transformer_blocks.0.ff.net.2.weight",
    "input_blocks.3.0.op.weight",
    "input_blocks.10.0.time_stack.in_layers.0.weight",
    "input_blocks.11.0.out_layers.3.weight",
    "middle_block.0.time_stack.in_layers.0.weight",
    "middle_block.1.proj_in.weight",
    "output_blocks.2.1.conv.weight",
    "output_blocks.5.2.conv.weight",
    "output_blocks.8.2.conv.weight",
    "output_blocks.9.1.transformer_blocks.0.norm3.weight",
    "label_emb.0.0.weight",
    "time_embed.2.bias",
    "out.2.weight",
)


@pytest.fixture(scope="module")
def release_tensors() -> dict[str, torch.Tensor]:
    """The release UNet's tensors (meta) under SGM names, as the mapping lays them out."""
    with init_empty_weights():
        model = UNetSpatioTemporalConditionModel()  # diffusers' defaults are the release's config
    spec = svd_spec_from_config(dict(model.config))
    return {ORIGINAL_PREFIX + unet_original_name(key, spec): t for key, t in model.state_dict().items()}


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory: pytest.TempPathFactory) -> dict[str, torch.Tensor]:
    folder = tmp_path_factory.mktemp("svd")
    write_tiny_svd_files(folder)
    return load_file(folder / CHECKPOINT_FILE)


def test_the_mapping_gives_the_release_names(release_tensors: dict[str, torch.Tensor]) -> None:
    missing = [key for key in RELEASE_KEYS if ORIGINAL_PREFIX + key not in release_tensors]
    assert not missing


def test_the_release_config_is_read_from_shapes(release_tensors: dict[str, torch.Tensor]) -> None:
    config = detect_svd_unet(release_tensors).config
    assert config["block_out_channels"] == (320, 640, 1280, 1280)
    assert config["num_attention_heads"] == (5, 10, 20, 20)
    assert config["down_block_types"][-1] == "DownBlockSpatioTemporal"
    assert config["up_block_types"][0] == "UpBlockSpatioTemporal"
    assert (config["layers_per_block"], config["cross_attention_dim"]) == (2, 1024)
    assert (config["addition_time_embed_dim"], config["projection_class_embeddings_input_dim"]) == (256, 768)
    assert (config["in_channels"], config["out_channels"]) == (8, 4)


def test_svd_and_sd15_unets_are_told_apart(release_tensors: dict[str, torch.Tensor]) -> None:
    assert is_svd_unet(release_tensors) and not is_sd15_unet(release_tensors)
    spatial_only = {key: t for key, t in release_tensors.items() if "time_stack" not in key and "time_" not in key}
    assert not is_svd_unet(spatial_only)


def test_the_tiny_file_loads_to_the_model_it_was_written_from(tiny_file: dict[str, torch.Tensor]) -> None:
    loaded = svd_unet_from_state_dict(dict(tiny_file), torch.float32)
    expected = tiny_svd_unet().state_dict()
    assert loaded.state_dict().keys() == expected.keys()
    assert all(torch.equal(tensor, expected[key]) for key, tensor in loaded.state_dict().items())


def test_a_missing_tensor_is_named_in_the_files_terms(tiny_file: dict[str, torch.Tensor]) -> None:
    broken = dict(tiny_file)
    del broken[ORIGINAL_PREFIX + "input_blocks.1.1.time_stack.0.norm_in.weight"]
    with pytest.raises(StateDictError, match=r"input_blocks\.1\.1\.time_stack\.0\.norm_in\.weight"):
        svd_unet_from_state_dict(broken, torch.float32)


def test_a_file_without_an_svd_unet_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StateDictError, match="not an SVD UNet"):
        detect_svd_unet({"input_blocks.0.0.weight": torch.zeros(4, 8, 3, 3)})
