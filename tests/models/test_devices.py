"""The device probe: the CPU path on this machine, the CUDA path through a stand-in CUDA API (torch is not patched)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from models.devices import Device, DeviceProbe

GiB = 1 << 30


class FakeCuda:
    """The slice of ``torch.cuda`` the probe calls, recording each call."""

    def __init__(self, available: bool = True) -> None:
        self.available = available
        self.calls: list[str] = []

    def is_available(self) -> bool:
        self.calls.append("is_available")
        return self.available

    def get_device_properties(self, index: int) -> SimpleNamespace:
        self.calls.append(f"get_device_properties({index})")
        return SimpleNamespace(name="Fake H200", total_memory=80 * GiB)

    def mem_get_info(self, device: torch.device) -> tuple[int, int]:
        self.calls.append(f"mem_get_info({device})")
        return 10 * GiB, 80 * GiB

    def memory_reserved(self, device: torch.device) -> int:
        return 3 * GiB

    def memory_allocated(self, device: torch.device) -> int:
        return 2 * GiB

    def empty_cache(self) -> None:
        self.calls.append("empty_cache")


def test_device_names_its_torch_device() -> None:
    cuda = Device("cuda", 1, "GPU", 8 * GiB)
    cpu = Device("cpu", 0, "CPU", 16 * GiB)
    assert cuda.torch_device == torch.device("cuda", 1)
    assert cuda.is_cuda and not cpu.is_cuda
    assert cpu.torch_device == torch.device("cpu")
    assert str(cuda) == "cuda:1 (GPU)"


def test_device_rejects_unknown_kinds() -> None:
    with pytest.raises(ValueError, match=r"'mps'.*cuda, cpu"):
        Device("mps", 0, "Apple", 0)


def test_cpu_probe_measures_host_ram() -> None:
    probe = DeviceProbe()
    device = probe.compute_device(force_cpu=True)
    assert device.kind == "cpu" and device.total_bytes > 0
    assert 0 < probe.free_bytes(device) <= device.total_bytes
    assert 0 < probe.ram_available() <= device.total_bytes
    assert probe.torch_device(device) == torch.device("cpu")
    probe.release_cached(device)  # nothing to release on a CPU; must not touch CUDA


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the fallback on a machine without CUDA")
def test_probe_falls_back_to_cpu_without_cuda() -> None:
    assert DeviceProbe().compute_device(force_cpu=False).kind == "cpu"


def test_probe_does_nothing_until_asked() -> None:
    cuda = FakeCuda()
    DeviceProbe(cuda=cuda)
    assert cuda.calls == []


def test_cuda_probe_picks_device_zero_and_counts_torch_cache_as_free() -> None:
    cuda = FakeCuda()
    probe = DeviceProbe(cuda=cuda)
    device = probe.compute_device(force_cpu=False)
    assert device == Device("cuda", 0, "Fake H200", 80 * GiB)
    # Driver free memory plus what torch's allocator reserved but does not use (3 - 2 GiB).
    assert probe.free_bytes(device) == 11 * GiB
    assert "mem_get_info(cuda:0)" in cuda.calls
    probe.release_cached(device)
    assert cuda.calls[-1] == "empty_cache"


def test_cuda_probe_honours_force_cpu_and_missing_cuda() -> None:
    cuda = FakeCuda()
    assert DeviceProbe(cuda=cuda).compute_device(force_cpu=True).kind == "cpu"
    assert cuda.calls == []
    assert DeviceProbe(cuda=FakeCuda(available=False)).compute_device(force_cpu=False).kind == "cpu"
