"""ControlNetApplyAdvanced and ControlNetApply: ComfyUI's sockets, chaining, strength 0, the automatic resize of
control frames, and errors naming the node and input (bad frames, a frame count that fits no frame, a ControlNet on a
network it cannot drive)."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from graph.spec import NodeSpec
from models.controlnet.application import CONTROL, ControlApplication
from models.pixels import resize_images
from models.tiny.controlnet import DIFFUSERS_FILE, LDM_FILE
from nodes.animatediff import EmptyAnimateDiffLatent
from nodes.controlnet import ControlNetApply, ControlNetApplyAdvanced, ControlNetLoader
from nodes.latent import EmptyHunyuanLatentVideo
from nodes.loaders import CheckpointLoaderSimple, UNETLoader
from tests.nodes import fidelity
from tests.nodes.node_runner import NodeRunner

CHECKPOINT = "v1-5-pruned-emaonly-fp16.safetensors"
SIZE, LENGTH = 32, 4


@pytest.fixture
def sd15(runner: NodeRunner) -> tuple[Any, Any, Any, Any]:
    model, clip, vae = runner.call(CheckpointLoaderSimple, ckpt_name=CHECKPOINT)
    return model, vae, *fidelity.encode_prompts(runner, clip, "a red car", "a dog")


def _apply(runner: NodeRunner, positive: Any, negative: Any, image: torch.Tensor, **options: Any) -> tuple[Any, Any]:
    (control_net,) = runner.call(ControlNetLoader, control_net_name=options.pop("file", LDM_FILE))
    settings = {"strength": 1.0, "start_percent": 0.0, "end_percent": 1.0, **options}
    return runner.call(
        ControlNetApplyAdvanced, positive=positive, negative=negative, control_net=control_net, image=image, **settings
    )


def _sampled(runner: NodeRunner, model: Any, vae: Any, positive: Any, negative: Any) -> torch.Tensor:
    (latent,) = runner.call(EmptyAnimateDiffLatent, width=SIZE, height=SIZE, length=LENGTH, batch_size=1)
    output = fidelity.ksample(runner, model, positive, negative, latent, seed=3, steps=2, cfg=5.0)
    return fidelity.decoded(runner, output, vae)


def test_sockets_match_comfyui() -> None:
    NodeSpec.from_class("ControlNetApplyAdvanced", ControlNetApplyAdvanced)
    inputs = ControlNetApplyAdvanced.INPUT_TYPES()
    assert list(inputs["required"]) == [
        "positive",
        "negative",
        "control_net",
        "image",
        "strength",
        "start_percent",
        "end_percent",
    ]
    assert list(inputs["optional"]) == ["vae"]
    assert inputs["required"]["strength"][1] | {"tooltip": ""} == {
        "default": 1.0,
        "min": 0.0,
        "max": 10.0,
        "step": 0.01,
        "tooltip": "",
    }
    assert ControlNetApplyAdvanced.RETURN_NAMES == ("positive", "negative")
    NodeSpec.from_class("ControlNetApply", ControlNetApply)
    assert list(ControlNetApply.INPUT_TYPES()["required"]) == ["conditioning", "control_net", "image", "strength"]


def test_apply_sets_chained_controls_sharing_one_per_previous(runner: NodeRunner, sd15) -> None:
    _model, _vae, positive, negative = sd15
    first = torch.rand(1, SIZE, SIZE, 3)
    positive, negative = _apply(runner, positive, negative, first, strength=0.5, start_percent=0.2)
    applied = positive[0][1][CONTROL]
    assert isinstance(applied, ControlApplication)
    assert negative[0][1][CONTROL] is applied  # both had no control: one application
    assert (applied.strength, applied.start_percent, applied.end_percent) == (0.5, 0.2, 1.0)
    second_image = torch.rand(LENGTH, SIZE, SIZE, 3)
    positive, negative = _apply(runner, positive, negative, second_image, file=DIFFUSERS_FILE)
    chain = list(positive[0][1][CONTROL].chain())
    assert [control.control_net.name for control in chain] == [LDM_FILE, DIFFUSERS_FILE]
    assert chain[0] is applied and torch.equal(chain[1].image, second_image)
    (old,) = runner.call(
        ControlNetApply, conditioning=positive, control_net=chain[0].control_net, image=first, strength=0.3
    )
    assert [control.strength for control in old[0][1][CONTROL].chain()] == [0.5, 1.0, 0.3]


def test_strength_zero_leaves_the_conditioning(runner: NodeRunner, sd15) -> None:
    _model, _vae, positive, negative = sd15
    new_positive, new_negative = _apply(runner, positive, negative, torch.rand(1, SIZE, SIZE, 3), strength=0.0)
    assert CONTROL not in new_positive[0][1] and CONTROL not in new_negative[0][1]
    assert new_positive[0][0] is positive[0][0]


def test_control_frames_of_another_size_are_resized(runner: NodeRunner, sd15) -> None:
    model, vae, positive, negative = sd15
    large = torch.rand(LENGTH, 2 * SIZE, 3 * SIZE, 3)
    fitted = resize_images(large, SIZE, SIZE, "bilinear", "center")
    from_large = _sampled(runner, model, vae, *_apply(runner, positive, negative, large))
    from_fitted = _sampled(runner, model, vae, *_apply(runner, positive, negative, fitted))
    uncontrolled = _sampled(runner, model, vae, positive, negative)
    assert torch.allclose(from_large, from_fitted, atol=1e-5)
    assert (from_large - uncontrolled).abs().max() > 1e-2


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"image": torch.rand(SIZE, SIZE, 3)}, r"ControlNetApplyAdvanced: image: expected IMAGE frames"),
        ({"image": torch.rand(1, SIZE, SIZE, 4)}, r"ControlNetApplyAdvanced: image: expected IMAGE frames"),
        ({"start_percent": 0.8, "end_percent": 0.2}, r"start_percent \(0.8\) must not be above end_percent \(0.2\)"),
    ],
)
def test_bad_inputs_name_the_node_and_input(runner: NodeRunner, sd15, options: dict[str, Any], message: str) -> None:
    _model, _vae, positive, negative = sd15
    image = options.pop("image", torch.rand(1, SIZE, SIZE, 3))
    with pytest.raises(ValueError, match=message):
        _apply(runner, positive, negative, image, **options)


def test_a_frame_count_that_fits_no_frame_is_refused_before_sampling(runner: NodeRunner, sd15) -> None:
    model, vae, positive, negative = sd15
    positive, negative = _apply(runner, positive, negative, torch.rand(LENGTH - 1, SIZE, SIZE, 3))
    with pytest.raises(ValueError, match=r"positive: ControlNetApplyAdvanced: image: 3 control frames for a latent "):
        _sampled(runner, model, vae, positive, negative)
    assert runner.progress == []  # refused before any step


def test_a_controlnet_on_another_family_is_refused(runner: NodeRunner, sd15) -> None:
    _model, _vae, positive, negative = sd15
    positive, negative = _apply(runner, positive, negative, torch.rand(1, SIZE, SIZE, 3))
    (wan,) = runner.call(UNETLoader, unet_name="wan2.1_t2v_1.3B_fp16.safetensors", weight_dtype="default")
    (latent,) = runner.call(EmptyHunyuanLatentVideo, width=SIZE, height=SIZE, length=5, batch_size=1)
    with pytest.raises(ValueError, match=r"control_net: control_v11p_sd15_openpose_fp16.safetensors: .*ControlNets "):
        fidelity.ksample(runner, wan, positive, negative, latent, seed=0, steps=1, cfg=1.0)
