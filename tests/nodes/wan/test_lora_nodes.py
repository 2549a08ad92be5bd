"""``LoraLoaderModelOnly`` and ``LoraLoader`` on the tiny Wan 2.2 files: the sampled latent changes with a LoRA and
not at strength 0, stacked LoRAs equal one merge of both, the base is read once, and files that do not fit fail
naming ``lora_name``."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from models.diffusion_model import DiffusionModel
from models.errors import CorruptModelFileError
from models.lora import LoraError, apply_lora_to_diffusion_model
from models.memory import ModelManager
from models.tiny.text import TINY_UMT5_CONFIG
from models.tiny.wan_lora import tiny_wan_lora
from nodes.conditioning import CLIPTextEncode, ConditioningZeroOut
from nodes.latent import EmptyHunyuanLatentVideo
from nodes.loaders import CLIPLoader, UNETLoader
from nodes.lora import LoraLoader, LoraLoaderModelOnly
from nodes.sampling import KSampler
from tests.nodes.node_runner import NodeRunner

T2V_HIGH = "wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors"
LORA_HIGH = "wan2.2_t2v_lightx2v_4steps_lora_v1.1_high_noise.safetensors"
LORA_LOW = "wan2.2_t2v_lightx2v_4steps_lora_v1.1_low_noise.safetensors"
PROMPT = "a cat walks in the snow"


@pytest.fixture
def parts(runner: NodeRunner) -> dict:
    (model,) = runner.call(UNETLoader, unet_name=T2V_HIGH, weight_dtype="default")
    (clip,) = runner.call(CLIPLoader, clip_name="umt5_xxl_fp8_e4m3fn_scaled.safetensors", type="wan")
    (positive,) = runner.call(CLIPTextEncode, clip=clip, text=PROMPT)
    (negative,) = runner.call(ConditioningZeroOut, conditioning=positive)
    (latent,) = runner.call(EmptyHunyuanLatentVideo, width=64, height=64, length=5, batch_size=1)
    return {"model": model, "clip": clip, "positive": positive, "negative": negative, "latent_image": latent}


@pytest.fixture
def write_lora(tiny_models_dir: Path) -> Iterator[Callable[[str, dict[str, torch.Tensor]], str]]:
    """Writes a LoRA file into the shared loras folder for one test (removed after it); returns its name."""
    written: list[Path] = []

    def write(name: str, tensors: dict[str, torch.Tensor]) -> str:
        path = tiny_models_dir / "loras" / name
        save_file({key: tensor.contiguous() for key, tensor in tensors.items()}, str(path))
        written.append(path)
        return name

    yield write
    for path in written:
        path.unlink()


def _sample(runner: NodeRunner, parts: dict, model: DiffusionModel) -> torch.Tensor:
    inputs = {key: value for key, value in parts.items() if key != "clip"}
    (out,) = runner.result(
        KSampler,
        seed=3,
        steps=2,
        cfg=3.0,
        sampler_name="euler",
        scheduler="simple",
        denoise=1.0,
        **{**inputs, "model": model},
    )
    return out["samples"]


def _lora(runner: NodeRunner, model: DiffusionModel, name: str, strength: float) -> DiffusionModel:
    (patched,) = runner.call(LoraLoaderModelOnly, model=model, lora_name=name, strength_model=strength)
    return patched


def test_a_lora_changes_the_video_and_strength_zero_does_not(runner: NodeRunner, parts: dict) -> None:
    base = _sample(runner, parts, parts["model"])
    patched = _lora(runner, parts["model"], LORA_HIGH, 1.0)
    assert patched.handle is not parts["model"].handle and patched.name == parts["model"].name
    changed = _sample(runner, parts, patched)
    assert torch.isfinite(changed).all()
    assert (changed - base).abs().mean() > 1e-3
    unchanged = _lora(runner, parts["model"], LORA_HIGH, 0.0)
    assert unchanged is parts["model"]
    assert torch.equal(_sample(runner, parts, unchanged), base)


def test_stacked_loras_equal_one_merge_of_both(
    runner: NodeRunner, parts: dict, manager: ModelManager, tiny_models_dir: Path
) -> None:
    model = parts["model"]
    stacked = _lora(runner, _lora(runner, model, LORA_HIGH, 0.8), LORA_LOW, -0.5)
    loras = tiny_models_dir / "loras"

    def both(module: torch.nn.Module) -> torch.nn.Module:
        module = apply_lora_to_diffusion_model(module, loras / LORA_HIGH, 0.8)
        return apply_lora_to_diffusion_model(module, loras / LORA_LOW, -0.5)

    merged = dataclasses.replace(model, handle=manager.derive(model.handle, "+both", both))
    assert stacked.handle.key.startswith(model.handle.key) and stacked.handle.key.count("+lora(") == 2
    assert torch.equal(_sample(runner, parts, stacked), _sample(runner, parts, merged))


def test_a_model_loaded_only_to_be_patched_is_read_once(runner: NodeRunner, parts: dict) -> None:
    model = parts["model"]
    patched = _lora(runner, model, LORA_HIGH, 1.0)
    _sample(runner, parts, patched)
    assert model.handle.loads == 1 and patched.handle.loads == 1


def test_an_i2v_lora_on_the_t2v_model_names_lora_name(runner: NodeRunner, parts: dict, write_lora) -> None:
    name = write_lora("wan2.1_i2v_style_lora.safetensors", tiny_wan_lora("wan2.1_i2v_480p_14B_fp16", "i2v"))
    with pytest.raises(
        LoraError,
        match=r"^lora_name: wan2\.1_i2v_style_lora\.safetensors: this LoRA is for another architecture: .*"
        r"blocks\.0\.attn2\.add_k_proj: no such linear layer in the model",
    ):
        _lora(runner, parts["model"], name, 1.0)
    assert torch.isfinite(_sample(runner, parts, parts["model"])).all()  # the base still runs


def test_a_truncated_or_missing_lora_names_lora_name(
    runner: NodeRunner, parts: dict, tiny_models_dir: Path, write_lora
) -> None:
    whole = (tiny_models_dir / "loras" / LORA_HIGH).read_bytes()
    name = write_lora("truncated_lora.safetensors", {})
    (tiny_models_dir / "loras" / name).write_bytes(whole[: len(whole) // 2])
    with pytest.raises(CorruptModelFileError, match=r"^lora_name: truncated_lora\.safetensors: .*truncated"):
        _lora(runner, parts["model"], name, 1.0)
    with pytest.raises(ValueError, match=r"^lora_name: 'nope\.safetensors' is not in the loras folder"):
        _lora(runner, parts["model"], "nope.safetensors", 1.0)


def test_lora_loader_keeps_clip_when_the_lora_has_no_text_encoder_weights(runner: NodeRunner, parts: dict) -> None:
    model, clip = runner.call(
        LoraLoader, model=parts["model"], clip=parts["clip"], lora_name=LORA_HIGH, strength_model=1.0, strength_clip=1.0
    )
    assert clip is parts["clip"]
    assert model.handle.key.startswith(parts["model"].handle.key + "+lora(")


def test_lora_loader_patches_the_text_encoder(runner: NodeRunner, parts: dict, write_lora) -> None:
    width, inner = TINY_UMT5_CONFIG["d_model"], TINY_UMT5_CONFIG["num_heads"] * TINY_UMT5_CONFIG["d_kv"]
    generator = torch.Generator().manual_seed(0)
    layer = "lora_te_encoder_block_0_layer_0_SelfAttention_v"
    name = write_lora(
        "te_lora.safetensors",
        {
            f"{layer}.lora_down.weight": torch.randn(2, width, generator=generator),
            f"{layer}.lora_up.weight": torch.randn(inner, 2, generator=generator),
        },
    )
    model, clip = runner.call(
        LoraLoader, model=parts["model"], clip=parts["clip"], lora_name=name, strength_model=1.0, strength_clip=1.0
    )
    assert model is parts["model"] and clip.handle is not parts["clip"].handle
    (positive,) = runner.call(CLIPTextEncode, clip=clip, text=PROMPT)
    assert not torch.allclose(positive[0][0], parts["positive"][0][0])
    with pytest.raises(LoraError, match=r"^lora_name: te_lora\.safetensors: has no weights for the diffusion model"):
        _lora(runner, parts["model"], name, 1.0)


def test_model_only_ignores_text_encoder_weights(
    runner: NodeRunner, parts: dict, write_lora, caplog: pytest.LogCaptureFixture
) -> None:
    width = TINY_UMT5_CONFIG["d_model"]
    layer = "lora_te_encoder_block_0_layer_0_SelfAttention_q"
    tensors = {
        **tiny_wan_lora("wan2.2_t2v_high_noise_14B_fp8_scaled", "mixed"),
        f"{layer}.lora_down.weight": torch.ones(2, width),
        f"{layer}.lora_up.weight": torch.ones(width, 2),
    }
    name = write_lora("mixed_lora.safetensors", tensors)
    with caplog.at_level("INFO", logger="nodes.lora"):
        patched = _lora(runner, parts["model"], name, 1.0)
    assert "its text-encoder weights are ignored" in caplog.text
    assert torch.isfinite(_sample(runner, parts, patched)).all()
    model, clip = runner.call(
        LoraLoader, model=parts["model"], clip=parts["clip"], lora_name=name, strength_model=1.0, strength_clip=0.0
    )
    assert clip is parts["clip"] and model.handle.key == patched.handle.key
