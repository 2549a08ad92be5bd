"""What every benchmark report shares: the plain-text table it prints and the machine facts its figures depend on."""

from __future__ import annotations

import os
import platform
from collections.abc import Iterable, Sequence
from typing import Any

import psutil


def format_table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A plain-text table, columns right-aligned except the first."""
    table = [list(headers), *(list(row) for row in rows)]
    widths = [max(len(row[i]) for row in table) for i in range(len(headers))]
    lines = []
    for index, row in enumerate(table):
        cells = [row[0].ljust(widths[0]), *(cell.rjust(w) for cell, w in zip(row[1:], widths[1:], strict=True))]
        lines.append("  ".join(cells))
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def load_average() -> list[float] | None:
    """The system's 1, 5 and 15 minute load averages (None where the platform has none)."""
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None


def torch_machine_info(device: Any) -> dict[str, Any]:
    """The platform, library versions, CPU, RAM and (on CUDA) GPU that torch figures on ``device`` depend on."""
    import torch

    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "ram_bytes": psutil.virtual_memory().total,
        "device": str(device),
    }
    try:
        import diffusers
        import transformers

        info |= {"diffusers": diffusers.__version__, "transformers": transformers.__version__}
    except ImportError:  # pragma: no cover - both are requirements
        pass
    if device.type == "cuda":
        properties = torch.cuda.get_device_properties(device)
        info |= {
            "cuda": torch.version.cuda,
            "cuda_device_name": properties.name,
            "cuda_memory_bytes": properties.total_memory,
            "cuda_capability": f"{properties.major}.{properties.minor}",
        }
    return info
