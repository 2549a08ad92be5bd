"""OOM recovery: an allocation failure frees idle models and retries one policy stronger; a second failure is a
``ModelOutOfMemoryError`` naming what was tried; other errors pass through; the accounting and the module stay clean."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from models.devices import DeviceProbe
from models.memory import ModelManager, ModelMemoryError, WorkEstimate
from models.offload import applied_offload
from models.oom import ModelOutOfMemoryError, is_out_of_memory, run_with_oom_recovery
from tests.models.test_memory import Blob
from tests.models.test_placement import check, forward, manager_for, no_hooks, wan

MiB = 1 << 20


class Flaky:
    """A ``run`` that raises ``error`` while the module is placed under one of ``failing`` policies, else runs the
    forward; records each call's policy and where the idle model was."""

    def __init__(self, manager: ModelManager, error: BaseException, failing: tuple[str, ...] = ("resident", "model")):
        self.manager = manager
        self.error = error
        self.failing = failing
        self.policies: list[str | None] = []
        self.idle_locations: list[str] = []

    def __call__(self, module: torch.nn.Module) -> torch.Tensor:
        applied = applied_offload(module)
        self.policies.append(None if applied is None else applied.policy)
        self.idle_locations += [str(row.location) for row in self.manager.snapshot() if row.key == "idle"]
        if applied is None or applied.policy in self.failing:
            raise self.error
        return forward(module)


def loaded(manager: ModelManager, idle_units: int = 1) -> tuple[torch.nn.Module, torch.Tensor]:
    """Load the tiny Wan as "wan" and an idle model left on the device; returns the model and its plain output."""
    model = wan(2)
    expected = forward(model)
    with manager.load("idle", lambda: Blob(idle_units)).use():
        pass
    manager.load("wan", lambda: model)
    return model, expected


def test_an_oom_frees_idle_models_and_retries_one_policy_stronger(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    manager = manager_for(device_budget_bytes=10 * MiB)
    model, expected = loaded(manager)
    handle = manager.load("wan", lambda: model)
    run = Flaky(manager, torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB\nmore detail"))

    output = run_with_oom_recovery(manager, handle, run, WorkEstimate(1000))

    assert (output - expected).abs().max().item() < 1e-5
    assert run.policies == ["resident", "block"] and handle.plan.policy == "block"  # type: ignore[union-attr]
    assert handle.plan.reason.startswith("block: forced")  # type: ignore[union-attr]
    assert run.idle_locations == ["device", "cpu"]  # moved off the device before the retry
    assert applied_offload(model) is handle.offload  # the plan that worked stays for the next run
    check(manager)
    assert "out of memory running 'wan' under resident: OutOfMemoryError: CUDA out of memory." in caplog.text
    assert "retrying 'wan' with the block policy (freed 0.1 MiB)" in caplog.text


def test_running_out_every_time_raises_a_clear_error() -> None:
    manager = manager_for(device_budget_bytes=10 * MiB)
    model, _ = loaded(manager)
    handle = manager.load("wan", lambda: model)
    oom = RuntimeError("CUDA out of memory (simulated)")
    run = Flaky(manager, oom, failing=("resident", "block"))

    with pytest.raises(ModelOutOfMemoryError) as raised:
        run_with_oom_recovery(manager, handle, run, WorkEstimate(1000))

    error = raised.value
    assert run.policies == ["resident", "block"] and error.__cause__ is oom
    assert [(attempt.policy, attempt.error) for attempt in error.attempts] == [
        ("resident", "RuntimeError: CUDA out of memory (simulated)"),
        ("block", "RuntimeError: CUDA out of memory (simulated)"),
    ]
    message = str(error)
    assert message.startswith("out of memory running 'wan' after 2 attempts: 1) resident (resident: weights")
    assert "2) block (block: forced, needs" in message and "failed: RuntimeError: CUDA out of memory" in message
    assert "device budget 10.0 MiB with 0.0 MiB of models on it" in message
    assert "0.1 MiB freed from idle models before retrying" in message
    assert error.numbers["weights"] == handle.nbytes and error.numbers["freed"] == 65536
    assert no_hooks(model) and handle.offload is None and handle.refs == 0
    check(manager)


def test_other_errors_pass_through_at_once() -> None:
    manager = manager_for(device_budget_bytes=10 * MiB)
    model, _ = loaded(manager)
    handle = manager.load("wan", lambda: model)
    bad = ValueError("wrong latent shape")
    run = Flaky(manager, bad, failing=("resident", "block", "leaf", "disk"))

    with pytest.raises(ValueError) as raised:
        run_with_oom_recovery(manager, handle, run, policy="block")

    assert raised.value is bad and run.policies == ["block"]
    assert no_hooks(model) and handle.offload is None
    assert manager.snapshot()[0].location == "device"  # nothing freed for an error that is not about memory
    check(manager)


def test_a_policy_that_cannot_be_placed_steps_down_too() -> None:
    manager = manager_for(device_budget_bytes=100_000)  # less than the weights: forcing resident cannot place it
    model, expected = loaded(manager)
    handle = manager.load("wan", lambda: model)
    run = Flaky(manager, AssertionError("not reached"), failing=())
    output = run_with_oom_recovery(manager, handle, run, policy="resident")
    assert run.policies == ["block"] and (output - expected).abs().max().item() < 1e-5
    check(manager)

    manager.free()
    with pytest.raises(ModelOutOfMemoryError, match=r"after 1 attempt: 1\) resident .* ModelMemoryError: not enough"):
        run_with_oom_recovery(manager, handle, run, policy="resident", max_retries=0)
    assert run.policies == ["block"] and no_hooks(model) and handle.offload is None  # the block plan went first
    check(manager)


def test_on_a_cpu_running_out_of_ram_unloads_idle_models_and_streams_from_disk(tmp_path: Path) -> None:
    manager = manager_for(
        probe=DeviceProbe(), mode="cpu", device_budget_bytes=10 * MiB, ram_budget_bytes=10 * MiB, offload_dir=tmp_path
    )
    model, expected = loaded(manager)
    handle = manager.load("wan", lambda: model)
    run = Flaky(manager, MemoryError())
    output = run_with_oom_recovery(manager, handle, run)
    assert run.policies == ["resident", "disk"] and run.idle_locations == ["device", "unloaded"]
    assert (output - expected).abs().max().item() < 1e-5 and handle.location == "disk"
    assert handle.loads == 1  # the model retried is kept, not unloaded with the idle ones
    check(manager)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB"), True),
        (RuntimeError("CUDA out of memory. Tried to allocate 20.00 MiB"), True),
        (RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: not enough memory: you tried"), True),
        (RuntimeError("MPS backend out of memory"), True),
        (MemoryError(), True),
        (ModelMemoryError("x", 2, 1, "RAM", ()), True),
        (RuntimeError("mat1 and mat2 shapes cannot be multiplied"), False),
        (ValueError("out of memory"), False),
        (OSError(28, "No space left on device"), False),
    ],
)
def test_is_out_of_memory(error: BaseException, expected: bool) -> None:
    assert is_out_of_memory(error) is expected


def test_max_retries_is_checked() -> None:
    manager = manager_for()
    handle = manager.load("idle", lambda: Blob(1))
    with pytest.raises(ValueError, match="max_retries must be a non-negative integer, got -1"):
        run_with_oom_recovery(manager, handle, lambda module: module, max_retries=-1)
