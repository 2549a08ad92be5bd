"""The compute device and how much memory it and the host have free, behind one injectable ``DeviceProbe``.

Nothing here touches CUDA at import time: the probe asks torch when a method is called, so a host that builds its
services at start-up decides when the GPU is first probed, and tests pass a fake probe (or a fake ``cuda`` API).
"""

from __future__ import annotations

import logging
import platform
from dataclasses import dataclass
from typing import Any

import psutil
import torch

logger = logging.getLogger(__name__)

DEVICE_KINDS = ("cuda", "cpu")


@dataclass(frozen=True)
class Device:
    """A device models can live on: ``kind`` is ``"cuda"`` or ``"cpu"``; ``total_bytes`` is its memory size."""

    kind: str
    index: int
    name: str
    total_bytes: int

    def __post_init__(self) -> None:
        if self.kind not in DEVICE_KINDS:
            raise ValueError(f"device kind {self.kind!r} is not one of {', '.join(DEVICE_KINDS)}")

    @property
    def torch_device(self) -> torch.device:
        """The ``torch.device`` naming this device (``cuda:N`` or ``cpu``)."""
        return torch.device("cuda", self.index) if self.kind == "cuda" else torch.device("cpu")

    @property
    def is_cuda(self) -> bool:
        return self.kind == "cuda"

    def __str__(self) -> str:
        return f"{self.torch_device} ({self.name})"


class DeviceProbe:
    """Finds the compute device and measures free memory; the memory manager's only view of the hardware.

    Args:
        cuda: the CUDA API to ask (``torch.cuda`` when None); tests pass a stand-in instead of patching torch.
    """

    def __init__(self, cuda: Any = None) -> None:
        self._cuda = cuda

    @property
    def cuda(self) -> Any:
        return torch.cuda if self._cuda is None else self._cuda

    def compute_device(self, force_cpu: bool) -> Device:
        """CUDA device 0 when CUDA is available and ``force_cpu`` is False, else the CPU."""
        if not force_cpu and self.cuda.is_available():
            properties = self.cuda.get_device_properties(0)
            return Device("cuda", 0, str(properties.name), int(properties.total_memory))
        return Device("cpu", 0, platform.processor() or platform.machine() or "cpu", int(psutil.virtual_memory().total))

    def free_bytes(self, device: Device) -> int:
        """Bytes a new allocation on ``device`` can use now.

        On CUDA this is the driver's free memory plus what torch's caching allocator holds but does not use (torch
        allocates from that first); on the CPU it is the RAM available.
        """
        if device.is_cuda:
            free, _total = self.cuda.mem_get_info(device.torch_device)
            cached = self.cuda.memory_reserved(device.torch_device) - self.cuda.memory_allocated(device.torch_device)
            return int(free) + max(0, int(cached))
        return self.ram_available()

    def ram_available(self) -> int:
        """Bytes of host RAM available now (psutil)."""
        return int(psutil.virtual_memory().available)

    def torch_device(self, device: Device) -> torch.device:
        """Where modules are moved to put them on ``device``; fakes return ``cpu`` so CUDA paths run anywhere."""
        return device.torch_device

    def release_cached(self, device: Device) -> None:
        """Hand memory torch caches but no tensor uses back to the driver (CUDA only; nothing to do on the CPU)."""
        if device.is_cuda:
            self.cuda.empty_cache()
