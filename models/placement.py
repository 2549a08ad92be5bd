"""Placing a model for one run: the offload plan from the room the manager measured, its group size, and the device
bytes it reserves; and the next stronger policy after running out of memory.

The ``ModelManager`` measures (``Room``) and applies; this module only decides, so the decisions are plain functions.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from models.memory_types import WorkEstimate
from models.offload import GROUP_POLICIES, POLICIES, AppliedOffload, OffloadConfig
from models.offload_policy import MODE_POLICIES, OffloadPlan, OffloadSizes, choose_offload

__all__ = ["STEP_DOWN", "Room", "forced_policy", "plan_placement", "step_down", "weights_on_device"]

logger = logging.getLogger(__name__)

STEP_DOWN = {"resident": "block", "model": "block", "block": "leaf", "leaf": "disk"}
"""The next stronger policy on a CUDA device, one notch at a time (``disk`` is the last)."""
_OWN_TENSORS = "(own tensors)"  # how models.offload names a group of a module's own parameters


@dataclass(frozen=True)
class Room:
    """What the manager can give one model now, in bytes (``choose_offload``'s arguments).

    Args:
        device_free: the device budget minus what the other models count there.
        evictable: device bytes of idle models that eviction would free.
        ram_free: the RAM budget minus the other models in RAM.
        has_cuda: the compute device is a CUDA GPU.
        streams: the onload device can prefetch the next group on a CUDA stream.
    """

    device_free: int
    evictable: int
    ram_free: int
    has_cuda: bool
    streams: bool


def forced_policy(policy: str | None, mode: str) -> str | None:
    """The policy a use forces: ``policy`` itself, or for None/``"auto"`` the one ``mode`` maps to in
    ``MODE_POLICIES`` (None lets ``choose_offload`` choose)."""
    if policy not in (None, "auto", *POLICIES):
        raise ValueError(f"offload policy {policy!r} is not one of auto, {', '.join(POLICIES)}")
    if policy in (None, "auto"):
        return MODE_POLICIES.get(mode)
    return policy


def plan_placement(
    sizes: OffloadSizes, work: WorkEstimate, room: Room, forced: str | None, disk_dir: Callable[[], Path]
) -> tuple[OffloadPlan, OffloadConfig]:
    """The plan ``choose_offload`` makes for these numbers and the ``OffloadConfig`` that applies it.

    An automatic ``block`` or ``disk`` plan that does not prefetch puts as many blocks in a group as the free device
    memory holds (fewer transfers); a forced one keeps one block per group, the most it can save. ``disk_dir`` is
    called only for a ``disk`` plan.
    """
    plan = choose_offload(
        sizes.weights_bytes,
        sizes.largest_block_bytes,
        work.activation_bytes,
        room.device_free,
        room.ram_free,
        room.has_cuda,
        forced,
        non_block_bytes=sizes.non_block_bytes,
        largest_leaf_bytes=sizes.largest_leaf_bytes,
        evictable_bytes=room.evictable,
    )
    blocks = 1 if forced is not None else _blocks_per_group(plan, sizes, work, room)
    if blocks > 1:
        plan = replace(plan, reason=f"{plan.reason}; {blocks} blocks per group fit the free device memory")
    config = OffloadConfig(
        plan.policy,
        num_blocks_per_group=blocks,
        use_stream=plan.use_stream,
        disk_dir=disk_dir() if plan.policy == "disk" else None,
    )
    return plan, config


def weights_on_device(applied: AppliedOffload, sizes: OffloadSizes) -> int:
    """Device bytes of weights ``applied`` keeps while the model runs: the whole model for ``resident``/``model``;
    for group policies an upper bound from the sizes (or the peak measured so far, if higher).

    ``block``/``disk``: everything outside the blocks + one group of blocks (two where a stream prefetches).
    ``leaf``: every group of a module's own tensors (nested modules hold theirs together) + one layer (two).
    """
    if applied.moves_whole_module:
        return applied.total_bytes
    groups = 2 if applied.use_stream else 1
    if applied.policy == "leaf":
        own = sum(group.nbytes for group in applied.groups if group.name.endswith(_OWN_TENSORS))
        layers = [group.nbytes for group in applied.groups if not group.name.endswith(_OWN_TENSORS)]
        estimate = own + groups * max(layers, default=0)
    else:
        estimate = sizes.non_block_bytes + groups * applied.config.num_blocks_per_group * sizes.largest_block_bytes
    return max(min(estimate, applied.total_bytes), applied.peak_resident_bytes)


def step_down(policy: str, has_cuda: bool) -> str | None:
    """The next stronger policy after ``policy`` ran out of memory, or None after ``disk``.

    On a CPU the device is RAM, so keeping weights in RAM saves nothing: every policy but ``disk`` steps to ``disk``.
    """
    if policy not in POLICIES:
        raise ValueError(f"offload policy {policy!r} is not one of {', '.join(POLICIES)}")
    if not has_cuda:
        return None if policy == "disk" else "disk"
    return STEP_DOWN.get(policy)


def _blocks_per_group(plan: OffloadPlan, sizes: OffloadSizes, work: WorkEstimate, room: Room) -> int:
    """Blocks per group for an automatic plan: 1 where a stream prefetches block by block, else as many as fit."""
    if plan.policy not in GROUP_POLICIES or plan.policy == "leaf" or sizes.largest_block_bytes == 0:
        return 1
    if room.streams and plan.use_stream is None:
        return 1
    count = (sizes.weights_bytes - sizes.non_block_bytes) // sizes.largest_block_bytes
    spare = room.device_free - sizes.non_block_bytes - work.activation_bytes
    return max(1, min(count, spare // sizes.largest_block_bytes))
