"""Frame-batch nodes: sockets, exact frame order of every selection, crossfade values, fit sizes, retiming."""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
import torch

import nodes.frames as frames_module
from graph.context import InterruptFlag, NodeContext, node_context
from graph.spec import NodeSpec
from nodes.frames import (
    NODE_CLASS_MAPPINGS,
    NODE_DISPLAY_NAME_MAPPINGS,
    FrameConcat,
    FrameFitToMultiple,
    FrameJoinCrossfade,
    FramePingPong,
    FrameRateChange,
    FrameReverse,
    FrameSelectEveryNth,
    FrameSelectRange,
)
from nodes.image import resize_images

OUTPUTS = {
    "FrameSelectRange": ("IMAGE",),
    "FrameSelectEveryNth": ("IMAGE",),
    "FrameReverse": ("IMAGE",),
    "FramePingPong": ("IMAGE",),
    "FrameConcat": ("IMAGE",),
    "FrameJoinCrossfade": ("IMAGE",),
    "FrameFitToMultiple": ("IMAGE", "INT", "INT", "MASK"),
    "FrameRateChange": ("IMAGE", "FLOAT"),
}
INPUTS = {
    "FrameSelectRange": ("images", "start", "length"),
    "FrameSelectEveryNth": ("images", "select_every_nth", "skip_first"),
    "FrameReverse": ("images",),
    "FramePingPong": ("images", "drop_turn_frames"),
    "FrameConcat": ("images_a", "images_b", "size_mismatch"),
    "FrameJoinCrossfade": ("images_a", "images_b", "overlap", "curve"),
    "FrameFitToMultiple": ("images", "multiple", "mode", "pad_mode", "upscale_method"),
    "FrameRateChange": ("images", "source_fps", "target_fps"),
}


def clip(count: int, height: int = 2, width: int = 3, offset: int = 0, channels: int = 3) -> torch.Tensor:
    """Frame i is filled with (offset + i) / 1000, so frames are identifiable after any selection."""
    values = (torch.arange(count, dtype=torch.float32) + offset) / 1000
    return values.view(-1, 1, 1, 1).expand(count, height, width, channels).contiguous()


def ids(images: torch.Tensor) -> list[int]:
    """The frame markers of ``clip``; also checks each frame is uniform (not a blend of two)."""
    first = images[:, :1, :1, :1]
    assert torch.equal(images, first.expand_as(images))
    return [round(value * 1000) for value in first.flatten().tolist()]


def call(node_class: type, **kwargs: Any) -> Any:
    result = getattr(node_class(), node_class.FUNCTION)(**kwargs)
    return result[0] if len(result) == 1 else result


def test_mappings_and_display_names() -> None:
    assert set(NODE_CLASS_MAPPINGS) == set(OUTPUTS) == set(NODE_DISPLAY_NAME_MAPPINGS)
    assert all(NODE_CLASS_MAPPINGS[name].__name__ == name for name in NODE_CLASS_MAPPINGS)


@pytest.mark.parametrize("class_type", sorted(OUTPUTS))
def test_spec(class_type: str) -> None:
    node_class = NODE_CLASS_MAPPINGS[class_type]
    spec = NodeSpec.from_class(class_type, node_class, display_name=NODE_DISPLAY_NAME_MAPPINGS[class_type])
    assert spec.category == "image/frames" and spec.description
    assert spec.output_types == OUTPUTS[class_type]
    assert spec.input_order["required"] == INPUTS[class_type]
    assert not spec.input_order["optional"] and not spec.input_order["hidden"]
    assert all(declared.options.get("tooltip") for declared in spec.inputs.values())
    for declared in spec.inputs.values():
        if declared.type in ("INT", "FLOAT"):
            assert {"default", "min", "max"} <= set(declared.options), declared.name


def test_fit_declares_its_choices_and_output_names() -> None:
    spec = NodeSpec.from_class("FrameFitToMultiple", FrameFitToMultiple)
    assert spec.output_names == ("images", "width", "height", "pad_mask")
    assert spec.inputs["mode"].choices == ("resize", "crop", "pad")
    assert spec.inputs["pad_mode"].choices == ("edge", "black", "reflect")
    assert spec.inputs["upscale_method"].choices == ("nearest-exact", "bilinear", "area", "bicubic", "lanczos")
    assert spec.inputs["multiple"].options["default"] == 16
    assert NodeSpec.from_class("FrameRateChange", FrameRateChange).output_names == ("images", "fps")


# --- selection ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "length", "expected"),
    [
        (0, 0, list(range(10))),
        (2, 3, [2, 3, 4]),
        (9, 0, [9]),
        (8, 5, [8, 9]),  # length past the end is cut
        (-3, 0, [7, 8, 9]),
        (-3, 2, [7, 8]),
        (-1, 1, [9]),
        (-10, 2, [0, 1]),
        (-25, 3, [0, 1, 2]),  # before the first frame starts at 0
    ],
)
def test_select_range(start: int, length: int, expected: list[int]) -> None:
    assert ids(call(FrameSelectRange, images=clip(10), start=start, length=length)) == expected


def test_select_range_owns_its_frames_and_passes_whole_batch_through() -> None:
    images = clip(10)
    part = call(FrameSelectRange, images=images, start=2, length=3)
    assert part.untyped_storage().data_ptr() != images.untyped_storage().data_ptr() and part.is_contiguous()
    assert call(FrameSelectRange, images=images, start=0, length=0) is images
    assert call(FrameSelectRange, images=images, start=-10, length=99) is images


def test_select_range_start_past_end_is_refused() -> None:
    with pytest.raises(ValueError, match=r"start 10 .*images, which has 10 frames"):
        call(FrameSelectRange, images=clip(10), start=10, length=0)


@pytest.mark.parametrize(
    ("nth", "skip", "expected"),
    [
        (1, 0, list(range(10))),
        (3, 0, [0, 3, 6, 9]),
        (3, 2, [2, 5, 8]),
        (4, 1, [1, 5, 9]),
        (20, 0, [0]),  # nth larger than the clip keeps the first frame
        (20, 9, [9]),
        (1, 7, [7, 8, 9]),
    ],
)
def test_select_every_nth(nth: int, skip: int, expected: list[int]) -> None:
    selected = call(FrameSelectEveryNth, images=clip(10), select_every_nth=nth, skip_first=skip)
    assert ids(selected) == expected and selected.is_contiguous()


def test_select_every_nth_refuses_skipping_everything_and_bad_nth() -> None:
    with pytest.raises(ValueError, match=r"skip_first 10 .*10 frames"):
        call(FrameSelectEveryNth, images=clip(10), select_every_nth=1, skip_first=10)
    with pytest.raises(ValueError, match="select_every_nth"):
        call(FrameSelectEveryNth, images=clip(10), select_every_nth=0, skip_first=0)


def test_reverse() -> None:
    assert ids(call(FrameReverse, images=clip(5))) == [4, 3, 2, 1, 0]
    single = clip(1)
    assert call(FrameReverse, images=single) is single


@pytest.mark.parametrize(
    ("count", "drop", "expected"),
    [
        (4, True, [0, 1, 2, 3, 2, 1]),
        (4, False, [0, 1, 2, 3, 3, 2, 1, 0]),
        (3, True, [0, 1, 2, 1]),
        (2, True, [0, 1]),
        (2, False, [0, 1, 1, 0]),
        (1, True, [0]),
        (1, False, [0, 0]),
    ],
)
def test_ping_pong(count: int, drop: bool, expected: list[int]) -> None:
    assert ids(call(FramePingPong, images=clip(count), drop_turn_frames=drop)) == expected


def test_selection_nodes_work_for_any_channel_count() -> None:
    gray = clip(6, channels=1)
    assert ids(call(FrameSelectEveryNth, images=gray, select_every_nth=2, skip_first=1)) == [1, 3, 5]
    assert ids(call(FramePingPong, images=gray, drop_turn_frames=True)) == [0, 1, 2, 3, 4, 5, 4, 3, 2, 1]
    assert ids(call(FrameRateChange, images=gray, source_fps=2.0, target_fps=1.0)[0]) == [0, 2, 4]


# --- joins -------------------------------------------------------------------------------------------------------


def test_concat_same_size() -> None:
    joined = call(FrameConcat, images_a=clip(3), images_b=clip(2, offset=100), size_mismatch="error")
    assert ids(joined) == [0, 1, 2, 100, 101]


def test_concat_size_mismatch_error_names_both_sizes() -> None:
    with pytest.raises(ValueError, match=r"images_a frames are 3x2 but images_b frames are 5x4"):
        call(FrameConcat, images_a=clip(3), images_b=clip(2, height=4, width=5), size_mismatch="error")


def test_concat_resize_b() -> None:
    joined = call(FrameConcat, images_a=clip(3), images_b=clip(2, 4, 5, offset=100), size_mismatch="resize_b")
    assert joined.shape == (5, 2, 3, 3)
    assert ids(joined[:3]) == [0, 1, 2]
    assert torch.allclose(joined[3:], clip(2, offset=100), atol=1e-6)  # uniform frames stay uniform when resized


def test_concat_refuses_different_channel_counts() -> None:
    with pytest.raises(ValueError, match="images_a has 3 channels and images_b has 4"):
        call(FrameConcat, images_a=clip(1), images_b=clip(1, channels=4), size_mismatch="resize_b")


def test_crossfade_seam_values_linear() -> None:
    a = torch.full((5, 2, 2, 3), 0.2)
    b = torch.full((4, 2, 2, 3), 0.8)
    joined = call(FrameJoinCrossfade, images_a=a, images_b=b, overlap=3, curve="linear")
    assert joined.shape == (6, 2, 2, 3)
    expected = [0.2, 0.2, 0.2 + 0.6 * 1 / 4, 0.2 + 0.6 * 2 / 4, 0.2 + 0.6 * 3 / 4, 0.8]
    assert torch.allclose(joined[:, 0, 0, 0], torch.tensor(expected), atol=1e-6)
    assert torch.equal(joined, joined[:, :1, :1, :1].expand_as(joined))


def test_crossfade_takes_the_right_frames() -> None:
    a, b = clip(5), clip(4, offset=100)
    joined = call(FrameJoinCrossfade, images_a=a, images_b=b, overlap=2, curve="linear")
    assert joined.shape[0] == 5 + 4 - 2
    assert ids(joined[:3]) == [0, 1, 2] and ids(joined[5:]) == [102, 103]
    for k, (frame_a, frame_b) in enumerate(((3, 100), (4, 101))):
        weight = (k + 1) / 3
        expected = (frame_a * (1 - weight) + frame_b * weight) / 1000
        assert joined[3 + k, 0, 0, 0].item() == pytest.approx(expected, abs=1e-6)


def test_crossfade_overlap_zero_is_concat_and_overlap_can_be_a_whole_clip() -> None:
    a, b = clip(3), clip(4, offset=100)
    assert ids(call(FrameJoinCrossfade, images_a=a, images_b=b, overlap=0, curve="linear")) == [
        0,
        1,
        2,
        100,
        101,
        102,
        103,
    ]
    whole = call(FrameJoinCrossfade, images_a=a, images_b=b, overlap=3, curve="linear")
    assert whole.shape[0] == 4 and ids(whole[3:]) == [103]
    assert whole[0, 0, 0, 0].item() == pytest.approx((0 * 3 / 4 + 100 * 1 / 4) / 1000, abs=1e-6)
    same = call(FrameJoinCrossfade, images_a=b, images_b=b, overlap=4, curve="ease_in_out")
    assert torch.allclose(same, b)


def test_crossfade_ease_in_out_weights() -> None:
    a, b = torch.zeros(3, 1, 1, 3), torch.ones(3, 1, 1, 3)
    joined = call(FrameJoinCrossfade, images_a=a, images_b=b, overlap=3, curve="ease_in_out")
    weights = [t * t * (3 - 2 * t) for t in (0.25, 0.5, 0.75)]
    assert torch.allclose(joined[:, 0, 0, 0], torch.tensor(weights), atol=1e-6)
    assert weights[1] == 0.5 and weights[0] < 0.25


@pytest.mark.parametrize(("count_a", "count_b", "overlap"), [(3, 5, 4), (5, 3, 4), (3, 3, -1)])
def test_crossfade_overlap_longer_than_a_clip_is_refused(count_a: int, count_b: int, overlap: int) -> None:
    with pytest.raises(ValueError, match=rf"overlap {overlap} .*images_a has {count_a} frames, images_b has {count_b}"):
        call(FrameJoinCrossfade, images_a=clip(count_a), images_b=clip(count_b), overlap=overlap, curve="linear")


def test_crossfade_refuses_different_sizes() -> None:
    with pytest.raises(ValueError, match="images_a frames are 3x2 but images_b frames are 2x2"):
        call(FrameJoinCrossfade, images_a=clip(3), images_b=clip(3, width=2), overlap=1, curve="linear")


# --- fit to multiple ---------------------------------------------------------------------------------------------


def pattern(count: int, height: int, width: int, channels: int = 3) -> torch.Tensor:
    """Distinct pixel values so crops and pads can be checked exactly."""
    total = count * height * width * channels
    return (torch.arange(total, dtype=torch.float32) / total).reshape(count, height, width, channels)


def fit(images: torch.Tensor, mode: str, multiple: int = 16, pad_mode: str = "edge", method: str = "bilinear") -> Any:
    return call(
        FrameFitToMultiple, images=images, multiple=multiple, mode=mode, pad_mode=pad_mode, upscale_method=method
    )


def test_fit_crop_is_centred() -> None:
    images = pattern(2, 37, 50)
    cropped, width, height, mask = fit(images, "crop")
    assert (width, height) == (48, 32) and cropped.shape == (2, 32, 48, 3)
    assert torch.equal(cropped, images[:, 2:34, 1:49]) and cropped.is_contiguous()
    assert mask.shape == (2, 32, 48) and not mask.any()


@pytest.mark.parametrize("pad_mode", ["edge", "black", "reflect"])
def test_fit_pad_is_centred(pad_mode: str) -> None:
    images = pattern(2, 37, 50)
    padded, width, height, mask = fit(images, "pad", pad_mode=pad_mode)
    assert (width, height) == (64, 48) and padded.shape == (2, 48, 64, 3)
    top, left = (48 - 37) // 2, (64 - 50) // 2
    assert (top, left) == (5, 7)
    assert torch.equal(padded[:, top : top + 37, left : left + 50], images)
    numpy_mode = {"edge": "edge", "black": "constant", "reflect": "reflect"}[pad_mode]
    expected = np.pad(images.numpy(), ((0, 0), (5, 6), (7, 7), (0, 0)), mode=numpy_mode)
    assert np.array_equal(padded.numpy(), expected)
    assert mask.shape == (2, 48, 64) and mask.dtype == torch.float32
    assert mask.sum().item() == 2 * (48 * 64 - 37 * 50)
    assert not mask[:, top : top + 37, left : left + 50].any()


@pytest.mark.parametrize("pad_mode", ["edge", "reflect"])
def test_fit_pad_larger_than_the_image(pad_mode: str) -> None:
    images = pattern(1, 2, 3, channels=4)  # RGBA and a pad wider than the image
    padded, width, height, _ = fit(images, "pad", multiple=8, pad_mode=pad_mode)
    assert (width, height) == (8, 8)
    expected = np.pad(images.numpy(), ((0, 0), (3, 3), (2, 3), (0, 0)), mode=pad_mode)  # numpy's names match
    assert np.array_equal(padded.numpy(), expected)


@pytest.mark.parametrize(
    ("size", "expected"),
    [((50, 37), (48, 32)), ((56, 40), (64, 48)), ((5, 30), (16, 32)), ((64, 48), (64, 48))],
)
def test_fit_resize_to_nearest_multiple(size: tuple[int, int], expected: tuple[int, int]) -> None:
    images = torch.rand(2, size[1], size[0], 3)
    resized, width, height, mask = fit(images, "resize")
    assert (width, height) == expected and resized.shape == (2, expected[1], expected[0], 3)
    assert resized.min() >= 0 and resized.max() <= 1 and mask.shape == (2, expected[1], expected[0])
    if size == expected:
        assert resized is images


def test_fit_resize_in_chunks_matches_one_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    images = torch.rand(5, 37, 50, 3)
    whole = fit(images, "resize", method="bicubic")[0]
    monkeypatch.setattr(frames_module, "_RESIZE_CHUNK_ELEMENTS", 48 * 32 * 3 * 2)  # two frames per chunk
    progress: list[tuple[float, float]] = []
    context = NodeContext(
        "7", "7", "FrameFitToMultiple", "p", InterruptFlag(), on_progress=lambda *a: progress.append(a[1:3])
    )
    with node_context(context):
        chunked = fit(images, "resize", method="bicubic")[0]
    assert torch.equal(chunked, whole) and torch.equal(whole, resize_images(images, 48, 32, "bicubic"))
    assert progress == [(2, 5), (4, 5), (5, 5)]


def test_fit_crop_smaller_than_multiple_is_refused() -> None:
    with pytest.raises(ValueError, match=r"images are 50x10, smaller than multiple 16"):
        fit(torch.rand(1, 10, 50, 3), "crop")


def test_fit_multiple_of_one_is_identity() -> None:
    images = torch.rand(1, 7, 9, 3)
    for mode in ("resize", "crop", "pad"):
        assert fit(images, mode, multiple=1)[0] is images


# --- frame rate --------------------------------------------------------------------------------------------------


def test_rate_halving_takes_every_other_frame() -> None:
    images, fps = call(FrameRateChange, images=clip(24), source_fps=24.0, target_fps=12.0)
    assert ids(images) == list(range(0, 24, 2)) and fps == 12.0


def test_rate_24_to_30_repeats_frames_by_timestamp() -> None:
    images, fps = call(FrameRateChange, images=clip(24), source_fps=24.0, target_fps=30.0)
    assert len(images) == 30 and fps == 30.0
    assert ids(images) == [math.floor(i * 24 / 30) for i in range(30)]
    assert ids(images)[:6] == [0, 0, 1, 2, 3, 4]


@pytest.mark.parametrize(
    ("source", "target"), [(30000 / 1001, 24000 / 1001), (29.97, 23.976), (24000 / 1001, 24.0), (60.0, 30000 / 1001)]
)
def test_rate_ntsc_fractions(source: float, target: float) -> None:
    count = 300
    images, fps = call(FrameRateChange, images=clip(count), source_fps=source, target_fps=target)
    assert fps == target and len(images) == round(count * target / source)
    # exact rational timestamps: output frame i shows source frame floor(i * source / target)
    ratio = Fraction(source).limit_denominator(100000) / Fraction(target).limit_denominator(100000)
    assert ids(images) == [min(count - 1, math.floor(i * ratio)) for i in range(len(images))]


def test_rate_ntsc_drop_pattern() -> None:
    images, _ = call(FrameRateChange, images=clip(10), source_fps=30000 / 1001, target_fps=24000 / 1001)
    assert ids(images) == [0, 1, 2, 3, 5, 6, 7, 8]


def test_rate_unchanged_and_short_clips() -> None:
    images = clip(5)
    assert call(FrameRateChange, images=images, source_fps=24.0, target_fps=24.0)[0] is images
    assert ids(call(FrameRateChange, images=clip(1), source_fps=24.0, target_fps=1.0)[0]) == [0]
    assert ids(call(FrameRateChange, images=clip(2), source_fps=1.0, target_fps=2.5)[0]) == [0, 0, 0, 1, 1]


def test_rate_refuses_non_positive_fps() -> None:
    with pytest.raises(ValueError, match="target_fps must be a positive number"):
        call(FrameRateChange, images=clip(3), source_fps=24.0, target_fps=0.0)


# --- input checks ------------------------------------------------------------------------------------------------

EMPTY = torch.zeros(0, 4, 4, 3)
ONE = torch.zeros(1, 4, 4, 3)


@pytest.mark.parametrize(
    ("node_class", "kwargs", "name"),
    [
        (FrameSelectRange, {"images": EMPTY, "start": 0, "length": 0}, "images"),
        (FrameSelectEveryNth, {"images": EMPTY, "select_every_nth": 1, "skip_first": 0}, "images"),
        (FrameReverse, {"images": EMPTY}, "images"),
        (FramePingPong, {"images": EMPTY, "drop_turn_frames": True}, "images"),
        (FrameConcat, {"images_a": ONE, "images_b": EMPTY, "size_mismatch": "error"}, "images_b"),
        (FrameJoinCrossfade, {"images_a": EMPTY, "images_b": ONE, "overlap": 0, "curve": "linear"}, "images_a"),
        (
            FrameFitToMultiple,
            {"images": EMPTY, "multiple": 8, "mode": "pad", "pad_mode": "edge", "upscale_method": "area"},
            "images",
        ),
        (FrameRateChange, {"images": EMPTY, "source_fps": 24.0, "target_fps": 12.0}, "images"),
    ],
)
def test_empty_batches_are_refused(node_class: type, kwargs: dict[str, Any], name: str) -> None:
    with pytest.raises(ValueError, match=rf"^{name} is empty \(0 frames\)$"):
        call(node_class, **kwargs)


def test_wrong_shape_is_refused() -> None:
    with pytest.raises(ValueError, match=r"images must be an IMAGE tensor .*got \(4, 4, 3\)"):
        call(FrameReverse, images=torch.zeros(4, 4, 3))
    with pytest.raises(ValueError, match=r"images must be an IMAGE tensor .*got list"):
        call(FrameReverse, images=[])
