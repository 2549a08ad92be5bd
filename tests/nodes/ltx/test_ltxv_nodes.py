"""The LTX-Video latent and conditioning nodes (``nodes.ltxv``): their latents, noise masks, conditioning extras
and errors, with the tiny LTX-Video VAE."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace

import pytest
import torch

from models.families.wan.latents import WAN21_LATENT
from models.memory import ModelManager
from models.video_vae import VideoVAE
from nodes.image import resize_images
from nodes.loaders import CheckpointLoaderSimple
from nodes.ltxv import (
    EmptyLTXVLatentVideo,
    LTXVAddGuide,
    LTXVConditioning,
    LTXVCropGuides,
    LTXVImgToVideo,
    LTXVImgToVideoInplace,
    LTXVPreprocess,
)
from tests.nodes.node_runner import NodeRunner

CHECKPOINT = "ltx-video-2b-v0.9.5.safetensors"
SIZE = 64
Encode = Callable[[torch.Tensor], torch.Tensor]


def conditioning(seed: int, **extras) -> list[list]:
    return [[torch.randn(1, 4, 32, generator=torch.Generator().manual_seed(seed)), dict(extras)]]


def frames(count: int, height: int = SIZE, width: int = SIZE, seed: int = 0) -> torch.Tensor:
    return torch.rand(count, height, width, 3, generator=torch.Generator().manual_seed(seed))


@pytest.fixture
def vae(runner: NodeRunner) -> VideoVAE:
    return runner.call(CheckpointLoaderSimple, ckpt_name=CHECKPOINT)[2]


@pytest.fixture
def encode(vae: VideoVAE, manager: ModelManager) -> Encode:
    """The VAE's latent of frames as one video, computed outside the nodes."""
    return lambda images: vae.encode(manager, images)


def empty(runner: NodeRunner, length: int = 9, batch_size: int = 1) -> dict:
    return runner.call(EmptyLTXVLatentVideo, width=SIZE, height=SIZE, length=length, batch_size=batch_size)[0]


def test_node_declarations_match_comfyui(runner: NodeRunner) -> None:
    required = EmptyLTXVLatentVideo.INPUT_TYPES()["required"]
    assert list(required) == ["width", "height", "length", "batch_size"]
    assert required["length"][1] == {"default": 97, "min": 1, "max": 16384, "step": 8, "tooltip": "Video frames."}
    assert list(LTXVImgToVideo.INPUT_TYPES()["required"]) == [
        "positive", "negative", "vae", "image", "width", "height", "length", "batch_size", "strength",
    ]  # fmt: skip
    assert LTXVImgToVideo.INPUT_TYPES()["required"]["length"][1]["min"] == 9
    assert list(LTXVImgToVideoInplace.INPUT_TYPES()["required"]) == ["vae", "image", "latent", "strength", "bypass"]
    guide = LTXVAddGuide.INPUT_TYPES()["required"]
    assert list(guide) == ["positive", "negative", "vae", "latent", "image", "frame_idx", "strength"]
    assert (guide["frame_idx"][1]["min"], guide["frame_idx"][1]["max"], guide["strength"][1]["step"]) == (
        -9999,
        9999,
        0.01,
    )
    assert LTXVAddGuide.RETURN_NAMES == ("positive", "negative", "latent")
    assert LTXVPreprocess.RETURN_NAMES == ("output_image",)
    for node in (EmptyLTXVLatentVideo, LTXVConditioning, LTXVImgToVideo, LTXVAddGuide, LTXVCropGuides, LTXVPreprocess):
        runner.bind(node)  # checked as the registry checks them


def test_empty_latent_shape_and_size_errors(runner: NodeRunner) -> None:
    (latent,) = runner.call(EmptyLTXVLatentVideo, width=96, height=64, length=17, batch_size=2)
    assert latent["samples"].shape == (2, 128, 3, 2, 3)
    assert not latent["samples"].any() and set(latent) == {"samples"}
    with pytest.raises(ValueError, match=r"^width: 100 is not a multiple of 32.*use 96"):
        runner.call(EmptyLTXVLatentVideo, width=100, height=64, length=9, batch_size=1)
    with pytest.raises(ValueError, match=r"^length: .* 1 \+ 8k frames, not 12 \(e\.g\. 9\)"):
        runner.call(EmptyLTXVLatentVideo, width=64, height=64, length=12, batch_size=1)


def test_conditioning_sets_the_frame_rate_on_both(runner: NodeRunner) -> None:
    positive, negative = conditioning(1, attention_mask=torch.ones(1, 4)), conditioning(2)
    new_positive, new_negative = runner.call(LTXVConditioning, positive=positive, negative=negative, frame_rate=24.0)
    assert new_positive[0][1]["frame_rate"] == 24.0 and new_negative[0][1]["frame_rate"] == 24.0
    assert "attention_mask" in new_positive[0][1] and new_positive[0][0] is positive[0][0]
    assert "frame_rate" not in positive[0][1]  # the input is not changed
    with pytest.raises(ValueError, match=r"^frame_rate: 0\.0 must be above 0"):
        runner.call(LTXVConditioning, positive=positive, negative=negative, frame_rate=0.0)
    with pytest.raises(ValueError, match=r"^negative is not a conditioning list"):
        runner.call(LTXVConditioning, positive=positive, negative=[], frame_rate=25.0)


def test_img_to_video_keeps_the_encoded_image_in_frame_0(runner: NodeRunner, vae: VideoVAE, encode: Encode) -> None:
    positive, negative = conditioning(1), conditioning(2)
    image = frames(1, 80, 100)  # resized (center crop) to 64x64
    out_positive, out_negative, latent = runner.call(
        LTXVImgToVideo, positive=positive, negative=negative, vae=vae, image=image,
        width=SIZE, height=SIZE, length=17, batch_size=2, strength=0.75,
    )  # fmt: skip
    assert out_positive is positive and out_negative is negative
    samples, mask = latent["samples"], latent["noise_mask"]
    assert samples.shape == (2, 128, 3, 2, 2) and mask.shape == (2, 1, 3, 2, 2)
    expected = encode(resize_images(image, SIZE, SIZE, "bilinear", "center"))
    assert torch.allclose(samples[:, :, :1], expected.expand(2, -1, -1, -1, -1))
    assert not samples[:, :, 1:].any()
    assert torch.allclose(mask[:, :, 0], torch.full((2, 1, 2, 2), 0.25)) and (mask[:, :, 1:] == 1).all()

    wan_vae = SimpleNamespace(name="wan_2.1_vae.safetensors", latent_format=WAN21_LATENT)
    with pytest.raises(ValueError, match=r"^vae: an LTX-Video VAE is needed, got Wan 2\.1"):
        runner.call(
            LTXVImgToVideo, positive=positive, negative=negative, vae=wan_vae, image=image,
            width=SIZE, height=SIZE, length=9, batch_size=1, strength=1.0,
        )  # fmt: skip
    with pytest.raises(ValueError, match=r"^image: expected IMAGE frames"):
        runner.call(
            LTXVImgToVideo, positive=positive, negative=negative, vae=vae, image=torch.rand(4, 4),
            width=SIZE, height=SIZE, length=9, batch_size=1, strength=1.0,
        )  # fmt: skip


def test_img_to_video_inplace(runner: NodeRunner, vae: VideoVAE, encode: Encode) -> None:
    latent = {"samples": torch.randn(1, 128, 2, 2, 2), "noise_mask": torch.full((1, 1, 2, 1, 1), 0.5)}
    image = frames(1)
    (same,) = runner.call(LTXVImgToVideoInplace, vae=vae, image=image, latent=latent, strength=1.0, bypass=True)
    assert same is latent
    (result,) = runner.call(LTXVImgToVideoInplace, vae=vae, image=image, latent=latent, strength=1.0, bypass=False)
    assert torch.allclose(result["samples"][:, :, :1], encode(image))
    assert torch.equal(result["samples"][:, :, 1:], latent["samples"][:, :, 1:])
    assert result["noise_mask"].shape == (1, 1, 2, 2, 2)
    assert (result["noise_mask"][:, :, 0] == 0).all() and (result["noise_mask"][:, :, 1] == 0.5).all()
    assert (latent["noise_mask"] == 0.5).all()  # the input is not changed
    (fresh,) = runner.call(
        LTXVImgToVideoInplace, vae=vae, image=image, latent={"samples": latent["samples"]}, strength=0.4
    )
    assert torch.allclose(fresh["noise_mask"][:, :, 0], torch.tensor(0.6)) and (fresh["noise_mask"][:, :, 1] == 1).all()
    with pytest.raises(ValueError, match=r"^latent has 16 channels; the LTX-Video latent has 128"):
        runner.call(LTXVImgToVideoInplace, vae=vae, image=image, latent={"samples": torch.zeros(1, 16, 2, 2, 2)},
                    strength=1.0)  # fmt: skip


def test_add_guide_appends_frames_and_records_keyframes(runner: NodeRunner, vae: VideoVAE, encode: Encode) -> None:
    positive, negative = conditioning(1, frame_rate=25.0), conditioning(2)
    latent = empty(runner, length=9)  # 2 latent frames
    last = frames(1, seed=4)
    positive, negative, guided = runner.call(
        LTXVAddGuide, positive=positive, negative=negative, vae=vae, latent=latent, image=last, frame_idx=-1,
        strength=0.9,
    )  # fmt: skip
    # frame -1 of 9 is frame 8; appended after the video's 2 latent frames (ComfyUI appends, also at frame 0)
    assert positive[0][1]["keyframe_idxs"] == [(2, 1, 8)] and negative[0][1]["keyframe_idxs"] == [(2, 1, 8)]
    assert positive[0][1]["frame_rate"] == 25.0
    assert guided["samples"].shape == (1, 128, 3, 2, 2)
    assert torch.allclose(guided["samples"][:, :, 2:], encode(last))
    assert guided["noise_mask"].shape == (1, 1, 3, 2, 2)
    assert (guided["noise_mask"][:, :, :2] == 1).all()
    assert torch.allclose(guided["noise_mask"][:, :, 2], torch.tensor(0.1))

    first = frames(1, seed=5)
    positive, negative, guided = runner.call(
        LTXVAddGuide, positive=positive, negative=negative, vae=vae, latent=guided, image=first, frame_idx=0,
        strength=1.0,
    )  # fmt: skip
    assert positive[0][1]["keyframe_idxs"] == [(2, 1, 8), (3, 1, 0)]
    assert guided["samples"].shape[2] == 4 and (guided["noise_mask"][:, :, 3] == 0).all()
    assert torch.allclose(guided["noise_mask"][:, :, 2], torch.tensor(0.1))  # the earlier guide's mask stays


def test_add_guide_with_clips(runner: NodeRunner, vae: VideoVAE, encode: Encode) -> None:
    positive, negative = conditioning(1), conditioning(2)
    clip = frames(10, seed=6)  # cut to 9 frames
    # at frame 0: the clip codes as a video of its own, 2 latent frames
    start_positive, _, guided = runner.call(
        LTXVAddGuide, positive=positive, negative=negative, vae=vae, latent=empty(runner, length=17), image=clip,
        frame_idx=0, strength=1.0,
    )  # fmt: skip
    assert start_positive[0][1]["keyframe_idxs"] == [(3, 2, 0)]
    assert torch.allclose(guided["samples"][:, :, 3:], encode(clip[:9]))
    # mid-video: snapped to frame 1 + 8n; a throwaway first frame takes the VAE's lone first latent frame
    mid_positive, _, guided = runner.call(
        LTXVAddGuide, positive=positive, negative=negative, vae=vae, latent=empty(runner, length=25), image=clip,
        frame_idx=12, strength=1.0,
    )  # fmt: skip
    assert mid_positive[0][1]["keyframe_idxs"] == [(4, 1, 16)]  # frame 9 -> latent frame 2, at its pixel time 16
    expected = encode(torch.cat([clip[:1], clip[:8]]))[:, :, 1:]
    assert guided["samples"].shape[2] == 5 and torch.allclose(guided["samples"][:, :, 4:], expected)

    with pytest.raises(ValueError, match=r"^frame_idx: a guide of 3 latent frame\(s\) at frame 0 .* latent's 2 frames"):
        runner.call(
            LTXVAddGuide, positive=positive, negative=negative, vae=vae, latent=empty(runner, length=9),
            image=frames(17), frame_idx=0, strength=1.0,
        )  # fmt: skip
    with pytest.raises(ValueError, match=r"^positive: keyframe_idxs is not a list of"):
        runner.call(
            LTXVAddGuide, positive=conditioning(1, keyframe_idxs=torch.zeros(1, 3, 4, 2)), negative=negative,
            vae=vae, latent=empty(runner), image=frames(1), frame_idx=0, strength=1.0,
        )  # fmt: skip


def test_crop_guides_removes_the_appended_frames(runner: NodeRunner, vae: VideoVAE) -> None:
    positive, negative = conditioning(1, frame_rate=30.0), conditioning(2)
    latent = empty(runner, length=9)
    for frame_idx in (0, -1):
        positive, negative, latent = runner.call(
            LTXVAddGuide, positive=positive, negative=negative, vae=vae, latent=latent, image=frames(1),
            frame_idx=frame_idx, strength=1.0,
        )  # fmt: skip
    assert latent["samples"].shape[2] == 4
    sampled = {**latent, "samples": torch.randn(latent["samples"].shape)}
    cropped_positive, cropped_negative, cropped = runner.call(
        LTXVCropGuides, positive=positive, negative=negative, latent=sampled
    )
    assert torch.equal(cropped["samples"], sampled["samples"][:, :, :2])
    assert cropped["noise_mask"].shape == (1, 1, 2, 2, 2) and (cropped["noise_mask"] == 1).all()
    assert "keyframe_idxs" not in cropped_positive[0][1] and "keyframe_idxs" not in cropped_negative[0][1]
    assert cropped_positive[0][1]["frame_rate"] == 30.0
    assert "keyframe_idxs" in positive[0][1]  # the input is not changed

    unguided = empty(runner)
    same = runner.call(LTXVCropGuides, positive=cropped_positive, negative=cropped_negative, latent=unguided)
    assert same[2] is unguided
    with pytest.raises(
        ValueError, match=r"^latent: the conditionings record 2 guide frame\(s\), but the latent has only 2"
    ):
        runner.call(LTXVCropGuides, positive=positive, negative=negative, latent=unguided)


def test_preprocess_round_trips_through_h264(runner: NodeRunner) -> None:
    ramp = torch.linspace(0.0, 1.0, 33).view(1, 1, 33, 1).expand(2, 31, 33, 3).clone()
    (same,) = runner.call(LTXVPreprocess, image=ramp, img_compression=0)
    assert same is ramp
    (light,) = runner.call(LTXVPreprocess, image=ramp, img_compression=10)
    (heavy,) = runner.call(LTXVPreprocess, image=ramp, img_compression=60)
    assert light.shape == heavy.shape == (2, 30, 32, 3)  # 4:2:0 video takes even sizes
    assert light.dtype == torch.float32
    light_error = (light - ramp[:, :30, :32]).abs().mean().item()
    heavy_error = (heavy - ramp[:, :30, :32]).abs().mean().item()
    assert 0 < light_error < 0.02 and light_error < heavy_error < 0.2, (light_error, heavy_error)
    with pytest.raises(ValueError, match=r"^image: expected IMAGE frames"):
        runner.call(LTXVPreprocess, image=torch.rand(8, 8), img_compression=35)
    with pytest.raises(ValueError, match=r"^image: 1x1 is too small"):
        runner.call(LTXVPreprocess, image=torch.rand(1, 1, 1, 3), img_compression=35)
