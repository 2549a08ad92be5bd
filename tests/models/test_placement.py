"""Planned placement through the manager: ``handle.use(work, policy)`` chooses, applies and keeps an offload plan, and
the device accounting counts only what the plan keeps on the device while the model runs.

The fake probe of ``test_memory`` presents a CUDA device whose "device" is ``cpu:0``, so the CUDA choices (``model``,
``block``, ``leaf``) run anywhere; a real CPU probe shows the CPU choices (``disk``). Forwards use a 16-layer tiny Wan
transformer (float32, ~0.5 MiB).
"""

from __future__ import annotations

import gc
import tempfile
from pathlib import Path
from typing import Any

import pytest
import torch

from models.devices import DeviceProbe
from models.memory import LoadedModel, MemoryConfig, ModelHandle, ModelManager, ModelMemoryError, WorkEstimate
from models.offload import applied_offload
from models.offload_policy import offload_sizes
from models.placement import Room, forced_policy, plan_placement, step_down, weights_on_device
from tests.models.test_memory import UNIT, Blob, FakeProbe
from tests.models.tiny_models import WAN_TRANSFORMER_CONFIG

LAYERS = 16


def wan(num_layers: int = LAYERS, seed: int = 1) -> torch.nn.Module:
    from diffusers import WanTransformer3DModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return WanTransformer3DModel(**{**WAN_TRANSFORMER_CONFIG, "num_layers": num_layers}).eval()


def forward(model: torch.nn.Module, device: torch.device | None = None) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    inputs = [torch.randn(1, 16, 5, 8, 8, generator=generator), torch.tensor([500])]
    inputs.append(torch.randn(1, 7, 32, generator=generator))
    with torch.no_grad():
        return model(*[tensor.to(device or "cpu") for tensor in inputs], return_dict=False)[0]


def manager_for(kind: str = "cuda", probe: DeviceProbe | None = None, **config: Any) -> ModelManager:
    probe = probe or FakeProbe(kind)
    config.setdefault("device_budget_bytes", 50 * UNIT)
    config.setdefault("ram_budget_bytes", 50 * UNIT)
    manager = ModelManager(MemoryConfig(**config), probe)
    if isinstance(probe, FakeProbe):
        probe.manager = manager
    return manager


def check(manager: ModelManager) -> None:
    """The accounting invariants with plans: each location's total matches the rows (the device counts each row's
    ``device_bytes``), the device and RAM within budget, nothing in use left counted as in use."""
    rows = manager.snapshot()
    assert manager.resident_bytes("device") == sum(row.device_bytes for row in rows)
    for location in ("cpu", "disk"):
        assert manager.resident_bytes(location) == sum(row.nbytes for row in rows if row.location == location)
    assert all(row.device_bytes == row.nbytes for row in rows if row.location == "device")
    assert manager.resident_bytes("device") <= manager.device_budget_bytes()
    in_ram = manager.resident_bytes("cpu") + (0 if manager.device.is_cuda else manager.resident_bytes("device"))
    assert in_ram <= manager.ram_budget_bytes()
    assert all(row.refs >= 0 for row in rows)


def no_hooks(module: torch.nn.Module) -> bool:
    return applied_offload(module) is None and not any(hasattr(m, "_diffusers_hook") for m in module.modules())


def record_during_forward(module: torch.nn.Module, sample: Any) -> tuple[list[Any], list[Any]]:
    """Call ``sample()`` at every module's forward pre-hook and hook; returns the samples and the hook handles."""
    seen: list[Any] = []
    hooks = []
    for submodule in module.modules():
        hooks.append(submodule.register_forward_pre_hook(lambda *_: seen.append(sample())))
        hooks.append(submodule.register_forward_hook(lambda *_: seen.append(sample())))
    return seen, hooks


# -- the acceptance test: a third of the weights on the device ------------------------------------------------------


def test_block_plan_runs_a_model_three_times_the_device_budget() -> None:
    model = wan()
    expected = forward(model)
    sizes = offload_sizes(model)
    budget = sizes.weights_bytes // 3
    manager = manager_for(device_budget_bytes=budget, ram_budget_bytes=8 * sizes.weights_bytes)
    handle = manager.load("wan", lambda: model)
    work = WorkEstimate(10_000)
    with pytest.raises(ModelMemoryError):  # whole, it cannot run here
        with handle.use():
            pass

    with handle.use(work) as module:
        applied = applied_offload(module)
        assert applied is not None and handle.offload is applied and handle.plan is not None
        assert handle.plan.policy == applied.policy == "block" and not applied.use_stream
        blocks = applied.config.num_blocks_per_group  # as many blocks as fit beside the rest and the activations
        assert blocks == (budget - sizes.non_block_bytes - work.activation_bytes) // sizes.largest_block_bytes == 3
        assert "3 blocks per group fit the free device memory" in handle.plan.reason
        reserve = sizes.non_block_bytes + blocks * sizes.largest_block_bytes
        assert manager.snapshot()[0].device_bytes == reserve <= budget
        check(manager)
        seen, hooks = record_during_forward(
            module, lambda: (manager.resident_bytes("device"), applied.resident_bytes())
        )
        output = forward(module)
        for hook in hooks:
            hook.remove()

    accounted, live = zip(*seen, strict=True)
    assert len(seen) > 4 * LAYERS
    assert max(accounted) <= budget and max(live) <= budget  # the invariant, at every forward event
    assert max(live) == applied.peak_resident_bytes == reserve  # a full group and the rest were on the device
    assert min(live) == 0  # and nothing between forwards
    assert (output - expected).abs().max().item() < 1e-5
    assert manager.resident_bytes("device") == 0 and handle.location == "cpu"
    assert manager.snapshot() == [LoadedModel("wan", sizes.weights_bytes, "cpu", 0, handle.last_used, 0, "block")]
    check(manager)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_block_plan_on_cuda_prefetches_within_the_budget() -> None:
    cuda = torch.device("cuda")
    model = wan()
    expected = forward(model.to(cuda), cuda).cpu()  # the same kernels as the offloaded run
    model.to("cpu")
    sizes = offload_sizes(model)
    budget = sizes.weights_bytes // 3
    manager = ModelManager(MemoryConfig(device_budget_bytes=budget), DeviceProbe())
    handle = manager.load("wan", lambda: model)
    with handle.use(WorkEstimate()) as module:
        applied = handle.offload
        assert applied is not None and applied.policy == "block" and applied.use_stream
        assert applied.config.num_blocks_per_group == 1  # prefetching moves one block at a time
        seen, hooks = record_during_forward(module, lambda: manager.resident_bytes("device"))
        outputs = [forward(module, cuda).cpu() for _ in range(2)]  # the second forward prefetches
        for hook in hooks:
            hook.remove()
    assert max(seen) <= budget
    assert applied.peak_resident_bytes == sizes.non_block_bytes + 2 * sizes.largest_block_bytes
    assert all((output - expected).abs().max().item() < 1e-5 for output in outputs)
    assert all(tensor.device.type == "cpu" for tensor in module.parameters())
    check(manager)


def test_disk_plan_on_a_cpu_device_streams_within_the_budget(tmp_path: Path) -> None:
    expected = forward(wan())
    weights = offload_sizes(wan()).weights_bytes
    budget = weights // 3
    manager = manager_for(
        probe=DeviceProbe(), mode="cpu", device_budget_bytes=budget, ram_budget_bytes=4 * weights, offload_dir=tmp_path
    )
    handle = manager.load("wan", wan)  # seeded: the same weights
    with handle.use(WorkEstimate()) as module:  # on a CPU, offloading to RAM saves nothing: from disk
        applied = handle.offload
        assert applied is not None and applied.policy == handle.plan.policy == "disk"  # type: ignore[union-attr]
        assert applied.disk_path is not None and applied.disk_path.parent == tmp_path
        assert handle.location == "disk" and manager.resident_bytes("disk") == weights
        assert manager.resident_bytes("cpu") == 0  # the weights left RAM for the files
        check(manager)
        seen, hooks = record_during_forward(module, lambda: manager.resident_bytes("device"))
        output = forward(module)
        for hook in hooks:
            hook.remove()
    assert 0 < max(seen) <= budget
    assert (output - expected).abs().max().item() < 1e-5
    files = sorted(applied.disk_path.iterdir())

    with handle.use(WorkEstimate()) as module:  # the same numbers: the same plan, files not written again
        assert handle.offload is applied and sorted(applied.disk_path.iterdir()) == files
        assert (forward(module) - expected).abs().max().item() < 1e-5
    check(manager)
    manager.free()
    assert handle.location == "unloaded" and manager.resident_bytes("disk") == 0
    del module, applied
    gc.collect()
    assert list(tmp_path.iterdir()) == []  # the dropped module's files went with it


def test_the_default_offload_folder_is_temporary_and_goes_with_the_manager() -> None:
    manager = manager_for(probe=DeviceProbe(), mode="cpu", device_budget_bytes=10 * (1 << 20))
    handle = manager.load("wan", lambda: wan(2))
    with handle.use(policy="disk"):
        folder = handle.offload.disk_path.parent  # type: ignore[union-attr]
        assert folder.parent == Path(tempfile.gettempdir()) and folder.name.startswith("reelgraph-offload-")
    del manager, handle
    gc.collect()
    assert not folder.exists()


# -- choosing, keeping and replacing plans -----------------------------------------------------------------------------


def test_the_plan_is_kept_until_the_numbers_change_the_decision() -> None:
    model = wan(2)
    weights = offload_sizes(model).weights_bytes
    manager = manager_for(device_budget_bytes=2 * weights, ram_budget_bytes=4 * weights)
    handle = manager.load("wan", lambda: model)
    with handle.use(WorkEstimate(1000)) as module:
        first = handle.offload
        assert handle.plan.policy == "resident" and handle.location == "device"  # type: ignore[union-attr]
        assert applied_offload(module) is first and first is not None and first.moves_whole_module
    with handle.use(WorkEstimate(2000)):  # other numbers, same decision: nothing re-applied
        assert handle.offload is first and handle.location == "device"
    check(manager)
    with handle.use(WorkEstimate(weights + 10_000)) as module:  # activations crowd the weights out
        assert handle.plan.policy == "block" and handle.offload is not first  # type: ignore[union-attr]
        assert handle.location == "cpu" and applied_offload(module) is handle.offload
        check(manager)
    with handle.use(WorkEstimate(1000)) as module:
        assert handle.plan.policy == "resident" and not any(hasattr(m, "_diffusers_hook") for m in module.modules())
    check(manager)


def test_the_memory_mode_forces_a_policy_unless_the_use_does() -> None:
    manager = manager_for(mode="lowvram", device_budget_bytes=10 * (1 << 20))
    handle = manager.load("wan", lambda: wan(2))
    for policy in (None, "auto"):
        with handle.use(WorkEstimate(), policy=policy):
            assert handle.plan.policy == "block"  # type: ignore[union-attr]
            assert handle.plan.reason.startswith("block: forced")  # type: ignore[union-attr]
            assert handle.offload.config.num_blocks_per_group == 1  # type: ignore[union-attr]
    with handle.use(policy="leaf"):  # a policy alone plans with no activation estimate
        assert handle.plan.policy == handle.offload.policy == "leaf"  # type: ignore[union-attr]
        check(manager)
    assert manager.snapshot()[0].policy == "leaf"
    with pytest.raises(ValueError, match="offload policy 'gpu' is not one of auto, resident, model"):
        with handle.use(policy="gpu"):
            pass


def test_the_model_policy_evicts_idle_models_and_goes_back_to_ram_after_use() -> None:
    manager = manager_for(device_budget_bytes=3 * UNIT)
    idle = manager.load("idle", lambda: Blob(2))
    with idle.use():
        pass
    handle = manager.load("blob", lambda: Blob(2))
    with handle.use(WorkEstimate()):
        assert handle.plan.policy == "model" and "once idle models are evicted" in handle.plan.reason  # type: ignore[union-attr]
        assert {row.key: row.location for row in manager.snapshot()} == {"idle": "cpu", "blob": "device"}
        check(manager)
    assert handle.location == "cpu" and handle.offload is not None  # kept for the next use
    check(manager)
    with handle.use(policy="resident"):
        pass
    assert handle.location == "device"  # resident: stays until evicted
    assert manager.snapshot()[-1].describe().startswith("'blob' 0.1 MiB (device, resident, 0.1 MiB on device, idle")


def test_a_second_use_while_running_shares_the_placement() -> None:
    manager = manager_for(device_budget_bytes=10 * (1 << 20))
    handle = manager.load("wan", lambda: wan(2))
    with handle.use(policy="block") as outer:
        applied = handle.offload
        with handle.use(policy="resident") as inner:  # a model in use is never moved
            assert inner is outer and handle.offload is applied and handle.plan.policy == "block"  # type: ignore[union-attr]
            assert handle.refs == 2
        assert applied_offload(outer) is applied
    check(manager)


def test_a_plain_use_removes_the_plan_and_places_the_model_whole() -> None:
    manager = manager_for(device_budget_bytes=10 * (1 << 20))
    handle = manager.load("wan", lambda: wan(2))
    with handle.use(policy="leaf"):
        pass
    with handle.use() as module:
        assert no_hooks(module) and handle.plan is None and handle.offload is None
        assert handle.location == "device"
    assert manager.snapshot()[0].policy is None
    check(manager)


@pytest.mark.parametrize("policy", ["block", "disk"])
def test_a_failed_run_removes_the_policy(policy: str, tmp_path: Path) -> None:
    model = wan(2)
    expected = forward(model)
    manager = manager_for(device_budget_bytes=10 * (1 << 20), offload_dir=tmp_path)
    handle = manager.load("wan", lambda: model)

    def fail(*_args: object) -> None:
        raise ValueError("bad input (simulated)")

    with pytest.raises(ValueError, match="simulated"):
        with handle.use(policy=policy) as module:
            failing = module.blocks[1].register_forward_pre_hook(fail)
            forward(module)  # stops half-way: groups left on the device
    failing.remove()
    assert no_hooks(model) and handle.offload is None and handle.plan.policy == policy  # type: ignore[union-attr]
    assert handle.location == "cpu" and manager.resident_bytes("device") == 0 and list(tmp_path.iterdir()) == []
    check(manager)
    with handle.use(policy=policy) as module:
        assert (forward(module) - expected).abs().max().item() < 1e-5
    check(manager)


def test_a_plan_that_cannot_be_placed_leaves_no_policy() -> None:
    model = wan(2)
    manager = manager_for(device_budget_bytes=1000)
    handle = manager.load("wan", lambda: model)
    with pytest.raises(ModelMemoryError, match="not enough memory on cuda:0"):
        with handle.use(policy="leaf"):
            pass
    assert no_hooks(model) and handle.offload is None and handle.plan.policy == "leaf"  # type: ignore[union-attr]
    assert not handle.plan.fits  # type: ignore[union-attr]
    check(manager)


def test_unloading_a_planned_model_drops_its_plan() -> None:
    manager = manager_for(device_budget_bytes=10 * (1 << 20))
    handle = manager.load("wan", lambda: wan(2))
    with handle.use(policy="block"):
        pass
    manager.free()
    assert handle.location == "unloaded" and handle.plan is None and handle.offload is None
    with handle.use(WorkEstimate()) as module:  # reloaded: planned afresh
        assert handle.loads == 2 and applied_offload(module) is handle.offload
    check(manager)


# -- the decisions, without a manager ------------------------------------------------------------------------------


def test_forced_policy_and_step_down() -> None:
    assert forced_policy(None, "auto") is None and forced_policy("auto", "cpu") is None
    assert forced_policy(None, "highvram") == "resident" and forced_policy("auto", "novram") == "leaf"
    assert forced_policy("disk", "lowvram") == "disk"
    cuda = [step_down(policy, True) for policy in ("resident", "model", "block", "leaf", "disk")]
    assert cuda == ["block", "block", "leaf", "disk", None]
    cpu = [step_down(policy, False) for policy in ("resident", "model", "block", "leaf", "disk")]
    assert cpu == ["disk", "disk", "disk", "disk", None]
    with pytest.raises(ValueError, match="'gpu' is not one of resident"):
        step_down("gpu", True)


def test_plan_placement_sizes_groups_only_for_automatic_unstreamed_plans(tmp_path: Path) -> None:
    model = wan()
    sizes = offload_sizes(model)
    room = Room(sizes.non_block_bytes + 5 * sizes.largest_block_bytes, 0, 10 * sizes.weights_bytes, True, False)
    plan, config = plan_placement(sizes, WorkEstimate(), room, None, lambda: tmp_path)
    assert (plan.policy, config.num_blocks_per_group, config.disk_dir) == ("block", 5, None)
    _, forced = plan_placement(sizes, WorkEstimate(), room, "block", lambda: tmp_path)
    assert forced.num_blocks_per_group == 1
    streaming = Room(room.device_free, 0, room.ram_free, True, True)
    assert plan_placement(sizes, WorkEstimate(), streaming, None, lambda: tmp_path)[1].num_blocks_per_group == 1
    disk = Room(room.device_free, 0, 0, True, False)  # RAM cannot hold the weights
    plan, config = plan_placement(sizes, WorkEstimate(), disk, None, lambda: tmp_path)
    assert (plan.policy, config.disk_dir, config.num_blocks_per_group) == ("disk", tmp_path, 5)


def test_weights_on_device_bounds_the_measured_peak() -> None:
    from models.offload import OffloadConfig, apply_offload, remove_offload

    cpu = torch.device("cpu")
    for config in (OffloadConfig("block", num_blocks_per_group=2), OffloadConfig("leaf")):
        model = wan(8)
        sizes = offload_sizes(model)
        applied = apply_offload(model, config, cpu, cpu)
        before = weights_on_device(applied, sizes)
        forward(model)
        assert applied.peak_resident_bytes <= before == weights_on_device(applied, sizes) < sizes.weights_bytes / 2
        remove_offload(model)


def test_work_estimate_and_offload_dir_are_checked() -> None:
    with pytest.raises(ValueError, match="activation_bytes must be a non-negative number of bytes, got -1"):
        WorkEstimate(-1)
    assert MemoryConfig(offload_dir="x").offload_dir == Path("x")  # type: ignore[arg-type]
    assert isinstance(ModelHandle, type)


def test_concurrent_planned_and_plain_uses_keep_the_accounting_within_budget() -> None:
    import random
    import threading

    manager = manager_for(device_budget_bytes=3 * UNIT, ram_budget_bytes=4 * UNIT)
    keys = ["a", "b", "c", "d"]
    uses = [lambda h: h.use(), lambda h: h.use(WorkEstimate(UNIT // 2)), lambda h: h.use(policy="model")]
    failures: list[BaseException] = []

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        try:
            for _ in range(30):
                handle = manager.load(rng.choice(keys), lambda: Blob(1))
                try:
                    with rng.choice(uses)(handle):
                        assert manager.resident_bytes("device") <= 3 * UNIT
                except ModelMemoryError:
                    pass  # every other resident model was in use: allowed, and reported
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert failures == []
    check(manager)
    assert all(row.refs == 0 for row in manager.snapshot())
