"""SD1.5 LoRAs (kohya and diffusers' peft layout, LoCon convolutions included) merged into the tiny SD1.5 UNet, its
motion UNet and its CLIP text encoder exactly as diffusers' ``load_lora_weights`` + ``fuse_lora`` merge them; LoRAs
of another architecture refused naming it, nothing changed."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from diffusers import StableDiffusionPipeline, UNetMotionModel
from safetensors.torch import save_file

from models.lora import LoraError, apply_lora_to_diffusion_model, apply_lora_to_text_encoder, inspect_lora
from models.tiny.animatediff import FILE_DTYPE, tiny_motion_adapter, tiny_sd15_unet, tiny_sd15_vae
from models.tiny.mochi import tiny_mochi_transformer
from models.tiny.sd15_lora import tiny_sd15_lora
from models.tiny.text_families import tiny_clip_l
from models.tiny.wan_lora import tiny_wan_lora

STRENGTH = 0.7
TOLERANCE = 1e-5
WAN_T2V = "wan2.2_t2v_high_noise_14B_fp8_scaled"
CONV = "down_blocks.0.resnets.0.conv1.weight"  # a LoCon 3x3 convolution
PROJ_IN = "down_blocks.0.attentions.0.proj_in.weight"  # SD1.5's 1x1 convolution
TO_Q = "mid_block.attentions.0.transformer_blocks.0.attn1.to_q.weight"
FC1 = "encoder.layers.1.mlp.fc1.weight"


def _save(tensors: dict[str, torch.Tensor], path: Path) -> Path:
    save_file({key: tensor.to(FILE_DTYPE).contiguous() for key, tensor in tensors.items()}, str(path))
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("sd15_loras")
    return {layout: _save(tiny_sd15_lora(layout), folder / f"{layout}.safetensors") for layout in ("kohya", "peft")}


@pytest.fixture(scope="module")
def diffusers_fused(files: dict[str, Path]) -> dict[str, dict[str, torch.Tensor]]:
    """The tiny UNet's and CLIP's weights after diffusers' load_lora_weights + fuse_lora of the kohya file."""
    pipeline = StableDiffusionPipeline(
        vae=tiny_sd15_vae(),
        text_encoder=tiny_clip_l(),
        tokenizer=None,
        unet=tiny_sd15_unet(),
        scheduler=None,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipeline.load_lora_weights(str(files["kohya"]))
    pipeline.fuse_lora(lora_scale=STRENGTH)
    pipeline.unload_lora_weights()
    return {"unet": pipeline.unet.state_dict(), "text_encoder": pipeline.text_encoder.state_dict()}


def _max_difference(ours: dict[str, torch.Tensor], reference: dict[str, torch.Tensor]) -> float:
    assert ours.keys() == reference.keys()
    return max((ours[key] - reference[key]).abs().max().item() for key in ours)


@pytest.mark.parametrize("layout", ["kohya", "peft"])
def test_merges_as_diffusers_fuse_lora(files: dict[str, Path], diffusers_fused: dict, layout: str) -> None:
    base_unet, base_clip = tiny_sd15_unet().state_dict(), tiny_clip_l().state_dict()
    assert inspect_lora(files[layout]).diffusion_model and inspect_lora(files[layout]).text_encoder
    unet = apply_lora_to_diffusion_model(tiny_sd15_unet(), files[layout], STRENGTH).state_dict()
    clip = apply_lora_to_text_encoder(tiny_clip_l(), files[layout], STRENGTH).state_dict()
    unet_difference = _max_difference(unet, diffusers_fused["unet"])
    clip_difference = _max_difference(clip, diffusers_fused["text_encoder"])
    print(f"{layout}: UNet max difference {unet_difference:.3g}, text encoder {clip_difference:.3g}")
    assert unet_difference < TOLERANCE and clip_difference < TOLERANCE
    for key, base in ((CONV, base_unet), (PROJ_IN, base_unet), (TO_Q, base_unet), (FC1, base_clip)):
        merged = unet if key in unet else clip
        assert (merged[key] - base[key]).abs().mean() > 1e-3, key  # the LoRA changes every kind of layer
    assert torch.equal(unet["conv_in.weight"], base_unet["conv_in.weight"])  # and nothing it does not train


def test_the_motion_unet_takes_the_same_lora(files: dict[str, Path]) -> None:
    adapter = tiny_motion_adapter()
    motion_unet = UNetMotionModel.from_unet2d(tiny_sd15_unet(), adapter)
    merged_first = UNetMotionModel.from_unet2d(
        apply_lora_to_diffusion_model(tiny_sd15_unet(), files["kohya"], STRENGTH), adapter
    ).state_dict()
    merged_after = apply_lora_to_diffusion_model(motion_unet, files["kohya"], STRENGTH).state_dict()
    assert _max_difference(merged_after, merged_first) == 0


def test_a_wan_lora_on_sd15_is_refused_naming_wan(tmp_path: Path) -> None:
    path = tmp_path / "lightx2v.safetensors"
    _save(tiny_wan_lora(WAN_T2V, "wan"), path)
    adapter = tiny_motion_adapter()
    for network, label in (
        (tiny_sd15_unet(), "a Stable Diffusion 1.5 UNet"),
        (UNetMotionModel.from_unet2d(tiny_sd15_unet(), adapter), r"an AnimateDiff UNet \(SD1\.5 with motion modules\)"),
    ):
        before = copy.deepcopy(network.state_dict())
        with pytest.raises(
            LoraError,
            match=rf"lightx2v\.safetensors: this LoRA is for a Wan diffusion model, not for {label} \(the model it",
        ):
            apply_lora_to_diffusion_model(network, path, 1.0)
        assert _max_difference(network.state_dict(), before) == 0


def test_an_sdxl_style_lora_does_not_fit(tmp_path: Path) -> None:
    tensors = {  # SDXL's kohya layout: LDM block names
        "lora_unet_input_blocks_4_1_proj_in.lora_down.weight": torch.zeros(4, 640),
        "lora_unet_input_blocks_4_1_proj_in.lora_up.weight": torch.zeros(640, 4),
    }
    with pytest.raises(LoraError, match=r"sdxl\.safetensors: .*are no LoRA layout of a Stable Diffusion 1\.5 UNet"):
        apply_lora_to_diffusion_model(tiny_sd15_unet(), _save(tensors, tmp_path / "sdxl.safetensors"), 1.0)
    wide = {  # diffusers names, another width
        "lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": torch.zeros(4, 320, 1, 1),
        "lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight": torch.zeros(320, 4, 1, 1),
    }
    with pytest.raises(LoraError, match=r"proj_in: the LoRA makes \[320, 320, 1, 1\], the model's weight is \[32, 32"):
        apply_lora_to_diffusion_model(tiny_sd15_unet(), _save(wide, tmp_path / "wide.safetensors"), 1.0)


def test_malformed_pairs_and_unsupported_networks(tmp_path: Path, files: dict[str, Path]) -> None:
    tensors = {
        "lora_unet_down_blocks_0_resnets_0_conv1.lora_down.weight": torch.zeros(4, 32, 3, 3),
        "lora_unet_down_blocks_0_resnets_0_conv1.lora_up.weight": torch.zeros(32, 4, 3, 3),
    }
    with pytest.raises(LoraError, match=r"conv1: down \[4, 32, 3, 3\] and up \[32, 4, 3, 3\] are no low-rank pair"):
        apply_lora_to_diffusion_model(tiny_sd15_unet(), _save(tensors, tmp_path / "tucker.safetensors"), 1.0)
    with pytest.raises(LoraError, match=r"kohya\.safetensors: Reelgraph cannot merge LoRAs into a Mochi diffusion"):
        apply_lora_to_diffusion_model(tiny_mochi_transformer(), files["kohya"], 1.0)
    with pytest.raises(LoraError, match=r"cannot merge LoRAs into a MotionAdapter network"):
        apply_lora_to_diffusion_model(tiny_motion_adapter(), files["kohya"], 1.0)
