"""FrameColorMatch: the sRGB <-> LAB conversion, each matching method's statistics, strength, chunking and checks."""

from __future__ import annotations

from typing import Any

import pytest
import torch

import nodes.frame_color as frame_color
from graph.context import InterruptFlag, NodeContext, node_context
from graph.errors import ExecutionInterrupted
from graph.spec import NodeSpec
from nodes.frame_color import (
    NODE_CLASS_MAPPINGS,
    NODE_DISPLAY_NAME_MAPPINGS,
    FrameColorMatch,
    lab_to_rgb,
    rgb_to_lab,
)

METHODS = ["mean_std_lab", "mean_std_rgb", "histogram"]


def match(images: torch.Tensor, reference: torch.Tensor, **kwargs: Any) -> torch.Tensor:
    options = {"reference_index": 0, "method": "mean_std_rgb", "strength": 1.0, **kwargs}
    (result,) = FrameColorMatch().match(images, reference, **options)
    return result


def std_mean(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.std_mean(images, dim=(1, 2), correction=0)


@pytest.fixture
def generator() -> torch.Generator:
    return torch.Generator().manual_seed(1234)


def uniform(shape: tuple[int, ...], low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    return torch.rand(shape, generator=generator) * (high - low) + low


def test_spec() -> None:
    assert set(NODE_CLASS_MAPPINGS) == set(NODE_DISPLAY_NAME_MAPPINGS) == {"FrameColorMatch"}
    spec = NodeSpec.from_class("FrameColorMatch", FrameColorMatch, display_name="Color Match Frames")
    assert spec.category == "image/frames" and spec.output_types == ("IMAGE",)
    assert spec.input_order["required"] == ("images", "reference", "reference_index", "method", "strength")
    assert spec.inputs["method"].choices == tuple(METHODS)
    strength = spec.inputs["strength"].options
    assert (strength["default"], strength["min"], strength["max"]) == (1.0, 0.0, 1.0)
    assert spec.inputs["reference_index"].options["default"] == 0
    assert all(declared.options.get("tooltip") for declared in spec.inputs.values())


def test_lab_known_values_and_round_trip(generator: torch.Generator) -> None:
    rgb = torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    expected = torch.tensor([[100.0, 0.0, 0.0], [0.0, 0.0, 0.0], [53.24, 80.09, 67.20], [32.30, 79.19, -107.86]])
    assert torch.allclose(rgb_to_lab(rgb), expected, atol=0.01)
    gray = rgb_to_lab(torch.full((1, 3), 0.5))  # neutral greys have a = b = 0
    assert gray[0, 1:].abs().max() < 1e-3 and gray[0, 0].item() == pytest.approx(53.39, abs=0.01)
    colours = torch.rand(4096, 3, generator=generator)
    assert (lab_to_rgb(rgb_to_lab(colours)) - colours).abs().max() < 1e-4


def test_mean_std_rgb_matches_the_reference_exactly(generator: torch.Generator) -> None:
    reference = uniform((1, 24, 32, 3), 0.25, 0.75, generator)
    images = uniform((3, 16, 20, 3), 0.1, 0.4, generator)  # darker and flatter; the match needs no clamping
    matched = match(images, reference, method="mean_std_rgb")
    std, mean = std_mean(matched)
    ref_std, ref_mean = std_mean(reference)
    assert torch.allclose(mean, ref_mean.expand_as(mean), atol=1e-4)
    assert torch.allclose(std, ref_std.expand_as(std), atol=1e-4)


def test_mean_std_lab_matches_lab_statistics(generator: torch.Generator) -> None:
    reference = uniform((1, 24, 32, 3), 0.3, 0.7, generator)
    images = uniform((2, 16, 20, 3), 0.15, 0.45, generator)
    images[..., 0] += 0.1  # a red cast
    matched = match(images, reference, method="mean_std_lab")
    std, mean = std_mean(rgb_to_lab(matched))
    ref_std, ref_mean = std_mean(rgb_to_lab(reference))
    # tolerance 0.05 LAB units (L spans 0..100): the only losses are float32 and clamping to 0..1, unused here
    assert torch.allclose(mean, ref_mean.expand_as(mean), atol=0.05)
    assert torch.allclose(std, ref_std.expand_as(std), atol=0.05)
    assert matched.min() >= 0.0 and matched.max() <= 1.0


def test_histogram_reproduces_the_reference_distribution(generator: torch.Generator) -> None:
    reference = uniform((1, 16, 16, 3), 0, 1, generator) ** 2  # skewed towards dark
    images = uniform((2, 16, 16, 3), 0.2, 0.6, generator)
    matched = match(images, reference, method="histogram")
    ref_sorted = reference[0].reshape(-1, 3).sort(dim=0).values
    for frame in range(2):  # same pixel count and no ties: each frame's sorted values are the reference's, exactly
        assert torch.equal(matched[frame].reshape(-1, 3).sort(dim=0).values, ref_sorted)
        # ... and the order of the pixels is kept (a monotonic mapping per channel)
        assert torch.equal(matched[frame].reshape(-1, 3).argsort(dim=0), images[frame].reshape(-1, 3).argsort(dim=0))


def test_histogram_with_a_different_reference_size_matches_the_cdf(generator: torch.Generator) -> None:
    reference = uniform((1, 40, 50, 3), 0, 1, generator) ** 3
    images = uniform((1, 64, 64, 3), 0, 1, generator)
    matched = match(images, reference, method="histogram")
    levels = torch.linspace(0.05, 0.95, 19)
    for channel in range(3):
        got = torch.quantile(matched[0, ..., channel].flatten(), levels)
        want = torch.quantile(reference[0, ..., channel].flatten(), levels)
        assert torch.allclose(got, want, atol=2e-3), channel  # the empirical CDFs agree to 1/2000 of a quantile step


def test_histogram_maps_equal_values_to_equal_values() -> None:
    images = torch.zeros(1, 2, 2, 3)
    images[0, 1] = 1.0  # half 0, half 1
    reference = torch.arange(4, dtype=torch.float32).view(1, 2, 2, 1).expand(1, 2, 2, 3) / 3  # 0, 1/3, 2/3, 1
    matched = match(images, reference, method="histogram")
    # mid-rank quantiles 1/4 and 3/4 fall halfway between reference values 0 and 1/3, and 2/3 and 1
    assert torch.allclose(matched[0, 0], torch.full((2, 3), 1 / 6)) and torch.allclose(
        matched[0, 1], torch.full((2, 3), 5 / 6)
    )


@pytest.mark.parametrize("method", METHODS)
def test_strength(method: str, generator: torch.Generator) -> None:
    reference = uniform((1, 8, 8, 3), 0.3, 0.9, generator)
    images = uniform((2, 8, 8, 3), 0.0, 0.5, generator)
    assert match(images, reference, method=method, strength=0.0) is images
    full = match(images, reference, method=method, strength=1.0)
    half = match(images, reference, method=method, strength=0.5)
    assert torch.allclose(half, (images + full) / 2, atol=1e-6)
    assert not torch.allclose(full, images, atol=0.05)


def test_reference_index_chooses_the_frame(generator: torch.Generator) -> None:
    references = torch.stack((torch.full((4, 4, 3), 0.2), uniform((4, 4, 3), 0.6, 0.8, generator)))
    images = uniform((1, 4, 4, 3), 0.0, 1.0, generator)
    matched = match(images, references, reference_index=1, method="mean_std_rgb")
    assert torch.allclose(std_mean(matched)[1], std_mean(references[1:])[1], atol=1e-4)


def test_flat_frame_is_shifted_not_blown_up(generator: torch.Generator) -> None:
    images = torch.full((1, 4, 4, 3), 0.3)
    reference = uniform((1, 4, 4, 3), 0.5, 0.7, generator)
    for method in ("mean_std_rgb", "mean_std_lab"):
        matched = match(images, reference, method=method)
        assert torch.isfinite(matched).all()
        assert torch.allclose(matched, matched[:, :1, :1].expand_as(matched), atol=1e-6), method
    assert torch.allclose(match(images, reference)[0, 0, 0], reference.mean(dim=(0, 1, 2)), atol=1e-5)


@pytest.mark.parametrize("method", METHODS)
def test_rgba_keeps_alpha(method: str, generator: torch.Generator) -> None:
    images = uniform((2, 6, 6, 4), 0.1, 0.5, generator)
    reference = uniform((1, 6, 6, 4), 0.4, 0.9, generator)
    matched = match(images, reference, method=method)
    assert matched.shape == images.shape and torch.equal(matched[..., 3], images[..., 3])
    assert torch.allclose(matched[..., :3], match(images[..., :3], reference[..., :3], method=method))


@pytest.mark.parametrize("method", METHODS)
def test_chunks_give_the_same_result_and_report_progress(
    method: str, generator: torch.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    images = uniform((5, 8, 8, 3), 0.0, 0.6, generator)
    reference = uniform((1, 8, 8, 3), 0.3, 0.9, generator)
    whole = match(images, reference, method=method)
    monkeypatch.setattr(frame_color, "_CHUNK_ELEMENTS", 8 * 8 * 3 * 2)  # two frames per chunk
    progress: list[tuple[float, float]] = []
    context = NodeContext(
        "3", "3", "FrameColorMatch", "p", InterruptFlag(), on_progress=lambda *a: progress.append(a[1:3])
    )
    with node_context(context):
        chunked = match(images, reference, method=method)
    assert torch.allclose(chunked, whole, atol=1e-6)
    assert progress == [(2, 5), (4, 5), (5, 5)]


def test_interrupt_stops_between_chunks() -> None:
    flag = InterruptFlag()
    flag.set()
    context = NodeContext("3", "3", "FrameColorMatch", "p", flag)
    with node_context(context), pytest.raises(ExecutionInterrupted):
        match(torch.rand(2, 4, 4, 3), torch.rand(1, 4, 4, 3))


@pytest.mark.parametrize(
    ("images", "reference", "kwargs", "message"),
    [
        (torch.zeros(0, 4, 4, 3), torch.zeros(1, 4, 4, 3), {}, r"^images is empty \(0 frames\)$"),
        (torch.zeros(1, 4, 4, 3), torch.zeros(0, 4, 4, 3), {}, r"^reference is empty \(0 frames\)$"),
        (torch.zeros(1, 4, 4, 1), torch.zeros(1, 4, 4, 3), {}, r"^images has 1 channels; .*RGB \(3\) or RGBA \(4\)"),
        (torch.zeros(1, 4, 4, 3), torch.zeros(1, 4, 4, 2), {}, r"^reference has 2 channels"),
        (torch.zeros(1, 4, 4, 3), torch.zeros(2, 4, 4, 3), {"reference_index": 2}, r"^reference_index 2 .*2 frames"),
        (torch.zeros(1, 4, 4, 3), torch.zeros(1, 4, 4, 3), {"method": "lut"}, r"^method 'lut' is not one of"),
        (torch.zeros(1, 4, 4, 3), torch.zeros(1, 4, 4, 3), {"strength": 1.5}, r"^strength must lie between 0 and 1"),
    ],
)
def test_bad_inputs_are_refused(
    images: torch.Tensor, reference: torch.Tensor, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        match(images, reference, **kwargs)
