"""SD1.5 ControlNet files: the tiny LDM and diffusers files load into the tiny ControlNet's exact weights and outputs,
a real-size ControlNet's LDM names convert back, and other files are refused, saying what they are."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from models.checkpoint_files import read_shapes
from models.controlnet.checkpoint import (
    LDM_CONTROLNET_PREFIX,
    NotAControlNetError,
    controlnet_from_state_dict,
    controlnet_to_original,
    detect_controlnet,
)
from models.controlnet.loading import load_controlnet, pools_globally
from models.devices import DeviceProbe
from models.errors import CorruptModelFileError, StateDictError
from models.families.sd15.unet_checkpoint import sd15_unet_to_original
from models.loading import load_state_dict
from models.memory import MemoryConfig, ModelManager
from models.model_loaders import WrongModelKindError
from models.tiny.animatediff import TINY_SD15_UNET, tiny_sd15_unet
from models.tiny.controlnet import (
    CONTROLNET_FOLDER,
    DIFFUSERS_FILE,
    LDM_FILE,
    TINY_SD15_CONTROLNET,
    tiny_sd15_controlnet,
    write_tiny_controlnet_files,
)

HINT_SIDE = 64  # 8x the latent's 8x8


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    models_dir = tmp_path_factory.mktemp("controlnet_weights")
    write_tiny_controlnet_files(models_dir)
    return models_dir / CONTROLNET_FOLDER


@pytest.fixture(scope="module")
def reference() -> torch.nn.Module:
    return tiny_sd15_controlnet()


def _rounded(module: torch.nn.Module, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    return {key: tensor.to(dtype).float() for key, tensor in module.state_dict().items()}


def _outputs(model: torch.nn.Module) -> list[torch.Tensor]:
    """The ControlNet's residuals (down blocks, then the middle) for fixed random inputs."""
    generator = torch.Generator().manual_seed(3)
    latent = torch.randn(2, 4, 8, 8, generator=generator)
    text = torch.randn(2, 5, TINY_SD15_CONTROLNET["cross_attention_dim"], generator=generator)
    hint = torch.rand(2, 3, HINT_SIDE, HINT_SIDE, generator=generator)
    with torch.no_grad():
        down, middle = model(latent, 500, text, hint, return_dict=False)
    return [*down, middle]


@pytest.mark.parametrize(
    ("name", "layout", "prefix", "dtype"),
    [
        (LDM_FILE, "ldm", LDM_CONTROLNET_PREFIX, torch.float16),
        (DIFFUSERS_FILE, "diffusers", "", torch.float32),
    ],
)
def test_each_tiny_file_holds_the_tiny_controlnet(
    folder: Path, reference: torch.nn.Module, name: str, layout: str, prefix: str, dtype: torch.dtype
) -> None:
    spec = detect_controlnet(read_shapes(folder / name).tensors)
    assert (spec.layout, spec.prefix) == (layout, prefix)
    assert {key: spec.config[key] for key in TINY_SD15_CONTROLNET} == dict(TINY_SD15_CONTROLNET)
    assert spec.widths == TINY_SD15_UNET["block_out_channels"] and spec.text_dim == 32 and spec.hint_channels == 3
    loaded = controlnet_from_state_dict(load_state_dict(folder / name), torch.float32)
    expected = _rounded(reference, dtype)
    assert loaded.state_dict().keys() == expected.keys()
    assert all(torch.equal(tensor, expected[key]) for key, tensor in loaded.state_dict().items())
    rounded = tiny_sd15_controlnet()
    rounded.load_state_dict(expected)
    for got, want in zip(_outputs(loaded), _outputs(rounded), strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-6)


def test_the_control_is_not_zero(reference: torch.nn.Module) -> None:
    """The zero convolutions got random values, so a UNet driven by the tiny ControlNet changes."""
    zero_convs = [*reference.controlnet_down_blocks, reference.controlnet_mid_block]
    assert all(conv.weight.abs().min() > 0 for conv in zero_convs)
    assert all(float(residual.abs().mean()) > 1e-3 for residual in _outputs(reference))


def test_the_tiny_controlnet_is_seeded_and_leaves_the_global_rng() -> None:
    state = torch.random.get_rng_state()
    first, again, other = tiny_sd15_controlnet(0), tiny_sd15_controlnet(0), tiny_sd15_controlnet(1)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.equal(first.conv_in.weight, again.conv_in.weight)
    assert not torch.equal(first.conv_in.weight, other.conv_in.weight)


def test_a_real_size_controlnet_converts_back_from_its_ldm_names() -> None:
    """SD1.5's ControlNet: 340 tensors under control_model., the hint encoder's last conv at index 14, one zero conv
    per input block (12); the config read back is SD1.5's."""
    from accelerate import init_empty_weights
    from diffusers import ControlNetModel

    with init_empty_weights():
        original = controlnet_to_original(ControlNetModel(cross_attention_dim=768))
    assert len(original) == 340 and all(key.startswith(LDM_CONTROLNET_PREFIX) for key in original)
    assert original["control_model.input_hint_block.14.weight"].shape == (320, 256, 3, 3)
    assert original["control_model.zero_convs.11.0.weight"].shape == (1280, 1280, 1, 1)
    assert original["control_model.input_blocks.4.0.skip_connection.weight"].shape == (640, 320, 1, 1)
    assert original["control_model.middle_block.1.proj_in.weight"].shape == (1280, 1280, 1, 1)
    spec = detect_controlnet(original)
    assert spec.describe() == "Stable Diffusion 1.5 ControlNet (LDM layout), widths 320/640/1280/1280, text width 768"
    assert spec.config["conditioning_embedding_out_channels"] == (16, 32, 96, 256)
    assert spec.config["down_block_types"] == ("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",)
    controlnet_from_state_dict(original, torch.float16, spec)  # the shapes fit the config exactly


def _meta(shapes: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    return {key: torch.empty(shape, device="meta") for key, shape in shapes.items()}


def test_other_models_are_refused_saying_what_they_are(reference: torch.nn.Module) -> None:
    unet = sd15_unet_to_original(tiny_sd15_unet())
    with pytest.raises(NotAControlNetError, match=r"^this is a Stable Diffusion 1\.5 UNet, not a ControlNet$"):
        detect_controlnet(unet)
    with pytest.raises(NotAControlNetError, match=r"not a ControlNet: .*first tensors: weights, bias"):
        detect_controlnet(_meta({"weights": (3, 3), "bias": (3,)}))
    lora = _meta(
        {"lora_unet_down_blocks_0.lora_down.weight": (4, 32), "lora_unet_down_blocks_0.lora_up.weight": (32, 4)}
    )
    with pytest.raises(NotAControlNetError, match="this is a LoRA, not a ControlNet: load it with LoraLoader"):
        detect_controlnet(lora)
    with pytest.raises(NotAControlNetError, match="T2I-Adapters are not supported yet"):
        detect_controlnet(_meta({"body.0.block1.weight": (320, 320, 3, 3), "conv_in.weight": (320, 192, 3, 3)}))
    sdxl = {**controlnet_to_original(reference), "control_model.label_emb.0.0.weight": torch.zeros(128, 2816)}
    with pytest.raises(
        NotAControlNetError, match=r"^this is an SDXL ControlNet: SDXL ControlNets are not supported yet$"
    ):
        detect_controlnet(sdxl)
    linear = dict(reference.state_dict())
    linear["down_blocks.0.attentions.0.proj_in.weight"] = torch.zeros(32, 32)
    with pytest.raises(NotAControlNetError, match=r"Stable Diffusion 2\.x ControlNet"):
        detect_controlnet(linear)


def test_an_incomplete_controlnet_names_what_is_missing(reference: torch.nn.Module) -> None:
    original = controlnet_to_original(reference)
    del original["control_model.zero_convs.3.0.weight"]
    with pytest.raises(StateDictError, match=r"1 missing \(control_model\.zero_convs\.3\.0\.weight\)"):
        controlnet_from_state_dict(original, torch.float32)


def test_shuffle_files_pool_globally(folder: Path) -> None:
    assert pools_globally("control_v11e_sd15_shuffle.pth") and pools_globally("control_v11e_sd15_shuffle_fp16.pth")
    assert not pools_globally(LDM_FILE) and not pools_globally("shuffle_v2.safetensors")
    spec = detect_controlnet(read_shapes(folder / LDM_FILE).tensors).with_global_pooling()
    model = controlnet_from_state_dict(load_state_dict(folder / LDM_FILE), torch.float32, spec)
    assert model.config.global_pool_conditions and spec.describe().endswith(", pooled globally")


def test_load_into_the_manager_and_name_bad_files(folder: Path, tmp_path: Path, reference: torch.nn.Module) -> None:
    manager = ModelManager(MemoryConfig(mode="cpu"), DeviceProbe())
    try:
        controlnet = load_controlnet(manager, folder / DIFFUSERS_FILE)
        assert controlnet.compute_dtype == torch.float32 and controlnet.name == DIFFUSERS_FILE
        assert controlnet.describe().startswith(f"{DIFFUSERS_FILE}: Stable Diffusion 1.5 ControlNet (diffusers layout)")
        assert load_controlnet(manager, folder / DIFFUSERS_FILE).handle is controlnet.handle
        with controlnet.handle.use() as module:
            assert not any(parameter.requires_grad for parameter in module.parameters())
            assert torch.equal(module.conv_in.weight, reference.conv_in.weight)
        unet_file = tmp_path / "unet.safetensors"
        save_file(sd15_unet_to_original(tiny_sd15_unet()), str(unet_file))
        with pytest.raises(WrongModelKindError, match=r"^unet\.safetensors: this is a Stable Diffusion 1\.5 UNet"):
            load_controlnet(manager, unet_file)
        broken = controlnet_to_original(reference)
        del broken["control_model.middle_block_out.0.bias"]
        save_file(broken, str(tmp_path / "broken.safetensors"))
        with pytest.raises(
            CorruptModelFileError, match=r"^broken\.safetensors: .*control_model\.middle_block_out\.0\.bias"
        ):
            load_controlnet(manager, tmp_path / "broken.safetensors")
    finally:
        manager.free()
