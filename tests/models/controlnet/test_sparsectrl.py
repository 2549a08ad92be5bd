"""AnimateDiff SparseCtrl files: the tiny RGB and scribble releases load into the tiny models' exact weights and
outputs, the original and diffusers layouts convert both ways, real-size releases' shapes read back as SD1.5's, and
other files are refused, saying what they are."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from models.checkpoint_files import read_shapes
from models.controlnet.checkpoint import NotAControlNetError, controlnet_to_original
from models.controlnet.sparsectrl import (
    detect_sparsectrl,
    is_sparsectrl,
    sparsectrl_from_state_dict,
    sparsectrl_to_original,
)
from models.errors import StateDictError
from models.families.animatediff.motion_checkpoint import motion_adapter_to_original
from models.families.sd15.unet_checkpoint import sd15_unet_to_original
from models.loading import load_state_dict
from models.tiny.animatediff import TINY_SD15_UNET, tiny_motion_adapter, tiny_sd15_unet
from models.tiny.controlnet import CONTROLNET_FOLDER, tiny_sd15_controlnet
from models.tiny.sparsectrl import (
    RGB_FILE,
    SCRIBBLE_FILE,
    TINY_SPARSECTRL_CONFIGS,
    tiny_sparsectrl,
    write_tiny_sparsectrl_files,
)

FRAMES = 3
LATENT_SIDE = 8
PIXEL_SIDE = 64  # the scribble encoder steps down 8 times, to the latent's size
MOTION_Q = "down_blocks.1.motion_modules.0.temporal_transformer.transformer_blocks.0.attention_blocks.0.to_q.weight"
FIRST_PE = "down_blocks.0.motion_modules.0.temporal_transformer.transformer_blocks.0.attention_blocks.0.pos_encoder.pe"


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    models_dir = tmp_path_factory.mktemp("sparsectrl_weights")
    write_tiny_sparsectrl_files(models_dir)
    return models_dir / CONTROLNET_FOLDER


@pytest.fixture(scope="module")
def rgb() -> torch.nn.Module:
    return tiny_sparsectrl("rgb")


def _inputs(kind: str, frames_given: tuple[int, ...] = (0,)) -> dict[str, torch.Tensor]:
    """Inputs shaped as diffusers' SparseCtrl pipeline passes them: condition and mask ``[B, C, F, H, W]`` with
    frames outside ``frames_given`` zero, text repeated per frame."""
    generator = torch.Generator().manual_seed(5)
    side, channels = (LATENT_SIDE, 4) if kind == "rgb" else (PIXEL_SIDE, 3)
    condition = torch.zeros(1, channels, FRAMES, side, side)
    mask = torch.zeros(1, 1, FRAMES, side, side)
    for frame in frames_given:
        condition[:, :, frame] = torch.rand(1, channels, side, side, generator=generator)
        mask[:, :, frame] = 1
    text = torch.randn(1, 5, TINY_SD15_UNET["cross_attention_dim"], generator=generator)
    return {
        "sample": torch.randn(1, 4, FRAMES, LATENT_SIDE, LATENT_SIDE, generator=generator),
        "encoder_hidden_states": text.repeat_interleave(FRAMES, dim=0),
        "controlnet_cond": condition,
        "conditioning_mask": mask,
    }


def _outputs(model: torch.nn.Module, inputs: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    """The residuals (down blocks, then the middle) at timestep 500."""
    with torch.no_grad():
        down, middle = model(timestep=500, return_dict=False, **inputs)
    return [*down, middle]


@pytest.mark.parametrize(("kind", "name", "latent"), [("rgb", RGB_FILE, True), ("scribble", SCRIBBLE_FILE, False)])
def test_each_tiny_file_holds_its_sparsectrl(folder: Path, kind: str, name: str, latent: bool) -> None:
    spec = detect_sparsectrl(read_shapes(folder / name).tensors)
    assert (spec.layout, spec.prefix) == ("original", "")
    assert dict(spec.config) == dict(TINY_SPARSECTRL_CONFIGS[kind])
    assert (spec.condition_is_latent, spec.condition_channels, spec.concat_mask) == (latent, 4 if latent else 3, True)
    condition = "latent condition (4 channels)" if latent else "pixel condition (3 channels)"
    assert (
        spec.describe()
        == f"AnimateDiff SparseCtrl (original layout), widths 32/64, {condition} plus mask, up to 32 frames"
    )
    state_dict = load_state_dict(folder / name)
    assert is_sparsectrl(state_dict)
    loaded = sparsectrl_from_state_dict(state_dict, torch.float32)
    built = tiny_sparsectrl(kind)
    assert not loaded.training and loaded.state_dict().keys() == built.state_dict().keys()
    assert all(torch.equal(tensor, built.state_dict()[key]) for key, tensor in loaded.state_dict().items())
    inputs = _inputs(kind)
    for got, want in zip(_outputs(loaded, inputs), _outputs(built, inputs), strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=0)


@pytest.mark.parametrize("kind", ["rgb", "scribble"])
def test_the_control_shows_and_spreads_to_other_frames(kind: str) -> None:
    """The condition changes every residual, and the motion modules carry frame 0's condition to frames 1 and 2."""
    model = tiny_sparsectrl(kind)
    given = _inputs(kind)
    none = {**given, "controlnet_cond": torch.zeros_like(given["controlnet_cond"])}
    none["conditioning_mask"] = torch.zeros_like(given["conditioning_mask"])
    changes = [
        (controlled - free).abs()
        for controlled, free in zip(_outputs(model, given), _outputs(model, none), strict=True)
    ]
    assert all(float(change[0].mean()) > 1e-2 for change in changes)
    assert not changes[0][1:].any()  # before the first motion module, frames without a condition are untouched
    assert all(float(change[1:].mean()) > 1e-2 for change in changes[1:])


def test_the_tiny_sparsectrl_is_seeded_and_leaves_the_global_rng() -> None:
    state = torch.random.get_rng_state()
    first, again, other = tiny_sparsectrl("rgb", 0), tiny_sparsectrl("rgb", 0), tiny_sparsectrl("rgb", 1)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.equal(first.conv_in.weight, again.conv_in.weight)
    assert not torch.equal(first.conv_in.weight, other.conv_in.weight)
    assert first.controlnet_cond_embedding.weight.abs().min() > 0  # initialised to zero by the class


def test_original_and_diffusers_names_convert_both_ways(rgb: torch.nn.Module) -> None:
    original = sparsectrl_to_original(rgb)
    assert _spatial(original) == _spatial(rgb.state_dict())
    motion = original.keys() - _spatial(original)
    assert motion.isdisjoint(rgb.state_dict()) and MOTION_Q in original and FIRST_PE in original
    assert not any(part in key for key in motion for part in (".attn1.", ".norm1.", ".norm3.", ".pos_embed."))
    assert "down_blocks.0.motion_modules.1.temporal_transformer.transformer_blocks.0.ff_norm.weight" in original
    assert "controlnet_cond_embedding.weight" in original and "controlnet_mid_block.bias" in original
    diffusers_spec = detect_sparsectrl(rgb.state_dict())
    assert diffusers_spec.layout == "diffusers" and diffusers_spec.config == detect_sparsectrl(original).config
    prefixed = {f"controlnet.{key}": tensor for key, tensor in original.items()}
    assert detect_sparsectrl(prefixed).prefix == "controlnet."
    for state_dict in (rgb.state_dict(), prefixed):
        loaded = sparsectrl_from_state_dict(state_dict, torch.float32)
        assert sparsectrl_to_original(loaded).keys() == original.keys()
        assert all(torch.equal(tensor, original[key]) for key, tensor in sparsectrl_to_original(loaded).items())


def _spatial(state_dict: dict[str, torch.Tensor]) -> set[str]:
    """The names outside the motion modules (the same in both layouts)."""
    return {key for key in state_dict if ".motion_modules." not in key}


def test_a_shorter_positional_encoding_sets_the_frame_limit(rgb: torch.nn.Module) -> None:
    original = {
        key: tensor[:, :24] if key.endswith(".pe") else tensor for key, tensor in sparsectrl_to_original(rgb).items()
    }
    spec = detect_sparsectrl(original)
    assert spec.max_frames == 24
    loaded = sparsectrl_from_state_dict(original, torch.float32, spec)
    pe = loaded.down_blocks[0].motion_modules[0].transformer_blocks[0].pos_embed.pe
    torch.testing.assert_close(pe, original[FIRST_PE], rtol=0, atol=1e-6)  # recomputed as the file stores it


@pytest.mark.parametrize(
    ("condition_channels", "simplified", "hint_widths"),
    [(4, True, None), (3, False, (16, 32, 96, 256))],
)
def test_real_size_releases_read_back_as_sd15(
    condition_channels: int, simplified: bool, hint_widths: tuple[int, ...] | None
) -> None:
    """diffusers' defaults are the releases' SD1.5 SparseCtrl: the RGB one with the latent's 4 channels and one
    convolution, the scribble one with 3 and the hint encoder."""
    from accelerate import init_empty_weights
    from diffusers import SparseControlNetModel

    with init_empty_weights():
        model = SparseControlNetModel(
            conditioning_channels=condition_channels, use_simplified_condition_embedding=simplified
        )
    original = sparsectrl_to_original(model)
    assert original[FIRST_PE].shape == (1, 32, 320)
    assert original[MOTION_Q].shape == (640, 640)
    spec = detect_sparsectrl(original)
    assert spec.config["block_out_channels"] == (320, 640, 1280, 1280) and spec.config["cross_attention_dim"] == 768
    assert spec.config["down_block_types"] == ("CrossAttnDownBlockMotion",) * 3 + ("DownBlockMotion",)
    assert (spec.condition_channels, spec.condition_is_latent, spec.concat_mask) == (
        condition_channels,
        simplified,
        True,
    )
    assert spec.config["conditioning_embedding_out_channels"] == hint_widths
    built = sparsectrl_from_state_dict(original, torch.float16, spec)  # the shapes fit the config exactly
    assert built.dtype == torch.float16


def _meta(shapes: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    return {key: torch.empty(shape, device="meta") for key, shape in shapes.items()}


def test_other_models_are_refused_saying_what_they_are() -> None:
    refused = (
        (
            controlnet_to_original(tiny_sd15_controlnet()),
            r"^this is a Stable Diffusion 1\.5 ControlNet without motion modules, not an AnimateDiff SparseCtrl",
        ),
        (
            motion_adapter_to_original(tiny_motion_adapter()),
            r"^this is an AnimateDiff motion module, not an AnimateDiff SparseCtrl: load it with the AnimateDiff",
        ),
        (
            sd15_unet_to_original(tiny_sd15_unet()),
            r"^this is a Stable Diffusion 1\.5 UNet, not an AnimateDiff SparseCtrl$",
        ),
        (
            _meta({"weights": (3, 3), "bias": (3,)}),
            r"^not an AnimateDiff SparseCtrl: no down_blocks\.0\.motion_modules\.0\..*first tensors: weights, bias\)$",
        ),
    )
    for state_dict, message in refused:
        assert not is_sparsectrl(state_dict)
        with pytest.raises(NotAControlNetError, match=message):
            detect_sparsectrl(state_dict)


def test_a_truncated_file_names_the_missing_tensor(folder: Path, tmp_path: Path) -> None:
    state_dict = load_state_dict(folder / RGB_FILE)
    del state_dict[MOTION_Q]
    torch.save(state_dict, tmp_path / RGB_FILE)
    truncated = load_state_dict(tmp_path / RGB_FILE)
    spec = detect_sparsectrl(truncated)
    with pytest.raises(
        StateDictError, match=rf"^AnimateDiff SparseCtrl: tensors do not fit: 1 missing \({MOTION_Q}\)$"
    ):
        sparsectrl_from_state_dict(truncated, torch.float32, spec)


def test_a_condition_encoder_of_another_width_is_refused(rgb: torch.nn.Module) -> None:
    original = sparsectrl_to_original(rgb)
    original["controlnet_cond_embedding.weight"] = torch.zeros(32, 7, 3, 3)
    with pytest.raises(
        StateDictError,
        match=r"takes 7 channels; an AnimateDiff SparseCtrl's takes a latent's 4 \(plus 1 for the mask\)",
    ):
        detect_sparsectrl(original)


def test_a_file_wrapping_the_weights_under_controlnet_reads_the_same(folder: Path, tmp_path: Path) -> None:
    flat = load_state_dict(folder / RGB_FILE)
    torch.save({"controlnet": flat, "epoch": 3}, tmp_path / RGB_FILE)
    wrapped = load_state_dict(tmp_path / RGB_FILE)
    assert wrapped.keys() == flat.keys()
    assert detect_sparsectrl(read_shapes(tmp_path / RGB_FILE).tensors) == detect_sparsectrl(flat)
