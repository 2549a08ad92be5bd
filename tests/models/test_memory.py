"""The model memory manager: sharing, LRU eviction under device and RAM budgets, free(), and its accounting.

A fake probe can present a CUDA compute device while tensors stay on the CPU: it names ``cpu:0`` as the place to move
models to, so moves are visible (``Blob.moves``) and run anywhere. Models are a few 64 KiB units of float32.
"""

from __future__ import annotations

import gc
import logging
import random
import threading
import time
import weakref
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any

import pytest
import torch

from models.devices import Device, DeviceProbe
from models.memory import (
    MODES,
    LoadedModel,
    MemoryConfig,
    ModelHandle,
    ModelManager,
    ModelMemoryError,
    module_nbytes,
)

UNIT = 64 * 1024
FAKE_TARGET = torch.device("cpu", 0)  # where the fake probe puts "device" models: distinct from plain "cpu"
HOST = torch.device("cpu")


class Blob(torch.nn.Module):
    """A model of ``units`` x 64 KiB that records every ``.to()`` target."""

    def __init__(self, units: int, fail_on: torch.device | None = None) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(units * UNIT // 4))
        self.moves: list[torch.device] = []
        self.fail_on = fail_on

    def to(self, *args: Any, **kwargs: Any) -> Blob:
        target = torch.device(args[0] if args else kwargs["device"])
        self.moves.append(target)
        if target == self.fail_on:
            raise RuntimeError("out of memory (simulated)")
        return super().to(*args, **kwargs)


class FakeProbe(DeviceProbe):
    """A probe over a pretend machine; free memory shrinks as the attached manager places models."""

    def __init__(self, kind: str = "cuda", device_free: int = 100 * UNIT, ram_free: int = 100 * UNIT) -> None:
        super().__init__()
        self.device = Device(kind, 0, f"Fake {kind}", 100 * UNIT)
        self.device_free = device_free  # free device memory while none of the manager's models are on it
        self.ram_free = ram_free  # available RAM while none of the manager's models are in RAM
        self.manager: ModelManager | None = None
        self.released: list[Device] = []

    def compute_device(self, force_cpu: bool) -> Device:
        return Device("cpu", 0, "Fake cpu", 100 * UNIT) if force_cpu else self.device

    def free_bytes(self, device: Device) -> int:
        if device.is_cuda:
            return self.device_free - self._resident("device")
        return self.ram_available()

    def ram_available(self) -> int:
        in_ram = self._resident("cpu")
        if self.manager is not None and not self.manager.device.is_cuda:
            in_ram += self._resident("device")
        return self.ram_free - in_ram

    def torch_device(self, device: Device) -> torch.device:
        return FAKE_TARGET

    def release_cached(self, device: Device) -> None:
        self.released.append(device)

    def _resident(self, location: str) -> int:
        return 0 if self.manager is None else self.manager.resident_bytes(location)


class Loaders:
    """Makes loaders that count their calls and keep weak references to what they built."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.built: dict[str, list[weakref.ref[Blob]]] = defaultdict(list)

    def __call__(self, key: str, units: int = 1, **kwargs: Any) -> Callable[[], Blob]:
        def load() -> Blob:
            self.calls[key] += 1
            blob = Blob(units, **kwargs)
            self.built[key].append(weakref.ref(blob))
            return blob

        return load

    def alive(self, key: str) -> list[bool]:
        gc.collect()
        return [ref() is not None for ref in self.built[key]]


def make(kind: str = "cuda", probe: FakeProbe | None = None, **config: Any) -> tuple[ModelManager, FakeProbe, Loaders]:
    probe = probe or FakeProbe(kind)
    config.setdefault("device_budget_bytes", 50 * UNIT)
    config.setdefault("ram_budget_bytes", 50 * UNIT)
    manager = ModelManager(MemoryConfig(**config), probe)
    probe.manager = manager
    return manager, probe, Loaders()


def check(manager: ModelManager, ram: bool = True) -> None:
    """The accounting invariants: totals match the rows, the device never over budget, RAM within budget."""
    rows = manager.snapshot()
    for location in ("device", "cpu"):
        assert manager.resident_bytes(location) == sum(row.nbytes for row in rows if row.location == location)
    assert manager.resident_bytes("device") <= manager.device_budget_bytes()
    assert all(row.refs >= 0 for row in rows)
    assert [row.last_used for row in rows] == sorted(row.last_used for row in rows)
    if ram:
        in_ram = manager.resident_bytes("cpu")
        if not manager.device.is_cuda:
            in_ram += manager.resident_bytes("device")
        assert in_ram <= manager.ram_budget_bytes()


def where(manager: ModelManager) -> dict[str, str]:
    return {row.key: str(row.location) for row in manager.snapshot()}


def use(handle: ModelHandle) -> None:
    with handle.use():
        pass


# -- configuration -----------------------------------------------------------------------------------------------


def test_config_accepts_every_mode_and_rejects_others() -> None:
    for mode in MODES:
        assert MemoryConfig(mode=mode).mode == mode
    assert MemoryConfig(mode="cpu").force_cpu and not MemoryConfig().force_cpu
    with pytest.raises(ValueError, match=r"'turbo' is not one of auto, highvram, lowvram, novram, cpu"):
        MemoryConfig(mode="turbo")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("device_budget_bytes", -1),
        ("ram_budget_bytes", 1.5),
        ("device_reserve_bytes", None),
        ("ram_reserve_bytes", True),
    ],
)
def test_config_rejects_bad_sizes(field: str, value: Any) -> None:
    with pytest.raises(ValueError, match=rf"{field} must be a non-negative number of bytes, got {value!r}"):
        MemoryConfig(**{field: value})


def test_cpu_mode_computes_on_the_cpu_even_with_cuda() -> None:
    manager, _, _ = make(mode="cpu")
    assert manager.device.kind == "cpu"


# -- sharing and loading -------------------------------------------------------------------------------------------


def test_same_key_shares_one_handle_and_module_and_loads_once() -> None:
    manager, _, loaders = make(device_budget_bytes=10 * UNIT)
    first = manager.load("a", loaders("a"))
    check(manager)
    second = manager.load("a", loaders("a", units=5))  # the key identifies the model: loaded once
    assert first is second and loaders.calls["a"] == 1
    assert first.nbytes == UNIT == module_nbytes(Blob(1)) and first.location == "cpu"
    with first.use() as one, second.use() as two:
        assert one is two
        assert first.refs == 2 and first.location == "device"
        check(manager)
    assert first.refs == 0
    other = manager.load("b", loaders("b"))
    assert other is not first and loaders.calls == {"a": 1, "b": 1}
    check(manager)


def test_threads_asking_for_one_key_run_its_loader_once() -> None:
    manager, _, _ = make()
    started, release = threading.Event(), threading.Event()
    calls: list[int] = []

    def slow_loader() -> Blob:
        calls.append(1)
        started.set()
        release.wait(10)
        return Blob(1)

    handles: list[ModelHandle] = []
    threads = [threading.Thread(target=lambda: handles.append(manager.load("a", slow_loader))) for _ in range(8)]
    threads[0].start()
    assert started.wait(10)
    for thread in threads[1:]:
        thread.start()
    time.sleep(0.05)  # lets the others reach the load under way; the result does not depend on it
    release.set()
    for thread in threads:
        thread.join(10)
    assert len(calls) == 1 and len(handles) == 8
    assert all(handle is handles[0] for handle in handles)
    check(manager)


def test_a_failed_load_leaves_the_model_unloaded_and_the_next_load_retries() -> None:
    manager, _, _ = make()
    attempts: list[int] = []

    def flaky() -> Blob:
        attempts.append(1)
        if len(attempts) == 1:
            raise OSError("disk hiccup")
        return Blob(1)

    with pytest.raises(OSError, match="disk hiccup"):
        manager.load("a", flaky)
    assert manager.snapshot() == [LoadedModel("a", 0, "unloaded", 0, 0)]
    handle = manager.load("a", flaky)
    assert handle.location == "cpu" and handle.loads == 1 and len(attempts) == 2
    check(manager)


def test_a_loader_asking_for_its_own_key_fails_instead_of_hanging() -> None:
    manager, _, _ = make()

    def recursive() -> Blob:
        manager.load("a", recursive)
        return Blob(1)

    with pytest.raises(RuntimeError, match=r"loader for 'a' asked for 'a' again"):
        manager.load("a", recursive)
    handle = manager.load("a", lambda: Blob(1))  # an unloaded handle takes the newest loader
    assert handle.loads == 1 and handle.location == "cpu"


def test_a_loader_must_return_a_torch_module() -> None:
    manager, _, _ = make()
    with pytest.raises(TypeError, match=r"loader for 'a' returned dict"):
        manager.load("a", dict)


# -- device budget: LRU eviction ---------------------------------------------------------------------------------


def test_idle_models_leave_the_device_in_lru_order(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="models.memory")
    manager, _, loaders = make(device_budget_bytes=2 * UNIT)
    a, b, c = (manager.load(key, loaders(key)) for key in "abc")
    for handle in (a, b, a):
        use(handle)
        check(manager)
    assert where(manager) == {"c": "cpu", "b": "device", "a": "device"}
    use(c)  # b was used before a's latest use
    check(manager)
    assert where(manager) == {"b": "cpu", "a": "device", "c": "device"}
    use(b)
    check(manager)
    assert where(manager) == {"a": "cpu", "c": "device", "b": "device"}
    assert loaders.calls == {"a": 1, "b": 1, "c": 1}  # offloaded to RAM, never reloaded
    assert "evicted 'b' to cpu, idle since use #" in caplog.text
    assert "least recently used, frees 0.1 MiB of cuda:0 (Fake cuda) for 'c'" in caplog.text
    assert "moved 'c' (0.1 MiB) to cuda:0 (Fake cuda)" in caplog.text


def test_a_cuda_device_moves_models_to_the_probe_target_and_back_to_the_host() -> None:
    manager, _, _ = make(device_budget_bytes=UNIT)
    a_blob, b_blob = Blob(1), Blob(1)
    a = manager.load("a", lambda: a_blob)
    b = manager.load("b", lambda: b_blob)
    use(a)
    use(b)
    assert a_blob.moves == [FAKE_TARGET, HOST] and b_blob.moves == [FAKE_TARGET]
    assert manager.device.kind == "cuda" and where(manager) == {"a": "cpu", "b": "device"}
    check(manager)


def test_a_failed_move_leaves_the_model_whole_in_ram() -> None:
    manager, _, loaders = make(device_budget_bytes=4 * UNIT)
    handle = manager.load("a", loaders("a", fail_on=FAKE_TARGET))
    with pytest.raises(RuntimeError, match="simulated"):
        use(handle)
    assert handle.location == "cpu" and handle.refs == 0
    assert loaders.built["a"][0]().moves == [FAKE_TARGET, HOST]
    check(manager)


def test_models_in_use_are_never_evicted() -> None:
    manager, _, loaders = make(device_budget_bytes=2 * UNIT)
    a, b, c = (manager.load(key, loaders(key)) for key in "abc")
    with a.use(), b.use():
        with pytest.raises(ModelMemoryError) as caught:
            use(c)
        error = caught.value
        message = str(error)
        assert f"for 'c': needs {UNIT} bytes (0.1 MiB), budget {2 * UNIT} bytes" in message
        assert "on cuda:0 (Fake cuda)" in message and "in use: 'a', 'b'" in message
        assert "'a' 0.1 MiB (device, in use x1)" in message
        assert (error.key, error.needed_bytes, error.budget_bytes) == ("c", UNIT, 2 * UNIT)
        assert {row.key for row in error.resident} == {"a", "b", "c"}
        assert c.refs == 0 and where(manager) == {"c": "cpu", "a": "device", "b": "device"}
        check(manager)
    use(c)  # leaving the blocks released b, then a: b is the least recently used
    assert where(manager) == {"b": "cpu", "a": "device", "c": "device"}
    check(manager)


def test_a_model_larger_than_the_budget_evicts_nothing() -> None:
    manager, _, loaders = make(device_budget_bytes=2 * UNIT)
    small = manager.load("small", loaders("small"))
    use(small)
    big = manager.load("big", loaders("big", units=3))
    with pytest.raises(ModelMemoryError, match=r"'big': needs"):
        use(big)
    assert small.location == "device"
    check(manager)


def test_make_device_room_evicts_only_what_is_needed() -> None:
    manager, _, loaders = make(device_budget_bytes=3 * UNIT)
    a, b = (manager.load(key, loaders(key)) for key in "ab")
    use(a)
    use(b)
    assert manager.make_device_room(2 * UNIT) == UNIT
    assert where(manager) == {"a": "cpu", "b": "device"}
    with pytest.raises(ModelMemoryError, match=r"'vae decode': needs"):
        manager.make_device_room(4 * UNIT, "vae decode")
    check(manager)


def test_a_cpu_compute_device_follows_the_same_budget(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="models.memory")
    manager, _, loaders = make("cpu", device_budget_bytes=UNIT, ram_budget_bytes=2 * UNIT)
    a, b = (manager.load(key, loaders(key)) for key in "ab")
    use(a)
    check(manager)
    use(b)  # a goes to "cpu": no extra RAM on a CPU device, so nothing is unloaded
    check(manager)
    assert where(manager) == {"a": "cpu", "b": "device"} and loaders.calls == {"a": 1, "b": 1}
    assert "moved 'a' (0.1 MiB) to cpu (Fake cpu)" in caplog.text


# -- RAM budget ------------------------------------------------------------------------------------------------------


def test_offloading_unloads_when_ram_is_full_and_reloads_on_next_use() -> None:
    manager, _, loaders = make(device_budget_bytes=UNIT, ram_budget_bytes=UNIT)
    a = manager.load("a", loaders("a"))
    use(a)
    b = manager.load("b", loaders("b"))
    check(manager)
    use(b)  # a cannot go to RAM (b fills it, and b is newer): a is unloaded
    check(manager)
    assert where(manager) == {"a": "unloaded", "b": "device"}
    assert loaders.alive("a") == [False]
    use(a)
    check(manager)
    assert where(manager) == {"b": "unloaded", "a": "device"}
    assert loaders.calls == {"a": 2, "b": 1} and a.loads == 2
    assert loaders.alive("a") == [False, True] and loaders.alive("b") == [False]


def test_offloading_makes_ram_room_by_unloading_older_idle_models() -> None:
    manager, _, loaders = make(device_budget_bytes=UNIT, ram_budget_bytes=2 * UNIT)
    old = manager.load("old", loaders("old"))
    a = manager.load("a", loaders("a"))
    use(a)
    b = manager.load("b", loaders("b"))
    use(b)  # a needs RAM; "old" was used before a, so it goes
    check(manager)
    assert where(manager) == {"old": "unloaded", "a": "cpu", "b": "device"}
    assert old.loads == 1 and loaders.alive("old") == [False]


def test_loading_past_the_ram_budget_unloads_idle_models_first() -> None:
    manager, _, loaders = make(ram_budget_bytes=2 * UNIT)
    a = manager.load("a", loaders("a"))
    manager.load("b", loaders("b"))
    seen_during_load: dict[str, str] = {}

    def load_c() -> Blob:
        seen_during_load.update(where(manager))
        return Blob(1)

    manager.load("c", load_c, size_hint=UNIT)
    assert seen_during_load == {"a": "unloaded", "b": "cpu", "c": "unloaded"}  # room made before the loader ran
    check(manager)
    assert loaders.alive("a") == [False]
    use(a)  # reloads a; its size is known now, so b (LRU) is unloaded first; a then moves to the device
    check(manager)
    assert where(manager) == {"b": "unloaded", "c": "cpu", "a": "device"}
    assert loaders.calls == {"a": 2, "b": 1}


def test_a_low_size_hint_is_corrected_after_the_load() -> None:
    manager, _, loaders = make(ram_budget_bytes=3 * UNIT)
    for key in "ab":
        manager.load(key, loaders(key))
    big = manager.load("big", loaders("big", units=3), size_hint=UNIT)
    assert big.nbytes == 3 * UNIT
    assert where(manager) == {"a": "unloaded", "b": "unloaded", "big": "cpu"}
    check(manager)


def test_a_model_found_too_large_only_after_loading_stays_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    manager, _, loaders = make(ram_budget_bytes=2 * UNIT)
    big = manager.load("big", loaders("big", units=3))  # no size hint: nothing to check before the load
    assert big.location == "cpu" and loaders.alive("big") == [True]
    assert "RAM budget exceeded after loading 'big': 0.2 MiB of models in RAM, budget 0.1 MiB" in caplog.text
    check(manager, ram=False)


def test_a_model_larger_than_the_ram_budget_is_refused_before_loading() -> None:
    manager, _, loaders = make(ram_budget_bytes=2 * UNIT)
    manager.load("a", loaders("a"))
    with pytest.raises(ModelMemoryError, match=r"not enough memory on RAM for 'huge'"):
        manager.load("huge", loaders("huge"), size_hint=3 * UNIT)
    assert loaders.calls["huge"] == 0 and where(manager)["a"] == "cpu"
    check(manager)


# -- measured budgets ------------------------------------------------------------------------------------------------


def test_unset_budgets_are_measured_free_memory_minus_the_reserve() -> None:
    probe = FakeProbe("cuda", device_free=10 * UNIT, ram_free=20 * UNIT)
    manager, _, loaders = make(
        probe=probe,
        device_budget_bytes=None,
        ram_budget_bytes=None,
        device_reserve_bytes=2 * UNIT,
        ram_reserve_bytes=4 * UNIT,
    )
    assert manager.device_budget_bytes() == 8 * UNIT and manager.ram_budget_bytes() == 16 * UNIT
    a = manager.load("a", loaders("a", units=5))
    use(a)
    check(manager)
    assert manager.device_budget_bytes() == 8 * UNIT  # our own resident models count as room
    b = manager.load("b", loaders("b", units=5))
    use(b)
    check(manager)
    assert where(manager) == {"a": "cpu", "b": "device"}
    assert manager.ram_budget_bytes() == 16 * UNIT
    c = manager.load("c", loaders("c", units=9))
    with pytest.raises(ModelMemoryError, match=rf"budget {8 * UNIT} bytes"):
        use(c)
    probe.device_free = 4 * UNIT  # another process took memory: the budget follows
    assert manager.device_budget_bytes() == 2 * UNIT
    assert manager.make_device_room(2 * UNIT) == 5 * UNIT and where(manager)["b"] == "cpu"


def test_a_measured_cpu_device_budget_keeps_the_ram_reserve() -> None:
    probe = FakeProbe("cpu", ram_free=20 * UNIT)
    manager, _, _ = make(probe=probe, device_budget_bytes=None, ram_reserve_bytes=4 * UNIT, device_reserve_bytes=0)
    assert manager.device_budget_bytes() == 16 * UNIT


# -- free --------------------------------------------------------------------------------------------------------------


def test_free_unloads_idle_models_and_keeps_those_in_use(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="models.memory")
    manager, probe, loaders = make(device_budget_bytes=4 * UNIT)
    a, b, busy = (manager.load(key, loaders(key)) for key in ("a", "b", "busy"))
    use(a)
    with busy.use():
        assert manager.free() == 2 * UNIT
        check(manager)
        assert where(manager) == {"a": "unloaded", "b": "unloaded", "busy": "device"}
    assert "free: left 'busy' (0.1 MiB) in use" in caplog.text
    assert "unloaded 'a' from device, idle since use #" in caplog.text
    assert loaders.alive("a") == [False] and loaders.alive("b") == [False] and loaders.alive("busy") == [True]
    assert probe.released == [manager.device]
    use(a)
    assert a.loads == 2 and b.loads == 1
    check(manager)


def test_free_without_unload_only_moves_models_off_the_device() -> None:
    manager, _, loaders = make(device_budget_bytes=4 * UNIT)
    a = manager.load("a", loaders("a"))
    manager.load("b", loaders("b"))
    use(a)
    assert manager.free(unload_all=False) == UNIT
    check(manager)
    assert where(manager) == {"a": "cpu", "b": "cpu"}
    assert loaders.built["a"][0]().moves[-1] == HOST
    use(a)
    assert loaders.calls == {"a": 1, "b": 1}


def test_free_keeps_the_models_it_is_asked_to_keep() -> None:
    manager, _, loaders = make(device_budget_bytes=4 * UNIT)
    a, b = (manager.load(key, loaders(key)) for key in "ab")
    use(a)
    use(b)
    assert manager.free(unload_all=False, keep=("a",)) == UNIT
    assert where(manager) == {"a": "device", "b": "cpu"}
    assert manager.free(keep=["a"]) == UNIT
    assert where(manager) == {"a": "device", "b": "unloaded"}
    check(manager)


def test_free_with_nothing_loaded_frees_nothing() -> None:
    manager, probe, _ = make()
    assert manager.free() == 0 and probe.released == []


# -- threads -----------------------------------------------------------------------------------------------------------


def test_concurrent_use_keeps_the_accounting_within_budget() -> None:
    manager, _, loaders = make(device_budget_bytes=2 * UNIT, ram_budget_bytes=3 * UNIT)
    keys = ["a", "b", "c", "d"]
    failures: list[BaseException] = []
    refused: list[str] = []

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        try:
            for _ in range(40):
                key = rng.choice(keys)
                try:
                    with manager.load(key, loaders(key)).use():
                        assert manager.resident_bytes("device") <= 2 * UNIT
                except ModelMemoryError:
                    refused.append(key)  # every other resident model was in use: allowed, and reported
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
    assert sum(loaders.calls.values()) >= len(keys)
