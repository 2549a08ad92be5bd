"""What ``GET /system_stats`` reports, in ComfyUI's shape: RAM, versions and devices.

torch is imported on the first request, in a thread, together with the other parts that never change (versions,
device names); each request then reads only the live memory figures.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass
from typing import Any

import psutil

COMFYUI_VERSION = "0.8.0"  # the ComfyUI release whose HTTP contract Reelgraph matches


@dataclass(frozen=True)
class StaticInfo:
    """The parts of the stats probed once: torch's version, ComfyUI-style CUDA device names by index, argv."""

    pytorch_version: str
    cuda_names: tuple[str, ...]
    argv: tuple[str, ...]


class SystemInfo:
    """Builds the ``/system_stats`` body; one per application, so the probe is cached without module state."""

    def __init__(self) -> None:
        self._static: StaticInfo | None = None
        self._lock = asyncio.Lock()

    async def static(self) -> StaticInfo:
        """The static parts, probed off the event loop on first use (importing torch takes a second or two)."""
        if self._static is None:
            async with self._lock:
                if self._static is None:
                    self._static = await asyncio.to_thread(_probe)
        return self._static

    async def stats(self) -> dict[str, Any]:
        """``{"system": {...}, "devices": [...]}``; cheap after the first call (no subprocess, no device scan)."""
        static = await self.static()
        memory = psutil.virtual_memory()
        devices = _cuda_devices(static.cuda_names) if static.cuda_names else [_cpu_device(memory)]
        system = {
            "os": sys.platform,
            "ram_total": memory.total,
            "ram_free": memory.available,
            "comfyui_version": COMFYUI_VERSION,
            "python_version": sys.version,
            "pytorch_version": static.pytorch_version,
            "embedded_python": False,
            "argv": list(static.argv),
        }
        return {"system": system, "devices": devices}


def _probe() -> StaticInfo:
    import torch

    names: tuple[str, ...] = ()
    if torch.cuda.is_available():
        backend = torch.cuda.get_allocator_backend()
        names = tuple(f"cuda:{i} {torch.cuda.get_device_name(i)} : {backend}" for i in range(torch.cuda.device_count()))
        for index in range(len(names)):
            torch.cuda.mem_get_info(index)  # creates each device's context now, not during a request
    return StaticInfo(pytorch_version=torch.__version__, cuda_names=names, argv=tuple(sys.argv))


def _cpu_device(memory: Any) -> dict[str, Any]:
    """Without CUDA, ComfyUI reports the CPU with RAM as its "VRAM" (torch's share included)."""
    return {
        "name": "cpu",
        "type": "cpu",
        "index": None,
        "vram_total": memory.total,
        "vram_free": memory.available,
        "torch_vram_total": memory.total,
        "torch_vram_free": memory.available,
    }


def _cuda_devices(names: tuple[str, ...]) -> list[dict[str, Any]]:
    """Like ComfyUI: free VRAM includes what torch reserved but does not use; torch's total is what it reserved."""
    import torch

    devices = []
    for index, name in enumerate(names):
        free, total = torch.cuda.mem_get_info(index)
        reserved = torch.cuda.memory_reserved(index)
        torch_free = reserved - torch.cuda.memory_allocated(index)
        devices.append(
            {
                "name": name,
                "type": "cuda",
                "index": index,
                "vram_total": total,
                "vram_free": free + torch_free,
                "torch_vram_total": reserved,
                "torch_vram_free": torch_free,
            }
        )
    return devices
