"""Whether a node that makes a VIDEO keeps its frames in memory or streams them (``VideoFromBatches``): the
``output`` input such nodes share and the rule behind its ``auto`` choice.

Frames are float32 in memory: a 1000-frame 4K clip takes 99 GB, a 2000-frame 1080p one 50 GB. Streamed frames are
made a batch at a time as the next node (Save Video) reads them, so a clip of any length passes through in constant
memory, at the price of making them again for every node that reads them.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["IN_MEMORY_SHARE", "OUTPUT_MODES", "frame_bytes", "keeps_in_memory", "output_mode_input", "streams"]

OUTPUT_MODES = ("auto", "in memory", "streamed")
IN_MEMORY_SHARE = 0.25
"""``auto`` keeps frames in memory up to this share of the RAM available."""


def output_mode_input() -> tuple[list[str], dict[str, Any]]:
    """The ``output`` input's type and options."""
    return (
        list(OUTPUT_MODES),
        {
            "default": "auto",
            "tooltip": "in memory: make the frames now and keep them; streamed: make them batch by batch as the next "
            "node reads them (again for every reader), for clips too long for RAM; auto: in memory when they take "
            f"at most {IN_MEMORY_SHARE:.0%} of the RAM available.",
        },
    )


def frame_bytes(frames: int, width: int, height: int) -> int:
    """Bytes of ``frames`` float32 RGB frames of this size."""
    return frames * width * height * 3 * torch.finfo(torch.float32).bits // 8


def keeps_in_memory(output_bytes: int, ram_available: int) -> bool:
    """``auto``'s rule: keep frames taking at most ``IN_MEMORY_SHARE`` of the RAM available."""
    return output_bytes <= ram_available * IN_MEMORY_SHARE


def streams(node: str, output: str, output_bytes: int, ram_available: int) -> bool:
    """Whether ``node`` streams its frames for the ``output`` choice; ``ValueError`` naming ``node`` for a bad one."""
    if output not in OUTPUT_MODES:
        raise ValueError(f"{node}: output must be one of {', '.join(OUTPUT_MODES)}, got {output!r}")
    return output == "streamed" or (output == "auto" and not keeps_in_memory(output_bytes, ram_available))
