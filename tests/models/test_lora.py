"""LoRA merging on the tiny Wan transformer and UMT5: the merge computed by hand from the file's tensors, the same
LoRA in every layout, whole deltas, and clear errors (nothing changed) for files that do not fit."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from models.errors import CorruptModelFileError
from models.lora import (
    LoraError,
    apply_lora_to_diffusion_model,
    apply_lora_to_text_encoder,
    inspect_lora,
    lora_suffix,
)
from models.tiny.text import tiny_umt5
from models.tiny.wan import tiny_wan_transformer
from models.tiny.wan_lora import TINY_WAN_LORA_ALPHA, TINY_WAN_LORA_RANK, tiny_wan_lora, write_tiny_wan_loras

T2V = "wan2.2_t2v_high_noise_14B_fp8_scaled"
LIGHTX2V = "wan2.2_t2v_lightx2v_4steps_lora_v1.1_high_noise"
# Wan's original layer names -> diffusers', written out here rather than taken from diffusers' conversion.
LAYERS = {
    "self_attn.q": "attn1.to_q",
    "self_attn.k": "attn1.to_k",
    "self_attn.v": "attn1.to_v",
    "self_attn.o": "attn1.to_out.0",
    "cross_attn.q": "attn2.to_q",
    "cross_attn.k": "attn2.to_k",
    "cross_attn.v": "attn2.to_v",
    "cross_attn.o": "attn2.to_out.0",
    "ffn.0": "ffn.net.0.proj",
    "ffn.2": "ffn.net.2",
}
STRENGTH = 0.7


@pytest.fixture(scope="module")
def lora_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("weights")
    write_tiny_wan_loras(folder)
    return folder / "loras" / f"{LIGHTX2V}.safetensors"


@pytest.fixture(scope="module")
def patched(lora_path: Path) -> dict[str, torch.Tensor]:
    """The tiny model's state after merging the lightx2v-layout file at ``STRENGTH``."""
    return apply_lora_to_diffusion_model(tiny_wan_transformer(T2V), lora_path, STRENGTH).state_dict()


def _save(tensors: dict[str, torch.Tensor], path: Path) -> Path:
    save_file({key: tensor.contiguous() for key, tensor in tensors.items()}, str(path))
    return path


def _layers(lora: dict[str, torch.Tensor]) -> list[tuple[str, str]]:
    """(original layer name without prefix, diffusers layer name) of each layer of a lightx2v-layout LoRA."""
    found = []
    for key in lora:
        if key.endswith(".lora_down.weight"):
            layer = key.removeprefix("diffusion_model.").removesuffix(".lora_down.weight")
            block, index, rest = layer.split(".", 2)
            found.append((layer, f"{block}.{index}.{LAYERS[rest]}"))
    return found


def _unchanged(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {key: tensor.clone() for key, tensor in module.state_dict().items()}


def _assert_same_state(first: dict[str, torch.Tensor], second: dict[str, torch.Tensor]) -> None:
    assert first.keys() == second.keys()
    for key in first:
        torch.testing.assert_close(first[key], second[key], rtol=0, atol=1e-6, msg=key)


def test_lightx2v_layout_merges_strength_times_scaled_up_down(lora_path: Path, patched: dict) -> None:
    base = tiny_wan_transformer(T2V).state_dict()
    lora = load_file(str(lora_path))
    layers = _layers(lora)
    assert len(layers) == 20  # q, k, v, o of both attentions and the two feed-forward linears, in 2 blocks
    for original, diffusers_name in layers:
        down = lora[f"diffusion_model.{original}.lora_down.weight"]
        up = lora[f"diffusion_model.{original}.lora_up.weight"]
        alpha = lora[f"diffusion_model.{original}.alpha"].item()
        assert alpha == TINY_WAN_LORA_ALPHA and down.shape[0] == TINY_WAN_LORA_RANK
        expected = base[f"{diffusers_name}.weight"] + STRENGTH * (alpha / down.shape[0]) * (up @ down)
        torch.testing.assert_close(patched[f"{diffusers_name}.weight"], expected, rtol=0, atol=1e-6)
        assert (patched[f"{diffusers_name}.weight"] - base[f"{diffusers_name}.weight"]).abs().mean() > 1e-3
    merged = {f"{name}.weight" for _, name in layers}
    for key in base.keys() - merged:
        assert torch.equal(patched[key], base[key]), key


def _lora_a_b(lora: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    renamed = {key.replace(".lora_down.", ".lora_A.").replace(".lora_up.", ".lora_B."): t for key, t in lora.items()}
    return renamed


def _diffusers(lora: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    converted = {}
    for original, name in _layers(lora):
        scale = lora[f"diffusion_model.{original}.alpha"].item() / TINY_WAN_LORA_RANK
        converted[f"transformer.{name}.lora_A.weight"] = lora[f"diffusion_model.{original}.lora_down.weight"] * scale
        converted[f"transformer.{name}.lora_B.weight"] = lora[f"diffusion_model.{original}.lora_up.weight"]
    return converted


def _musubi(lora: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    converted = {}
    for key, tensor in lora.items():
        layer, _, part = key.removeprefix("diffusion_model.").partition(".lora_")
        if part:
            converted[f"lora_unet_{layer.replace('.', '_')}.lora_{part}"] = tensor
        else:
            converted["lora_unet_" + layer.removesuffix(".alpha").replace(".", "_") + ".alpha"] = tensor
    return converted


@pytest.mark.parametrize("layout", [_lora_a_b, _diffusers, _musubi], ids=["lora_A_B", "diffusers", "musubi"])
def test_every_layout_patches_identically(tmp_path: Path, lora_path: Path, patched: dict, layout) -> None:
    other = _save(layout(load_file(str(lora_path))), tmp_path / "other.safetensors")
    _assert_same_state(apply_lora_to_diffusion_model(tiny_wan_transformer(T2V), other, STRENGTH).state_dict(), patched)


def test_whole_deltas_are_added(tmp_path: Path) -> None:
    tensors = {
        "diffusion_model.blocks.0.self_attn.q.diff_b": torch.full((256,), 0.5),
        "diffusion_model.blocks.0.norm3.diff": torch.full((256,), 0.25),  # Wan's cross-attention norm: norm2
        "diffusion_model.blocks.1.diff_m": torch.full((1, 6, 256), -0.125),
        "diffusion_model.head.head.diff": torch.full((64, 256), 0.0625),
    }
    path = _save(tensors, tmp_path / "deltas.safetensors")
    base = tiny_wan_transformer(T2V).state_dict()
    patched = apply_lora_to_diffusion_model(tiny_wan_transformer(T2V), path, 2.0).state_dict()
    expected = {
        "blocks.0.attn1.to_q.bias": 1.0,
        "blocks.0.norm2.weight": 0.5,
        "blocks.1.scale_shift_table": -0.25,
        "proj_out.weight": 0.125,
    }
    for key, added in expected.items():
        torch.testing.assert_close(patched[key], base[key] + added, rtol=0, atol=1e-6)
    for key in base.keys() - expected.keys():
        assert torch.equal(patched[key], base[key]), key


def test_an_i2v_lora_on_a_t2v_model_changes_nothing(tmp_path: Path) -> None:
    path = _save(tiny_wan_lora("wan2.1_i2v_480p_14B_fp16", "i2v"), tmp_path / "i2v_lora.safetensors")
    module = tiny_wan_transformer(T2V)
    before = _unchanged(module)
    with pytest.raises(
        LoraError,
        match=r"i2v_lora\.safetensors: this LoRA is for another architecture: 4 of its 24 targets do not fit the "
        r"model \(blocks\.0\.attn2\.add_k_proj: no such linear layer in the model",
    ):
        apply_lora_to_diffusion_model(module, path, 1.0)
    _assert_same_state(module.state_dict(), before)


def test_a_lora_of_a_wider_model_names_the_shapes(tmp_path: Path) -> None:
    tensors = tiny_wan_lora(T2V, "wide")
    tensors["diffusion_model.blocks.1.ffn.2.lora_down.weight"] = torch.zeros(TINY_WAN_LORA_RANK, 13824)
    tensors["diffusion_model.blocks.1.ffn.2.lora_up.weight"] = torch.zeros(5120, TINY_WAN_LORA_RANK)
    path = _save(tensors, tmp_path / "wide.safetensors")
    module = tiny_wan_transformer(T2V)
    before = _unchanged(module)
    with pytest.raises(
        LoraError, match=r"1 of its 20 targets .*blocks\.1\.ffn\.net\.2: the LoRA makes \[5120, 13824\], the model's "
    ):
        apply_lora_to_diffusion_model(module, path, 1.0)
    _assert_same_state(module.state_dict(), before)


def _merged_into_wan(path: Path) -> torch.nn.Module:
    return apply_lora_to_diffusion_model(tiny_wan_transformer(T2V), path, 1.0)


def test_a_lora_of_another_family_is_refused_naming_it(tmp_path: Path) -> None:
    sd15 = {
        "lora_unet_down_blocks_1_attentions_0_proj_in.lora_down.weight": torch.zeros(4, 640),
        "lora_unet_down_blocks_1_attentions_0_proj_in.lora_up.weight": torch.zeros(640, 4),
        "lora_unet_down_blocks_1_attentions_0_proj_in.alpha": torch.tensor(4.0),
    }
    path = _save(sd15, tmp_path / "sd15_style.safetensors")
    assert inspect_lora(path).diffusion_model
    module = tiny_wan_transformer(T2V)
    before = _unchanged(module)
    with pytest.raises(
        LoraError,
        match=r"sd15_style\.safetensors: this LoRA is for a Stable Diffusion 1\.5 UNet, not for a Wan diffusion model",
    ):
        apply_lora_to_diffusion_model(module, path, 1.0)
    _assert_same_state(module.state_dict(), before)
    ltx = {
        "diffusion_model.transformer_blocks.0.attn1.to_q.lora_A.weight": torch.zeros(4, 128),
        "diffusion_model.transformer_blocks.0.attn1.to_q.lora_B.weight": torch.zeros(128, 4),
    }
    with pytest.raises(
        LoraError,
        match=r"ltx_style\.safetensors: this LoRA is for another architecture: its keys \(diffusion_model\."
        r"transformer_blocks\.0\.attn1\.to_q\.lora_A\.weight, .*are no LoRA layout of a Wan diffusion model",
    ):
        _merged_into_wan(_save(ltx, tmp_path / "ltx_style.safetensors"))


def test_files_without_lora_weights_or_damaged(tmp_path: Path, lora_path: Path) -> None:
    model_like = _save({"decoder.conv1.weight": torch.zeros(3, 3)}, tmp_path / "vae.safetensors")
    for read in (inspect_lora, _merged_into_wan):
        with pytest.raises(LoraError, match=r"vae\.safetensors: holds no LoRA weights .*decoder\.conv1\.weight"):
            read(model_like)
    whole = lora_path.read_bytes()
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(whole[: len(whole) // 2])
    for read in (inspect_lora, _merged_into_wan):
        with pytest.raises(CorruptModelFileError, match=r"^truncated\.safetensors: "):
            read(truncated)


def test_stray_tensors_and_dora_are_refused(tmp_path: Path) -> None:
    tensors = tiny_wan_lora(T2V, "stray")
    tensors["diffusion_model.blocks.0.self_attn.q.hada_w1_a"] = torch.zeros(4, 4)
    loha = _save(tensors, tmp_path / "loha.safetensors")
    for read in (inspect_lora, _merged_into_wan):
        with pytest.raises(LoraError, match=r"has 1 tensors that are no LoRA weights .*q\.hada_w1_a; LoHa and LoKr"):
            read(loha)
    dora = _diffusers(tiny_wan_lora(T2V, "dora"))
    dora["transformer.blocks.0.attn1.to_q.lora_magnitude_vector.dora_scale"] = torch.ones(1, 256)
    with pytest.raises(LoraError, match="a DoRA"):
        _merged_into_wan(_save(dora, tmp_path / "dora.safetensors"))


def test_text_encoder_weights_match_the_encoder_layers(tmp_path: Path) -> None:
    encoder = tiny_umt5()
    base = _unchanged(encoder)
    down, up = torch.randn(2, 64) * 0.1, torch.randn(64, 2) * 0.1
    wo_down, wo_up = torch.randn(2, 128) * 0.1, torch.randn(64, 2) * 0.1
    tensors = {
        "lora_te_encoder_block_0_layer_0_SelfAttention_q.lora_down.weight": down,
        "lora_te_encoder_block_0_layer_0_SelfAttention_q.lora_up.weight": up,
        "lora_te_encoder_block_0_layer_0_SelfAttention_q.alpha": torch.tensor(1.0),
        "text_encoders.umt5xxl.transformer.encoder.block.1.layer.1.DenseReluDense.wo.lora_A.weight": wo_down,
        "text_encoders.umt5xxl.transformer.encoder.block.1.layer.1.DenseReluDense.wo.lora_B.weight": wo_up,
    }
    path = _save(tensors, tmp_path / "te.safetensors")
    assert inspect_lora(path).text_encoder and not inspect_lora(path).diffusion_model
    patched = apply_lora_to_text_encoder(encoder, path, 2.0).state_dict()
    q, wo = "encoder.block.0.layer.0.SelfAttention.q.weight", "encoder.block.1.layer.1.DenseReluDense.wo.weight"
    torch.testing.assert_close(patched[q], base[q] + 2.0 * 0.5 * (up @ down), rtol=0, atol=1e-6)
    torch.testing.assert_close(patched[wo], base[wo] + 2.0 * (wo_up @ wo_down), rtol=0, atol=1e-6)
    with pytest.raises(LoraError, match="no weights for the diffusion model"):
        apply_lora_to_diffusion_model(tiny_wan_transformer(T2V), path, 1.0)


def test_the_suffix_names_file_identity_and_strength(tmp_path: Path, lora_path: Path) -> None:
    copy = tmp_path / "copy.safetensors"
    copy.write_bytes(lora_path.read_bytes())
    first = lora_suffix(copy, 1.0)
    assert first == lora_suffix(copy, 1.0) != lora_suffix(copy, 0.5)
    assert str(copy.resolve()) in first and first != lora_suffix(lora_path, 1.0)
    copy.write_bytes(lora_path.read_bytes() + b" ")
    assert lora_suffix(copy, 1.0) != first
