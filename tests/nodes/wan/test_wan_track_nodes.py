"""WanTrackToVideo on the tiny Wan 2.1 VAE: WanImageToVideo's conditioning with the start image's latent features
splatted along the tracks in the later latent frames, and a tiny ATI-style sampling run with it.

At 64x64 and 9 frames the image latent is 3 frames of 8x8 (8x spatial, latent frame k = video frame 4k); a point at
video pixel (8j + 4, 8i + 4) lies on the centre of latent pixel (row i, column j)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from models.control.ati import splat_temperature
from models.control.tracks import Tracks
from models.devices import DeviceProbe
from models.folders import ModelFolders
from models.memory import MODELS_SERVICE, MemoryConfig, ModelManager
from nodes.conditioning import CLIPTextEncode, CLIPVisionEncode, ConditioningZeroOut
from nodes.folders import Folders
from nodes.loaders import CLIPLoader, CLIPVisionLoader, UNETLoader, VAELoader
from nodes.model_files import MODEL_FOLDERS_SERVICE
from nodes.sampling import KSampler
from nodes.tracks import TracksFromJSON
from nodes.wan import WanImageToVideo
from nodes.wan_tracks import WanTrackToVideo
from tests.nodes.node_runner import NodeRunner

SIZE = 64
LENGTH = 9
ROW = 3  # the tracks' latent row: video y = 28
NARROW = 1000.0  # the sharpest temperature: a splat of about one latent pixel


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory, tiny_models_dir: Path) -> Iterator[NodeRunner]:
    """One runner and model manager for the module, so the tiny models load once (conftest's are per test)."""
    manager = ModelManager(MemoryConfig(mode="cpu"), DeviceProbe())
    services = {MODELS_SERVICE: manager, MODEL_FOLDERS_SERVICE: ModelFolders(tiny_models_dir)}
    yield NodeRunner(Folders.under(tmp_path_factory.mktemp("wan_tracks")), services=services)
    manager.free()


@pytest.fixture(scope="module")
def inputs(runner: NodeRunner) -> dict[str, Any]:
    (vae,) = runner.call(VAELoader, vae_name="wan_2.1_vae.safetensors")
    (clip,) = runner.call(CLIPLoader, clip_name="umt5_xxl_fp8_e4m3fn_scaled.safetensors", type="wan")
    (positive,) = runner.call(CLIPTextEncode, clip=clip, text="a ball rolls to the right")
    (negative,) = runner.call(ConditioningZeroOut, conditioning=positive)
    start_image = torch.rand(1, SIZE, SIZE, 3, generator=torch.Generator().manual_seed(3))
    return {
        "positive": positive,
        "negative": negative,
        "vae": vae,
        "width": SIZE,
        "height": SIZE,
        "length": LENGTH,
        "batch_size": 1,
        "start_image": start_image,
    }


def _tracks(*tracks: list[tuple[float, float]]) -> str:
    return json.dumps([[{"x": x, "y": y} for x, y in track] for track in tracks])


def _with_tracks(
    runner: NodeRunner, inputs: dict[str, Any], tracks: str, temperature: float = NARROW, topk: int = 1, **more: Any
) -> tuple[Any, ...]:
    return runner.result(WanTrackToVideo, **inputs, tracks=tracks, temperature=temperature, topk=topk, **more)


def _image_latent(conditioning: Any) -> torch.Tensor:
    return conditioning[0][1]["concat_latent_image"]


@pytest.fixture(scope="module")
def plain(runner: NodeRunner, inputs: dict[str, Any]) -> tuple[Any, ...]:
    return runner.result(WanImageToVideo, **inputs)


def _far_from(row: int, column: int, distance: float) -> torch.Tensor:
    """``[8, 8]``: the latent pixels at least ``distance`` latent pixels from (row, column)."""
    rows, columns = torch.meshgrid(torch.arange(8), torch.arange(8), indexing="ij")
    return (rows - row).square() + (columns - column).square() >= distance**2


def test_the_sockets_are_comfyuis() -> None:
    spec = WanTrackToVideo.INPUT_TYPES()
    required, optional = spec["required"], spec["optional"]
    assert list(required) == [
        "positive",
        "negative",
        "vae",
        "tracks",
        "width",
        "height",
        "length",
        "batch_size",
        "temperature",
        "topk",
        "start_image",
    ]
    assert list(optional) == ["clip_vision_output", "tracks_data"]
    assert optional["tracks_data"][0] == "TRACKS"
    assert required["tracks"][1]["default"] == "[]" and required["tracks"][1]["multiline"]
    temperature = required["temperature"][1]
    assert (temperature["default"], temperature["min"], temperature["max"], temperature["step"]) == (
        220.0,
        1.0,
        1000.0,
        0.1,
    )
    assert (required["topk"][1]["default"], required["topk"][1]["min"], required["topk"][1]["max"]) == (2, 1, 10)
    assert (required["length"][1]["default"], required["length"][1]["step"]) == (81, 4)
    assert WanTrackToVideo.RETURN_TYPES == ("CONDITIONING", "CONDITIONING", "LATENT")


@pytest.mark.parametrize("tracks", ["[]", "", "  [ ]\n"])
def test_no_tracks_is_wan_image_to_video(
    runner: NodeRunner, inputs: dict[str, Any], plain: tuple[Any, ...], tracks: str
) -> None:
    positive, negative, latent = _with_tracks(runner, inputs, tracks, temperature=220.0, topk=2)
    for ours, theirs in ((positive, plain[0]), (negative, plain[1])):
        assert torch.equal(ours[0][0], theirs[0][0])
        assert ours[0][1].keys() == theirs[0][1].keys() == {"concat_latent_image", "concat_mask"}
        for key in ("concat_latent_image", "concat_mask"):
            assert torch.equal(ours[0][1][key], theirs[0][1][key])
    assert torch.equal(latent["samples"], plain[2]["samples"])


def test_a_stationary_track_repeats_its_start_feature(
    runner: NodeRunner, inputs: dict[str, Any], plain: tuple[Any, ...]
) -> None:
    positive, negative, latent = _with_tracks(runner, inputs, _tracks([(20, 28)] * LENGTH))
    base = _image_latent(plain[0])
    moved = _image_latent(positive)
    assert torch.equal(moved, _image_latent(negative))
    assert torch.equal(latent["samples"], plain[2]["samples"])
    generate = positive[0][1]["concat_mask"]  # ATI's mask: the splatted feature counts as known
    assert generate.shape == (1, 1, 3, 8, 8) and torch.equal(generate[:, :, 0], torch.zeros(1, 1, 8, 8))
    assert float(generate[0, 0, 1, ROW, 2]) < 1e-5  # on the track: known
    far = _far_from(ROW, 2, 2)
    assert torch.equal(generate[0, 0, 1][far], torch.ones_like(generate[0, 0, 1][far]))  # far from it: generated
    feature = base[0, :, 0, ROW, 2]
    assert torch.equal(moved[:, :, 0], base[:, :, 0])  # the start frame itself is kept
    far = _far_from(ROW, 2, 2)
    for frame in (1, 2):
        assert (moved[0, :, frame, ROW, 2] - feature).abs().max() < 1e-5
        assert torch.equal(moved[0, :, frame][:, far], base[0, :, frame][:, far])
    assert not torch.allclose(base[0, :, 1, ROW, 2], feature, atol=1e-3)  # so the splat did change the latent


def test_a_moving_track_carries_the_feature_along(
    runner: NodeRunner, inputs: dict[str, Any], plain: tuple[Any, ...]
) -> None:
    """x = 20 + 4f: latent column 2 at frame 0, 4 at latent frame 1 (video frame 4), 6 at latent frame 2."""
    (positive, _, _) = _with_tracks(runner, inputs, _tracks([(20 + 4 * f, 28) for f in range(LENGTH)]))
    base, moved = _image_latent(plain[0]), _image_latent(positive)
    feature = base[0, :, 0, ROW, 2]
    for frame, column in ((1, 4), (2, 6)):
        assert (moved[0, :, frame, ROW, column] - feature).abs().max() < 1e-5
        far = _far_from(ROW, column, 2)
        assert torch.equal(moved[0, :, frame][:, far], base[0, :, frame][:, far])
    assert torch.equal(moved[0, :, 1, ROW, 6], base[0, :, 1, ROW, 6])  # not there yet


def test_a_track_of_another_length_is_stretched_over_the_video(runner: NodeRunner, inputs: dict[str, Any]) -> None:
    """Three points over 9 frames land on video frames 0, 4 and 8: the same latent as one point per frame; tracks of
    different lengths are each stretched."""
    every_frame = _tracks([(20 + 4 * f, 28) for f in range(LENGTH)], [(44, 44)] * LENGTH)
    (expected, _, _) = _with_tracks(runner, inputs, every_frame)
    (positive, _, _) = _with_tracks(runner, inputs, _tracks([(20, 28), (36, 28), (52, 28)], [(44, 44)]))
    assert torch.equal(_image_latent(positive), _image_latent(expected))


def test_the_start_feature_is_sampled_bilinearly_and_splatted_with_the_gaussian(
    runner: NodeRunner, inputs: dict[str, Any], plain: tuple[Any, ...]
) -> None:
    """A point at x = 24 lies between latent columns 2 and 3: its feature is their mean, and column 2's centre, half
    a latent pixel away, gets exp(-0.25 / T) with T = (8 / 2)^2 / 220 (``splat_temperature``)."""
    (positive, _, _) = _with_tracks(runner, inputs, _tracks([(24, 28)] * LENGTH), temperature=220.0)
    base, moved = _image_latent(plain[0]), _image_latent(positive)
    feature = (base[0, :, 0, ROW, 2] + base[0, :, 0, ROW, 3]) / 2
    weight = math.exp(-0.25 / (4.0**2 / 220.0))
    expected = (1 - weight) * base[0, :, 1, ROW, 2] + weight * feature
    assert (moved[0, :, 1, ROW, 2] - expected).abs().max() < 1e-5


def test_the_default_temperature_spreads_a_few_latent_pixels_at_832x480() -> None:
    temperature = splat_temperature(220.0, 60, 104)
    assert temperature == pytest.approx(30.0**2 / 220.0)
    assert math.exp(-(2.0**2) / temperature) == pytest.approx(math.exp(-1), rel=0.03)  # 1/e two latent pixels away
    assert math.exp(-(5.0**2) / temperature) < 0.01


def test_nearby_tracks_blend_with_topk_two(runner: NodeRunner, inputs: dict[str, Any], plain: tuple[Any, ...]) -> None:
    """Two stationary tracks a latent pixel apart: with topk 1 the pixel between them takes one feature, with topk 2
    both in proportion to their (equal) Gaussians."""
    tracks = _tracks([(20, 28)] * LENGTH, [(36, 28)] * LENGTH)  # latent columns 2 and 4
    base = _image_latent(plain[0])
    features = base[0, :, 0, ROW, 2], base[0, :, 0, ROW, 4]
    weight = math.exp(-1.0 / (4.0**2 / 220.0))  # column 3 is one latent pixel from each
    (both, _, _) = _with_tracks(runner, inputs, tracks, temperature=220.0, topk=2)
    mixed = (1 - weight) * base[0, :, 1, ROW, 3] + weight * (features[0] + features[1]) / 2
    assert (_image_latent(both)[0, :, 1, ROW, 3] - mixed).abs().max() < 1e-5
    (one, _, _) = _with_tracks(runner, inputs, tracks, temperature=220.0, topk=1)
    single = [(1 - weight) * base[0, :, 1, ROW, 3] + weight * feature for feature in features]
    assert min((_image_latent(one)[0, :, 1, ROW, 3] - value).abs().max() for value in single) < 1e-5


def test_off_frame_points_are_not_splatted(runner: NodeRunner, inputs: dict[str, Any], plain: tuple[Any, ...]) -> None:
    base = _image_latent(plain[0])
    (unseen, _, _) = _with_tracks(runner, inputs, _tracks([(-8, 28), (20, 28), (52, 28)]))
    assert torch.equal(_image_latent(unseen), base)  # starts off frame: no feature to carry
    (leaving, _, _) = _with_tracks(runner, inputs, _tracks([(20, 28), (-20, 28), (52, 28)]))
    moved = _image_latent(leaving)
    assert torch.equal(moved[:, :, 1], base[:, :, 1])  # off frame (negative x) at video frame 4
    assert (moved[0, :, 2, ROW, 6] - base[0, :, 0, ROW, 2]).abs().max() < 1e-5  # back at video frame 8


def test_connected_tracks_data_replace_the_string(runner: NodeRunner, inputs: dict[str, Any]) -> None:
    """TRACKS on a 128x128 canvas are stretched onto the 64x64 video: the same splat as the string at half the
    coordinates, and the string (here not even JSON) is ignored."""
    (expected, _, _) = _with_tracks(runner, inputs, _tracks([(20 + 4 * f, 28) for f in range(LENGTH)]))
    doubled = _tracks([(40 + 8 * f, 56) for f in range(LENGTH)])
    (data,) = runner.result(TracksFromJSON, tracks_json=doubled, width=128, height=128, frames=0)
    assert isinstance(data, Tracks)
    (positive, _, _) = _with_tracks(runner, inputs, "not json", tracks_data=data)
    assert (_image_latent(positive) - _image_latent(expected)).abs().max() < 1e-6


@pytest.mark.parametrize(
    ("tracks", "more", "message"),
    [
        ("[[{'x': 1}]]", {}, r"WanTrackToVideo: tracks: is not valid JSON: .* line 1"),
        (_tracks([(1, 2)]).replace("2", '"two"'), {}, r"WanTrackToVideo: tracks: track 0, point 0: y is not a number"),
        ("[[]]", {}, r"WanTrackToVideo: tracks: track 0 has no points"),
        ("[]", {"width": 40}, r"WanTrackToVideo: width: 40 is not a multiple of 16"),
        ("[]", {"length": 10}, r"WanTrackToVideo: length: 10 frames cannot be coded"),
        ("[]", {"start_image": None}, r"WanTrackToVideo: start_image is required"),
        ("[]", {"start_image": torch.rand(64, 64, 3)}, r"WanTrackToVideo: start_image: expected IMAGE frames"),
        ("[]", {"temperature": 0.0}, r"WanTrackToVideo: temperature \(0\.0\) must be positive"),
        ("[]", {"topk": 11}, r"WanTrackToVideo: topk \(11\) must be from 1 to 10"),
    ],
)
def test_bad_inputs_name_the_node_and_the_input(
    runner: NodeRunner, inputs: dict[str, Any], tracks: str, more: dict[str, Any], message: str
) -> None:
    settings = {**inputs, "temperature": 220.0, "topk": 2, **more}
    with pytest.raises(ValueError, match=message):
        runner.call(WanTrackToVideo, **settings, tracks=tracks)


def test_a_tiny_wan21_i2v_model_samples_with_track_conditioning(runner: NodeRunner, inputs: dict[str, Any]) -> None:
    """Two steps of the tiny Wan 2.1 I2V 14B with CLIP vision: the tracks' conditioning is accepted and changes the
    result compared with WanImageToVideo's."""
    (model,) = runner.call(UNETLoader, unet_name="wan2.1_i2v_480p_14B_fp16.safetensors", weight_dtype="default")
    (clip_vision,) = runner.call(CLIPVisionLoader, clip_name="clip_vision_h.safetensors")
    (vision,) = runner.call(CLIPVisionEncode, clip_vision=clip_vision, image=inputs["start_image"], crop="center")
    tracks = _tracks([(20 + 4 * f, 28) for f in range(LENGTH)])
    sampled = []
    for text in ("[]", tracks):
        positive, negative, latent = _with_tracks(
            runner, inputs, text, temperature=220.0, topk=2, clip_vision_output=vision
        )
        (out,) = runner.result(
            KSampler,
            model=model,
            positive=positive,
            negative=negative,
            latent_image=latent,
            seed=4,
            steps=2,
            cfg=3.0,
            sampler_name="euler",
            scheduler="simple",
            denoise=1.0,
        )
        sampled.append(out["samples"])
    assert sampled[0].shape == sampled[1].shape == (1, 16, 3, 8, 8)
    assert torch.isfinite(sampled[1]).all()
    assert (sampled[0] - sampled[1]).abs().max() > 1e-4
