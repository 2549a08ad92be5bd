"""Motion modules in the original AnimateDiff layout and in diffusers' ``MotionAdapter`` layout load to the module
they were written from, with v1/v2 told apart by shapes; motion LoRAs in the public v2 layout merge as ``up @ down``."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from models.errors import StateDictError
from models.families.animatediff.motion_checkpoint import (
    detect_motion_module,
    is_motion_module,
    motion_adapter_from_state_dict,
    motion_adapter_to_original,
)
from models.families.animatediff.motion_lora import motion_lora_weights
from models.families.sd15.unet_checkpoint import sd15_unet_to_original
from models.lora import LoraError, merge_lora
from models.tiny.animatediff import tiny_motion_adapter, tiny_motion_lora, tiny_sd15_unet


@pytest.mark.parametrize(("version", "frames", "mid"), [(2, 32, True), (1, 24, False)])
def test_both_layouts_load_to_the_same_adapter(version: int, frames: int, mid: bool) -> None:
    adapter = tiny_motion_adapter(version=version)
    for tensors in (motion_adapter_to_original(adapter), adapter.state_dict()):
        assert is_motion_module(tensors)
        spec = detect_motion_module(tensors)
        assert (spec.max_frames, spec.config["use_motion_mid_block"]) == (frames, mid)
        assert tuple(spec.config["block_out_channels"]) == (32, 64)
        loaded = motion_adapter_from_state_dict(tensors, torch.float32)
        expected = adapter.state_dict()
        assert all(torch.equal(value, expected[key]) for key, value in loaded.state_dict().items())


def test_a_unet_is_no_motion_module() -> None:
    unet = sd15_unet_to_original(tiny_sd15_unet())
    assert not is_motion_module(unet)
    with pytest.raises(StateDictError, match="not an AnimateDiff motion module"):
        detect_motion_module(unet)


def test_motion_lora_merges_up_times_down() -> None:
    adapter = tiny_motion_adapter()
    lora = tiny_motion_lora(adapter)
    weights = motion_lora_weights(Path("v2_lora.ckpt"), lora)
    layer = "down_blocks.0.motion_modules.0.transformer_blocks.0.attn1.to_out.0"
    attentions = [name for name, _ in adapter.named_modules() if name.endswith((".attn1", ".attn2"))]
    assert layer in weights.pairs and len(weights.pairs) == 4 * len(attentions)
    stem = "down_blocks.0.motion_modules.0.temporal_transformer.transformer_blocks.0.attention_blocks.0.processor"
    before = adapter.state_dict()[f"{layer}.weight"].clone()
    merge_lora(adapter, weights, 0.5)
    expected = before + 0.5 * lora[f"{stem}.to_out_lora.up.weight"] @ lora[f"{stem}.to_out_lora.down.weight"]
    assert torch.allclose(adapter.state_dict()[f"{layer}.weight"], expected, atol=1e-6)


def test_motion_lora_refuses_other_weights() -> None:
    with pytest.raises(LoraError, match="not a motion LoRA weight"):
        motion_lora_weights(Path("x.safetensors"), {"lora_unet_down.lora_down.weight": torch.zeros(2, 4)})
