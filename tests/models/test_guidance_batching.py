"""Batched conditioning: every family adapter predicts several conditioning entries in one network call where their
inputs merge (as diffusers' pipelines batch cond/uncond), equal to one call per entry; entries that cannot merge
(another token length, other shared settings) and batched calls that run out of memory fall back to one call each.

All on the real tiny diffusers networks of ``models/tiny``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
import torch
from diffusers import CogVideoXTransformer3DModel, UNetMotionModel

from models.diffusion_model import DiffusionModel
from models.families.animatediff.adapter import adapter_from_motion_config
from models.families.base import ConditioningEntry, FamilyAdapter, NetworkCall, merged_call
from models.families.cogvideox.adapter import IMAGE_LATENTS, CogVideoXAdapter
from models.families.cogvideox.spec import cogvideox_spec_from_config
from models.families.hunyuan.family import hunyuan_adapter_from_config
from models.families.ltx.adapter import ltx_adapter_from_config
from models.families.mochi.adapter import MochiAdapter
from models.families.mochi.checkpoint import mochi_spec_from_config
from models.families.sd15.adapter import Sd15Adapter
from models.families.sd15.unet_checkpoint import sd15_spec_from_config
from models.families.skyreels.adapter import SkyReelsAdapter
from models.families.skyreels.diffusers_config import skyreels_spec_from_config
from models.families.svd.adapter import SvdAdapter
from models.families.svd.unet_checkpoint import svd_spec_from_config
from models.families.wan.adapter import WanAdapter
from models.families.wan.diffusers_config import wan_spec_from_config
from models.guidance import Guider
from models.sampling.model_sampling import FlowSampling
from models.tiny.animatediff import tiny_motion_adapter, tiny_sd15_unet
from models.tiny.cogvideox import TINY_I2V_15_TRANSFORMER, TINY_T2V_2B_TRANSFORMER
from models.tiny.hunyuan import TINY_POOLED_DIM, tiny_hunyuan_transformer
from models.tiny.hunyuan import TINY_TEXT_DIM as HUNYUAN_TEXT_DIM
from models.tiny.ltx import tiny_ltx_transformer
from models.tiny.mochi import TINY_MOCHI_TRANSFORMER, tiny_mochi_transformer
from models.tiny.mochi import TINY_TEXT_DIM as MOCHI_TEXT_DIM
from models.tiny.skyreels import tiny_skyreels_transformer
from models.tiny.svd import TINY_SVD_UNET, tiny_svd_unet
from models.tiny.wan import tiny_wan_transformer

TOLERANCE = 1e-5
WAN_T2V = "wan2.1_t2v_1.3B_fp16"


@dataclass(frozen=True)
class Case:
    """An adapter, its real tiny network, a state and timestep, and two conditioning entries (positive, negative)."""

    adapter: FamilyAdapter
    network: torch.nn.Module
    x: torch.Tensor
    timestep: torch.Tensor
    entries: tuple[ConditioningEntry, ...]


def _randn(*shape: int, seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _svd() -> Case:
    embeds = _randn(1, 1, TINY_SVD_UNET["cross_attention_dim"], seed=1)
    positive = (embeds, {"concat_latent_image": _randn(1, 4, 1, 4, 4, seed=2), "fps": 7, "motion_bucket_id": 127})
    negative = (torch.zeros_like(embeds), {"fps": 7, "motion_bucket_id": 127})  # the pipeline's unconditional half
    adapter = SvdAdapter(svd_spec_from_config(TINY_SVD_UNET))
    return Case(adapter, tiny_svd_unet(), _randn(1, 4, 3, 4, 4, seed=3), torch.tensor([0.9]), (positive, negative))


def _sd15() -> Case:
    unet = tiny_sd15_unet()
    dim = unet.config.cross_attention_dim
    entries = ((_randn(1, 7, dim, seed=1), {}), (_randn(1, 7, dim, seed=2), {}))
    adapter = Sd15Adapter(sd15_spec_from_config(unet.config))
    return Case(adapter, unet, _randn(1, 4, 3, 8, 8, seed=3), torch.tensor([500.0]), entries)


def _animatediff() -> Case:
    network = UNetMotionModel.from_unet2d(tiny_sd15_unet(), tiny_motion_adapter()).eval()
    dim = network.config.cross_attention_dim
    entries = ((_randn(1, 7, dim, seed=1), {}), (_randn(1, 7, dim, seed=2), {}))
    adapter = adapter_from_motion_config(network.config)
    return Case(adapter, network, _randn(1, 4, 4, 8, 8, seed=3), torch.tensor([500.0]), entries)


def _wan() -> Case:
    network = tiny_wan_transformer(WAN_T2V)
    dim = network.config.text_dim
    entries = ((_randn(1, 6, dim, seed=1), {}), (_randn(1, 6, dim, seed=2), {}))
    adapter = WanAdapter(wan_spec_from_config(network.config))
    return Case(adapter, network, _randn(1, 16, 2, 4, 4, seed=3), torch.tensor([700.0]), entries)


def _cogvideox_2b() -> Case:
    torch.manual_seed(0)
    network = CogVideoXTransformer3DModel(**TINY_T2V_2B_TRANSFORMER).eval()
    adapter = CogVideoXAdapter(cogvideox_spec_from_config(network.config))
    text = (1, adapter.text_length, adapter.text_dim)
    entries = ((_randn(*text, seed=1), {}), (_randn(*text, seed=2), {}))
    return Case(adapter, network, _randn(1, 16, 3, 8, 8, seed=3), torch.tensor([600]), entries)


def _cogvideox_15_i2v() -> Case:
    """Rotary positions and the ofs embedding: shared values of the call."""
    torch.manual_seed(0)
    network = CogVideoXTransformer3DModel(**TINY_I2V_15_TRANSFORMER).eval()
    adapter = CogVideoXAdapter(cogvideox_spec_from_config(network.config))
    text = (1, adapter.text_length, adapter.text_dim)
    image = {IMAGE_LATENTS: _randn(1, 16, 2, 8, 8, seed=4)}
    entries = ((_randn(*text, seed=1), image), (_randn(*text, seed=2), image))
    return Case(adapter, network, _randn(1, 16, 2, 8, 8, seed=3), torch.tensor([600]), entries)


def _mochi() -> Case:
    masks = (torch.tensor([[1] * 6 + [0] * 2]), torch.tensor([[1] * 3 + [0] * 5]))
    entries = tuple(
        (_randn(1, 8, MOCHI_TEXT_DIM, seed=index), {"attention_mask": mask}) for index, mask in enumerate(masks)
    )
    adapter = MochiAdapter(mochi_spec_from_config(TINY_MOCHI_TRANSFORMER))
    return Case(adapter, tiny_mochi_transformer(), _randn(1, 12, 2, 4, 4, seed=3), torch.tensor([800.0]), entries)


def _hunyuan(variant: str = "t2v", guiding: tuple[bool, bool] = (False, False)) -> Case:
    network = tiny_hunyuan_transformer(variant)
    adapter = hunyuan_adapter_from_config(dict(network.config))
    masks = (torch.tensor([[1.0] * 5 + [0.0]]), torch.tensor([[1.0] * 2 + [0.0] * 4]))
    entries = []
    for index, (mask, guide) in enumerate(zip(masks, guiding, strict=True)):
        extras: dict[str, Any] = {"attention_mask": mask, "pooled_output": _randn(1, TINY_POOLED_DIM, seed=10 + index)}
        if guide:
            extras["guiding_frame_index"] = 0
        entries.append((_randn(1, 6, HUNYUAN_TEXT_DIM, seed=index), extras))
    return Case(adapter, network, _randn(1, 16, 2, 4, 4, seed=3), torch.tensor([900.0]), tuple(entries))


def _ltx(frame_rates: tuple[float, float] = (25.0, 25.0)) -> Case:
    network = tiny_ltx_transformer()
    adapter = ltx_adapter_from_config(network.config)
    dim = network.config.caption_channels
    masks = (torch.tensor([[1, 1, 1, 1, 0, 0]]), torch.tensor([[1, 1, 0, 0, 0, 0]]))
    entries = tuple(
        (_randn(1, 6, dim, seed=index), {"attention_mask": mask, "frame_rate": rate})
        for index, (mask, rate) in enumerate(zip(masks, frame_rates, strict=True))
    )
    return Case(adapter, network, _randn(1, 128, 2, 2, 2, seed=3), torch.tensor([900.0]), entries)


def _skyreels(fps: tuple[int, int] = (16, 16), *, forcing: bool = False) -> Case:
    """The DF model (with the fps embedding); ``forcing``: one timestep per latent frame."""
    network = tiny_skyreels_transformer("df_1.3b")
    adapter = SkyReelsAdapter(skyreels_spec_from_config(network.config))
    dim = network.config.text_dim
    entries = tuple((_randn(1, 6, dim, seed=index), {"fps": rate}) for index, rate in enumerate(fps))
    timestep = torch.tensor([[900.0, 700.0]]) if forcing else torch.tensor([900.0])
    return Case(adapter, network, _randn(1, 16, 2, 4, 4, seed=3), timestep, entries)


CASES: dict[str, Callable[[], Case]] = {
    "svd": _svd,
    "sd15": _sd15,
    "animatediff": _animatediff,
    "wan": _wan,
    "cogvideox_2b": _cogvideox_2b,
    "cogvideox_15_i2v": _cogvideox_15_i2v,
    "mochi": _mochi,
    "hunyuan": _hunyuan,
    "ltx": _ltx,
    "skyreels": _skyreels,
}


@contextmanager
def _calls(network: torch.nn.Module) -> Iterator[list[int]]:
    """The batch size of each forward of ``network`` within the block."""
    batches: list[int] = []

    def record(_module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
        first = args[0] if args else next(iter(kwargs.values()))
        batches.append(first.shape[0])

    handle = network.register_forward_pre_hook(record, with_kwargs=True)
    try:
        yield batches
    finally:
        handle.remove()


def _separate(case: Case) -> list[torch.Tensor]:
    return [case.adapter.predict(case.network, case.x, case.timestep, entry, torch.float32) for entry in case.entries]


def _batched(case: Case, **kwargs: Any) -> list[torch.Tensor]:
    entries = list(case.entries)
    return case.adapter.predict_entries(case.network, case.x, case.timestep, entries, torch.float32, **kwargs)


def _assert_close(ours: list[torch.Tensor], expected: list[torch.Tensor]) -> None:
    assert len(ours) == len(expected)
    for got, want in zip(ours, expected, strict=True):
        assert got.shape == want.shape
        assert (got - want).abs().max() < TOLERANCE


@pytest.mark.parametrize("name", list(CASES))
def test_entries_that_fit_run_in_one_call_equal_to_separate_calls(name: str) -> None:
    case = CASES[name]()
    with torch.no_grad():
        expected = _separate(case)
        with _calls(case.network) as batches:
            ours = _batched(case)
    assert len(batches) == 1 and batches[0] in (2, 2 * case.x.shape[2])  # SD1.5: frames as batch
    _assert_close(ours, expected)
    assert not torch.allclose(ours[0], ours[1])  # the entries were not mixed up into one


@pytest.mark.parametrize(
    ("name", "build"),
    [
        ("ltx frame rates", lambda: _ltx(frame_rates=(25.0, 24.0))),
        ("hunyuan guiding frame", lambda: _hunyuan("i2v_replace", guiding=(True, False))),
        ("skyreels fps", lambda: _skyreels(fps=(16, 24))),
    ],
)
def test_entries_with_other_shared_settings_run_separately(name: str, build: Callable[[], Case]) -> None:
    case = build()
    with torch.no_grad():
        expected = _separate(case)
        with _calls(case.network) as batches:
            ours = _batched(case)
    assert len(batches) == 2, name
    _assert_close(ours, expected)


def test_text_of_another_length_runs_separately_and_the_rest_still_batch() -> None:
    case = _wan()
    short = (case.entries[1][0][:, :4], {})
    entries = [case.entries[0], short, case.entries[1]]
    with torch.no_grad():
        expected = [
            case.adapter.predict(case.network, case.x, case.timestep, entry, torch.float32) for entry in entries
        ]
        with _calls(case.network) as batches:
            ours = case.adapter.predict_entries(case.network, case.x, case.timestep, entries, torch.float32)
    assert batches == [2, 1]  # the two 6-token entries together, the 4-token one alone
    _assert_close(ours, expected)


def test_diffusion_forcing_with_the_fps_embedding_equals_separate_calls() -> None:
    """diffusers' SkyReels-V2 network takes per-frame timesteps with the fps embedding for one sample only; the
    adapter runs such a merged call sample by sample."""
    case = _skyreels(forcing=True)
    with torch.no_grad():
        _assert_close(_batched(case), _separate(case))


def test_batch_off_runs_one_call_per_entry() -> None:
    case = _svd()
    with torch.no_grad(), _calls(case.network) as batches:
        _batched(case, batch=False)
    assert batches == [1, 1]


def test_calls_merge_only_when_alike() -> None:
    tensor = torch.zeros(1, 3)
    call = NetworkCall({"a": tensor, "b": None, "c": [0]}, {"size": (2, 3)})
    merged = merged_call([call, NetworkCall({"a": tensor + 1, "b": None, "c": [1]}, {"size": (2, 3)})])
    assert merged is not None
    assert merged.per_sample["a"].tolist() == [[0.0] * 3, [1.0] * 3] and merged.per_sample["c"] == [0, 1]
    assert merged_call([call]) is call
    unlike = (
        NetworkCall({"a": torch.zeros(1, 4), "b": None, "c": [0]}, {"size": (2, 3)}),  # another shape
        NetworkCall({"a": tensor, "b": tensor, "c": [0]}, {"size": (2, 3)}),  # a tensor where the other has None
        NetworkCall({"a": tensor, "b": None, "c": [0]}, {"size": (2, 4)}),  # another shared value
        NetworkCall({"a": tensor.double(), "b": None, "c": [0]}, {"size": (2, 3)}),  # another dtype
        NetworkCall({"a": tensor, "c": [0]}, {"size": (2, 3)}),  # other arguments
    )
    for other in unlike:
        assert merged_call([call, other]) is None


def _guider(case: Case, positives: int = 1, cfg: float = 4.0) -> Guider:
    model = DiffusionModel("tiny", None, case.adapter, FlowSampling(), torch.float32)  # type: ignore[arg-type]
    positive = [[case.entries[0][0], {**case.entries[0][1], "strength": 1.0}] for _ in range(positives)]
    if positives > 1:  # a second positive entry of another strength
        positive[1] = [case.entries[0][0] * 0.5, {"strength": 0.5}]
    return Guider(model, positive, [list(case.entries[1])], cfg)


def test_streams_count_the_entries_one_call_batches() -> None:
    case = _wan()
    assert _guider(case).streams == 2
    assert _guider(case, cfg=1.0).streams == 1  # no negative pass
    assert _guider(case, positives=2).streams == 3
    x = torch.zeros(1, 16, 5, 8, 8)
    assert case.adapter.work_estimate(x, 2).activation_bytes == 2 * case.adapter.work_estimate(x, 1).activation_bytes


def test_guided_prediction_equals_cfg_over_separate_calls() -> None:
    case = _wan()
    guider = _guider(case, positives=2)
    positive = guider.positive
    with torch.no_grad():
        with _calls(case.network) as batches:
            guided = guider.prediction(case.network, case.x, case.timestep)
        predictions = [
            case.adapter.predict(case.network, case.x, case.timestep, (tensor, extras), torch.float32)
            for tensor, extras in [*positive, case.entries[1]]
        ]
    assert batches == [3]
    conditional = (predictions[0] + 0.5 * predictions[1]) / 1.5
    expected = predictions[2] + 4.0 * (conditional - predictions[2])
    assert (guided - expected).abs().max() < TOLERANCE


class _NoRoomForTwo(torch.nn.Module):
    """The tiny network on a device with room for one sample at a time: a batch of two runs out of memory."""

    def __init__(self, network: torch.nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, **kwargs: Any) -> Any:
        if kwargs["hidden_states"].shape[0] > 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.network(**kwargs)


def test_a_batched_call_that_runs_out_of_memory_is_redone_one_entry_at_a_time() -> None:
    case = _wan()
    guider = _guider(case)
    with torch.no_grad():
        expected = guider.prediction(case.network, case.x, case.timestep)
        with _calls(case.network) as batches:
            recovered = guider.prediction(_NoRoomForTwo(case.network), case.x, case.timestep)
    assert batches == [1, 1]
    assert (recovered - expected).abs().max() < TOLERANCE


def test_other_errors_of_a_batched_call_propagate() -> None:
    case = _wan()
    guider = _guider(case)
    wrong = torch.zeros(1, 6, 5)  # text of another width: the network's projection refuses it
    guider = Guider(guider.model, [[wrong, {}]], [[wrong, {}]], guider.cfg)
    with torch.no_grad(), _calls(case.network) as batches, pytest.raises(RuntimeError, match="mat1 and mat2"):
        guider.prediction(case.network, case.x, case.timestep)
    assert batches == [2]  # not retried one by one
