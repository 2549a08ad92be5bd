"""HunyuanVideo's nodes: ``HunyuanImageToVideo`` (each guidance type, with and without a start image, and its
refusals) and ``FluxGuidance``, with ComfyUI's sockets and widgets."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from models.families.base import LatentShapeError
from models.memory import ModelManager
from nodes import conditioning, hunyuan
from nodes.conditioning import FluxGuidance
from nodes.hunyuan import HunyuanImageToVideo
from nodes.loaders import VAELoader
from tests.nodes.node_runner import NodeRunner

SIZE, LENGTH = 64, 9


def _positive() -> list[list[Any]]:
    mask = torch.tensor([[1, 1, 1, 0]])
    return [[torch.randn(1, 4, 32), {"attention_mask": mask, "pooled_output": torch.randn(1, 8)}]]


def _image(frames: int = 1, height: int = SIZE, width: int = SIZE, seed: int = 0) -> torch.Tensor:
    return torch.rand(frames, height, width, 3, generator=torch.Generator().manual_seed(seed))


@pytest.fixture
def vae(runner: NodeRunner) -> Any:
    return runner.call(VAELoader, vae_name="hunyuan_video_vae_bf16.safetensors")[0]


def _encode(runner: NodeRunner, vae: Any, guidance_type: str, **inputs: Any) -> tuple[list[list[Any]], dict]:
    values = {"width": SIZE, "height": SIZE, "length": LENGTH, "batch_size": 1, **inputs}
    return runner.call(HunyuanImageToVideo, positive=_positive(), vae=vae, guidance_type=guidance_type, **values)


def test_the_sockets_and_widgets_are_comfyuis() -> None:
    types = HunyuanImageToVideo.INPUT_TYPES()
    assert list(types["required"]) == ["positive", "vae", "width", "height", "length", "batch_size", "guidance_type"]
    assert list(types["optional"]) == ["start_image"]
    assert types["required"]["width"][1] == {"default": 848, "min": 16, "max": 16384, "step": 16}
    assert types["required"]["height"][1] == {"default": 480, "min": 16, "max": 16384, "step": 16}
    assert types["required"]["length"][1] == {"default": 53, "min": 1, "max": 16384, "step": 4}
    assert types["required"]["batch_size"][1] == {"default": 1, "min": 1, "max": 4096}
    assert types["required"]["guidance_type"][0] == ["v1 (concat)", "v2 (replace)", "custom"]
    assert "not supported" in types["required"]["guidance_type"][1]["tooltip"]
    assert (HunyuanImageToVideo.RETURN_TYPES, HunyuanImageToVideo.RETURN_NAMES) == (
        ("CONDITIONING", "LATENT"),
        ("positive", "latent"),
    )
    flux = FluxGuidance.INPUT_TYPES()["required"]
    assert list(flux) == ["conditioning", "guidance"]
    assert flux["guidance"] == ("FLOAT", {"default": 3.5, "min": 0.0, "max": 100.0, "step": 0.1})
    assert FluxGuidance.RETURN_TYPES == ("CONDITIONING",)
    assert hunyuan.NODE_CLASS_MAPPINGS["HunyuanImageToVideo"] is HunyuanImageToVideo
    assert conditioning.NODE_CLASS_MAPPINGS["FluxGuidance"] is FluxGuidance
    assert {"HunyuanImageToVideo"} <= set(hunyuan.NODE_DISPLAY_NAME_MAPPINGS)
    assert {"FluxGuidance"} <= set(conditioning.NODE_DISPLAY_NAME_MAPPINGS)


@pytest.mark.parametrize("guidance_type", ["v1 (concat)", "v2 (replace)", "custom"])
def test_without_a_start_image_the_positive_is_unchanged_and_the_latent_empty(
    runner: NodeRunner, vae: Any, guidance_type: str
) -> None:
    positive = _positive()
    out, latent = runner.call(
        HunyuanImageToVideo,
        positive=positive,
        vae=vae,
        width=96,
        height=48,
        length=13,
        batch_size=2,
        guidance_type=guidance_type,
    )
    assert set(latent) == {"samples"}
    assert latent["samples"].shape == (2, 16, 4, 6, 12) and not latent["samples"].any()
    assert len(out) == 1 and out[0][0] is positive[0][0] and out[0][1] == positive[0][1]


def test_concat_attaches_the_image_latent_and_a_mask(runner: NodeRunner, vae: Any, manager: ModelManager) -> None:
    positive = _positive()
    start = _image()
    out, latent = runner.call(
        HunyuanImageToVideo,
        positive=positive,
        vae=vae,
        width=SIZE,
        height=SIZE,
        length=LENGTH,
        batch_size=2,
        guidance_type="v1 (concat)",
        start_image=start,
    )
    extras = out[0][1]
    assert set(extras) == {"attention_mask", "pooled_output", "concat_latent_image", "concat_mask"}
    assert extras["attention_mask"] is positive[0][1]["attention_mask"]
    assert set(positive[0][1]) == {"attention_mask", "pooled_output"}  # the input is not changed
    image = extras["concat_latent_image"]
    assert image.shape == (1, 16, 1, SIZE // 8, SIZE // 8) and image.dtype == torch.float32
    assert torch.equal(image, vae.encode(manager, start))
    mask = extras["concat_mask"]
    assert mask.shape == (1, 1, 3, SIZE // 8, SIZE // 8)
    assert not mask[:, :, 0].any() and mask[:, :, 1:].eq(1).all()
    assert set(latent) == {"samples"}
    assert latent["samples"].shape == (2, 16, 3, SIZE // 8, SIZE // 8) and not latent["samples"].any()


def test_replace_puts_the_image_latent_in_the_first_frame_kept_by_a_noise_mask(runner: NodeRunner, vae: Any) -> None:
    start = _image()
    out, latent = _encode(runner, vae, "v2 (replace)", batch_size=2, start_image=start)
    extras = out[0][1]
    assert extras["guiding_frame_index"] == 0
    assert "concat_latent_image" not in extras and "concat_mask" not in extras
    (concat, _) = _encode(runner, vae, "v1 (concat)", start_image=start)
    image = concat[0][1]["concat_latent_image"]
    samples = latent["samples"]
    assert samples.shape == (2, 16, 3, SIZE // 8, SIZE // 8)
    assert torch.equal(samples[:, :, :1], image.expand(2, -1, -1, -1, -1)) and image.abs().sum() > 0
    assert not samples[:, :, 1:].any()
    mask = latent["noise_mask"]
    assert mask.shape == (2, 1, 3, SIZE // 8, SIZE // 8)
    assert not mask[:, :, 0].any() and mask[:, :, 1:].eq(1).all()


def test_several_start_frames_keep_their_latent_frames_and_are_cut_to_length(runner: NodeRunner, vae: Any) -> None:
    out, latent = _encode(runner, vae, "v1 (concat)", length=5, start_image=_image(frames=9))
    extras = out[0][1]
    assert extras["concat_latent_image"].shape[2] == 2  # the first five frames: 1 + 4 -> two latent frames
    assert extras["concat_mask"].shape[2] == 2 and not extras["concat_mask"].any()
    out, latent = _encode(runner, vae, "v2 (replace)", start_image=_image(frames=5))
    assert latent["noise_mask"][0, 0, :, 0, 0].tolist() == [0.0, 0.0, 1.0]


def test_a_start_image_of_another_size_is_resized(runner: NodeRunner, vae: Any) -> None:
    out, _ = _encode(runner, vae, "v1 (concat)", start_image=_image(height=40, width=120))
    assert out[0][1]["concat_latent_image"].shape == (1, 16, 1, SIZE // 8, SIZE // 8)


def test_custom_with_a_start_image_is_refused(runner: NodeRunner, vae: Any) -> None:
    with pytest.raises(ValueError, match=r'guidance_type: "custom" .* not supported'):
        _encode(runner, vae, "custom", start_image=_image())


def test_bad_inputs_are_refused_naming_them(runner: NodeRunner, vae: Any) -> None:
    with pytest.raises(ValueError, match="width: 72 is not a multiple of 16"):
        _encode(runner, vae, "v1 (concat)", width=72)
    with pytest.raises(ValueError, match="length: 8 frames"):
        _encode(runner, vae, "v1 (concat)", length=8)
    with pytest.raises(LatentShapeError, match="start_image has 2 frames"):
        _encode(runner, vae, "v1 (concat)", start_image=_image(frames=2))
    with pytest.raises(ValueError, match="start_image: expected IMAGE frames"):
        _encode(runner, vae, "v1 (concat)", start_image=torch.rand(SIZE, SIZE, 3))
    with pytest.raises(ValueError, match="guidance_type: 'v3' is not one of"):
        _encode(runner, vae, "v3")
    with pytest.raises(ValueError, match="positive is not a conditioning list"):
        runner.call(
            HunyuanImageToVideo,
            positive=[],
            vae=vae,
            width=SIZE,
            height=SIZE,
            length=LENGTH,
            batch_size=1,
            guidance_type="v1 (concat)",
        )


def test_another_familys_vae_is_refused(runner: NodeRunner) -> None:
    (mochi_vae,) = runner.call(VAELoader, vae_name="mochi_vae.safetensors")
    with pytest.raises(ValueError, match=r"vae: .* HunyuanImageToVideo needs the HunyuanVideo VAE"):
        _encode(runner, mochi_vae, "v1 (concat)", start_image=_image())


def test_flux_guidance_sets_the_guidance_on_every_entry() -> None:
    first, second = _positive()[0], [torch.randn(1, 2, 32), {"guidance": 1.0}]
    (out,) = FluxGuidance().append([first, second], 4.5)
    assert [extras["guidance"] for _, extras in out] == [4.5, 4.5]
    assert out[0][0] is first[0] and out[0][1]["pooled_output"] is first[1]["pooled_output"]
    assert "guidance" not in first[1] and second[1]["guidance"] == 1.0  # the inputs are not changed
    with pytest.raises(ValueError, match="conditioning is not a conditioning list"):
        FluxGuidance().append(torch.zeros(1, 2, 3), 3.5)
