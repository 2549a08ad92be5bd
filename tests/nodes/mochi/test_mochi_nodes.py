"""Mochi's node: ``EmptyMochiLatentVideo`` with ComfyUI's widgets, its latent shapes and refusals; and the latent it
gives samples and decodes to the requested frames."""

from __future__ import annotations

import pytest
import torch

from models.families.mochi.schedule import mochi_sigmas
from nodes import latent
from nodes.conditioning import CLIPTextEncode
from nodes.latent import EmptyMochiLatentVideo
from nodes.loaders import CLIPLoader, UNETLoader, VAELoader
from nodes.sampling import SamplerCustom
from nodes.sampling_parts import KSamplerSelect
from nodes.vae import VAEDecode
from tests.nodes.node_runner import NodeRunner


def test_the_widgets_are_comfyuis() -> None:
    required = EmptyMochiLatentVideo.INPUT_TYPES()["required"]
    assert list(required) == ["width", "height", "length", "batch_size"]
    widgets = {
        name: {key: value for key, value in spec[1].items() if key != "tooltip"} for name, spec in required.items()
    }
    assert widgets == {
        "width": {"default": 848, "min": 16, "max": 16384, "step": 16},
        "height": {"default": 480, "min": 16, "max": 16384, "step": 16},
        "length": {"default": 25, "min": 7, "max": 16384, "step": 6},
        "batch_size": {"default": 1, "min": 1, "max": 4096},
    }
    assert all(spec[0] == "INT" for spec in required.values())
    assert EmptyMochiLatentVideo.RETURN_TYPES == ("LATENT",)
    assert latent.NODE_CLASS_MAPPINGS["EmptyMochiLatentVideo"] is EmptyMochiLatentVideo
    assert "EmptyMochiLatentVideo" in latent.NODE_DISPLAY_NAME_MAPPINGS


@pytest.mark.parametrize(
    ("width", "height", "length", "batch", "shape"),
    [
        (848, 480, 25, 1, (1, 12, 5, 60, 106)),
        (64, 32, 7, 3, (3, 12, 2, 4, 8)),
        (16, 16, 1, 1, (1, 12, 1, 2, 2)),
    ],
)
def test_the_latent_is_zeros_of_mochis_shape(width: int, height: int, length: int, batch: int, shape: tuple) -> None:
    (out,) = EmptyMochiLatentVideo().generate(width, height, length, batch)
    assert set(out) == {"samples"}
    assert out["samples"].shape == shape and out["samples"].dtype == torch.float32 and not out["samples"].any()


def test_sizes_mochi_cannot_code_are_refused_naming_the_input() -> None:
    with pytest.raises(ValueError, match=r"length: 8 frames .* 1 \+ 6k frames \(e.g. 7\)"):
        EmptyMochiLatentVideo().generate(64, 64, 8, 1)
    with pytest.raises(ValueError, match="width: 40 is not a multiple of 16"):
        EmptyMochiLatentVideo().generate(40, 64, 7, 1)
    with pytest.raises(ValueError, match="height: 72 is not a multiple of 16"):
        EmptyMochiLatentVideo().generate(64, 72, 7, 1)


def test_a_batch_of_two_samples_and_decodes_to_the_frames_asked_for(runner: NodeRunner) -> None:
    (model,) = runner.call(UNETLoader, unet_name="mochi_preview_bf16.safetensors", weight_dtype="default")
    (clip,) = runner.call(CLIPLoader, clip_name="t5xxl_fp16.safetensors", type="mochi")
    (positive,) = runner.call(CLIPTextEncode, clip=clip, text="a cat")
    (vae,) = runner.call(VAELoader, vae_name="mochi_vae.safetensors")
    (empty,) = runner.call(EmptyMochiLatentVideo, width=32, height=48, length=7, batch_size=2)
    (sampler,) = runner.call(KSamplerSelect, sampler_name="euler")
    output, _ = runner.result(
        SamplerCustom,
        model=model,
        add_noise=True,
        noise_seed=1,
        cfg=1.0,
        positive=positive,
        negative=positive,
        sampler=sampler,
        sigmas=mochi_sigmas(2),
        latent_image=empty,
    )
    assert output["samples"].shape == (2, 12, 2, 6, 4)
    (frames,) = runner.call(VAEDecode, samples=output, vae=vae)
    assert frames.shape == (2 * 7, 48, 32, 3)
    assert not torch.equal(frames[:7], frames[7:])  # each batch item has its own noise
