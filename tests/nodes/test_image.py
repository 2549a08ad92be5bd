"""Core image nodes: exact sockets (as ComfyUI's /object_info) and numeric behaviour."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from graph.spec import NodeSpec
from nodes.image import (
    NODE_CLASS_MAPPINGS,
    NODE_DISPLAY_NAME_MAPPINGS,
    EmptyImage,
    ImageBatch,
    ImageBlend,
    ImageCrop,
    ImageFromBatch,
    ImageInvert,
    ImageScale,
    ImageScaleBy,
    RepeatImageBatch,
)

METHODS = ["nearest-exact", "bilinear", "area", "bicubic", "lanczos"]
R = 16384

# name -> (inputs as (name, type_or_choices, default, min, max, step), outputs)
EXPECTED: dict[str, list[tuple[Any, ...]]] = {
    "EmptyImage": [
        ("width", "INT", 512, 1, R),
        ("height", "INT", 512, 1, R),
        ("batch_size", "INT", 1, 1, 4096),
        ("color", "INT", 0, 0, 0xFFFFFF),
    ],
    "ImageInvert": [("image", "IMAGE")],
    "ImageCrop": [
        ("image", "IMAGE"),
        ("width", "INT", 512, 1, R),
        ("height", "INT", 512, 1, R),
        ("x", "INT", 0, 0, R),
        ("y", "INT", 0, 0, R),
    ],
    "ImageScale": [
        ("image", "IMAGE"),
        ("upscale_method", METHODS),
        ("width", "INT", 512, 0, R),
        ("height", "INT", 512, 0, R),
        ("crop", ["disabled", "center"]),
    ],
    "ImageScaleBy": [("image", "IMAGE"), ("upscale_method", METHODS), ("scale_by", "FLOAT", 1.0, 0.01, 8.0, 0.01)],
    "ImageBatch": [("image1", "IMAGE"), ("image2", "IMAGE")],
    "RepeatImageBatch": [("image", "IMAGE"), ("amount", "INT", 1, 1, 4096)],
    "ImageFromBatch": [("image", "IMAGE"), ("batch_index", "INT", 0, 0, 4095), ("length", "INT", 1, 1, 4096)],
    "ImageBlend": [
        ("image1", "IMAGE"),
        ("image2", "IMAGE"),
        ("blend_factor", "FLOAT", 0.5, 0.0, 1.0, 0.01),
        ("blend_mode", ["normal", "multiply", "screen", "overlay", "soft_light", "difference"]),
    ],
}


def run(node_class: type, **kwargs: Any) -> torch.Tensor:
    node = node_class()
    (result,) = getattr(node, node_class.FUNCTION)(**kwargs)
    return result


def test_mappings_cover_exactly_the_core_nodes() -> None:
    assert set(NODE_CLASS_MAPPINGS) == set(EXPECTED)
    assert set(NODE_DISPLAY_NAME_MAPPINGS) == set(EXPECTED)


@pytest.mark.parametrize("class_type", sorted(EXPECTED))
def test_exact_sockets(class_type: str) -> None:
    spec = NodeSpec.from_class(class_type, NODE_CLASS_MAPPINGS[class_type])
    assert spec.output_types == ("IMAGE",)
    assert spec.category.startswith("image")
    assert spec.input_order["required"] == tuple(entry[0] for entry in EXPECTED[class_type])
    assert not spec.input_order["optional"] and not spec.input_order["hidden"]
    for name, kind, *numbers in EXPECTED[class_type]:
        declared = spec.inputs[name]
        assert "tooltip" in declared.options, name
        if isinstance(kind, list):
            assert declared.type == "COMBO" and list(declared.choices or ()) == kind
            continue
        assert declared.type == kind
        keys = ("default", "min", "max", "step")[: len(numbers)]
        assert tuple(declared.options[key] for key in keys) == tuple(numbers), name


def test_empty_image_color() -> None:
    image = run(EmptyImage, width=5, height=3, batch_size=2, color=0xFF8000)
    assert image.shape == (2, 3, 5, 3) and image.dtype == torch.float32
    assert torch.equal(image[1, 2, 4], torch.tensor([1.0, 128 / 255, 0.0]))
    assert torch.equal(image, image[:1, :1, :1].expand_as(image))


def test_invert_values_and_single_result_tensor() -> None:
    image = torch.tensor([[[[0.0, 0.25, 1.0]]]])
    inverted = run(ImageInvert, image=image)
    assert torch.equal(inverted, torch.tensor([[[[1.0, 0.75, 0.0]]]]))
    assert inverted.data_ptr() != image.data_ptr()
    assert torch.equal(image, torch.tensor([[[[0.0, 0.25, 1.0]]]])), "input must not be modified"


def ramp(batch: int, height: int, width: int) -> torch.Tensor:
    """Distinct pixel values, so crops and slices are identifiable."""
    count = batch * height * width * 3
    return (torch.arange(count, dtype=torch.float32) / count).reshape(batch, height, width, 3)


def test_crop_region_values() -> None:
    image = ramp(2, 10, 12)
    cropped = run(ImageCrop, image=image, width=4, height=3, x=5, y=2)
    assert torch.equal(cropped, image[:, 2:5, 5:9])
    assert cropped.is_contiguous()


def test_crop_clamps_position_and_size() -> None:
    image = ramp(1, 10, 12)
    assert torch.equal(run(ImageCrop, image=image, width=512, height=512, x=8, y=7), image[:, 7:, 8:])
    corner = run(ImageCrop, image=image, width=512, height=512, x=100, y=100)
    assert corner.shape == (1, 1, 1, 3) and torch.equal(corner, image[:, 9:, 11:])


@pytest.mark.parametrize("method", METHODS)
def test_scale_shapes_and_range(method: str) -> None:
    image = torch.rand(2, 16, 24, 3)
    scaled = run(ImageScale, image=image, upscale_method=method, width=40, height=30, crop="disabled")
    assert scaled.shape == (2, 30, 40, 3) and scaled.dtype == torch.float32
    assert scaled.min() >= 0.0 and scaled.max() <= 1.0


def test_scale_keeps_aspect_when_one_side_is_zero() -> None:
    image = torch.rand(1, 100, 200, 3)
    assert run(ImageScale, image=image, upscale_method="bilinear", width=0, height=50, crop="disabled").shape == (
        1,
        50,
        100,
        3,
    )
    assert run(ImageScale, image=image, upscale_method="area", width=50, height=0, crop="disabled").shape == (
        1,
        25,
        50,
        3,
    )
    assert run(ImageScale, image=image, upscale_method="area", width=0, height=0, crop="disabled") is image


def test_scale_of_constant_image_stays_constant() -> None:
    image = torch.full((1, 8, 8, 3), 0.4)
    for method in METHODS:
        scaled = run(ImageScale, image=image, upscale_method=method, width=13, height=5, crop="disabled")
        assert torch.allclose(scaled, torch.full_like(scaled, 0.4), atol=1e-5), method


def test_scale_clamps_overshoot() -> None:
    image = torch.zeros(1, 8, 8, 3)
    image[:, :, 4:] = 1.0  # a hard edge makes bicubic and lanczos ring past 0 and 1
    for method in ("bicubic", "lanczos"):
        scaled = run(ImageScale, image=image, upscale_method=method, width=32, height=8, crop="disabled")
        assert scaled.min() == 0.0 and scaled.max() == 1.0


def test_scale_center_crop_takes_the_middle() -> None:
    image = torch.zeros(1, 4, 12, 3)
    image[:, :, 4:8] = 1.0  # white middle third
    scaled = run(ImageScale, image=image, upscale_method="nearest-exact", width=4, height=4, crop="center")
    assert torch.equal(scaled, torch.ones(1, 4, 4, 3))
    uncropped = run(ImageScale, image=image, upscale_method="nearest-exact", width=4, height=4, crop="disabled")
    assert uncropped[0, 0, :, 0].tolist() == [0.0, 1.0, 1.0, 0.0]


def test_scale_nearest_exact_values() -> None:
    image = torch.tensor([[[[0.0] * 3, [1.0] * 3]]])  # 1 x 2
    scaled = run(ImageScale, image=image, upscale_method="nearest-exact", width=4, height=1, crop="disabled")
    assert scaled[0, 0, :, 0].tolist() == [0.0, 0.0, 1.0, 1.0]


def test_scale_by() -> None:
    image = torch.rand(1, 10, 15, 3)
    assert run(ImageScaleBy, image=image, upscale_method="bilinear", scale_by=1.5).shape == (1, 15, 22, 3)
    assert run(ImageScaleBy, image=image, upscale_method="lanczos", scale_by=0.01).shape == (1, 1, 1, 3)


def test_batch_concatenates_same_size() -> None:
    a, b = torch.rand(2, 4, 6, 3), torch.rand(3, 4, 6, 3)
    batched = run(ImageBatch, image1=a, image2=b)
    assert batched.shape == (5, 4, 6, 3)
    assert torch.equal(batched[:2], a) and torch.equal(batched[2:], b)


def test_batch_resizes_second_image_with_center_crop() -> None:
    a = torch.zeros(1, 4, 4, 3)
    b = torch.zeros(1, 8, 16, 3)
    b[:, :, 4:12] = 0.5  # the centred square of b
    batched = run(ImageBatch, image1=a, image2=b)
    assert batched.shape == (2, 4, 4, 3)
    assert torch.equal(batched[0], a[0])
    assert torch.allclose(batched[1], torch.full((4, 4, 3), 0.5))


def test_repeat_batch() -> None:
    image = ramp(2, 3, 3)
    repeated = run(RepeatImageBatch, image=image, amount=3)
    assert repeated.shape == (6, 3, 3, 3)
    assert torch.equal(repeated[4], image[0]) and torch.equal(repeated[5], image[1])


def test_from_batch_clamps() -> None:
    image = ramp(5, 2, 2)
    assert torch.equal(run(ImageFromBatch, image=image, batch_index=1, length=2), image[1:3])
    assert torch.equal(run(ImageFromBatch, image=image, batch_index=3, length=10), image[3:])
    assert torch.equal(run(ImageFromBatch, image=image, batch_index=99, length=4), image[4:])


A, B = 0.2, 0.7


@pytest.mark.parametrize(
    ("mode", "blended"),
    [
        ("normal", B),
        ("multiply", A * B),
        ("screen", 1 - (1 - A) * (1 - B)),
        ("overlay", 2 * A * B),  # base <= 0.5
        ("soft_light", A + (2 * B - 1) * (((16 * A - 12) * A + 4) * A - A)),  # top > 0.5, base <= 0.25
        ("difference", A - B),
    ],
)
def test_blend_modes(mode: str, blended: float) -> None:
    image1, image2 = torch.full((1, 2, 2, 3), A), torch.full((1, 2, 2, 3), B)
    factor = 0.3
    result = run(ImageBlend, image1=image1, image2=image2, blend_factor=factor, blend_mode=mode)
    expected = min(max(A * (1 - factor) + blended * factor, 0.0), 1.0)
    assert torch.allclose(result, torch.full_like(result, expected), atol=1e-6)


def test_blend_overlay_and_soft_light_bright_branches() -> None:
    a, b = 0.8, 0.3
    image1, image2 = torch.full((1, 1, 1, 3), a), torch.full((1, 1, 1, 3), b)
    overlay = run(ImageBlend, image1=image1, image2=image2, blend_factor=1.0, blend_mode="overlay")
    assert torch.allclose(overlay, torch.tensor(1 - 2 * (1 - a) * (1 - b)))
    soft = run(ImageBlend, image1=image1, image2=image2, blend_factor=1.0, blend_mode="soft_light")
    assert torch.allclose(soft, torch.tensor(a - (1 - 2 * b) * a * (1 - a)))


def test_blend_factor_zero_keeps_image1_and_result_is_clamped() -> None:
    image1, image2 = torch.rand(1, 3, 3, 3), torch.rand(1, 3, 3, 3)
    kept = run(ImageBlend, image1=image1, image2=image2, blend_factor=0.0, blend_mode="screen")
    assert torch.allclose(kept, image1)
    over = torch.full((1, 3, 3, 3), 1.5)  # out-of-range input stays in range
    assert run(ImageBlend, image1=over, image2=over, blend_factor=1.0, blend_mode="multiply").max() == 1.0


def test_blend_resizes_image2() -> None:
    image1 = torch.full((1, 4, 4, 3), 0.5)
    image2 = torch.full((2, 9, 7, 3), 1.0)
    result = run(ImageBlend, image1=image1, image2=image2[:1], blend_factor=1.0, blend_mode="multiply")
    assert result.shape == (1, 4, 4, 3) and torch.allclose(result, image1)


def test_unknown_blend_mode_is_refused() -> None:
    image = torch.rand(1, 2, 2, 3)
    with pytest.raises(ValueError, match="blend_mode"):
        run(ImageBlend, image1=image, image2=image, blend_factor=0.5, blend_mode="dodge")
