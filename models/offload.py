"""Offload policies: how much of a model sits on the compute device while it runs, weakest memory saving first.

- ``resident``: the whole model on the compute device, kept there between uses until the ModelManager evicts it.
- ``model``: the whole model on the device only while it runs, back in RAM after. The ModelManager makes the moves
  (``handle.use()`` brings the module to the device, eviction sends it back); the policy installs no hooks.
- ``block``: diffusers' block-level group offloading. The model's block lists (``ModuleList``/``Sequential``
  children) visit the device one group of ``num_blocks_per_group`` blocks at a time, the other weights for the
  whole forward; on CUDA the next group is prefetched on a side stream.
- ``leaf``: diffusers' leaf-level group offloading: one ``Linear``/``Conv``/``Embedding`` at a time.
- ``disk``: block-level groups whose weights are written to a folder under ``disk_dir`` and read back for each use,
  so RAM holds only the groups in use.

``apply_offload`` installs a policy and returns an ``AppliedOffload`` that counts the bytes the policy keeps on the
device; ``remove_offload`` undoes it, so a stronger policy can follow (the OOM retry). The hooks are diffusers' own
(``apply_group_offloading``); this module only configures, accounts for and removes them. Choosing a policy from the
sizes and the free memory is ``models.offload_policy``'s job.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from models.memory_types import format_bytes

__all__ = [
    "GROUP_POLICIES",
    "POLICIES",
    "AppliedOffload",
    "GroupInfo",
    "OffloadConfig",
    "applied_offload",
    "apply_offload",
    "remove_offload",
]

logger = logging.getLogger(__name__)

POLICIES = ("resident", "model", "block", "leaf", "disk")
"""Every policy, weakest memory saving first."""
GROUP_POLICIES = ("block", "leaf", "disk")
"""The policies that install diffusers' group offloading hooks (the others move the whole module)."""

_ATTRIBUTE = "_reelgraph_offload"  # where the AppliedOffload lives on the module
_OFFLOAD_TYPES = {"block": "block_level", "leaf": "leaf_level", "disk": "block_level"}


@dataclass(frozen=True)
class OffloadConfig:
    """An offload policy and its options; checked here, once.

    Args:
        policy: one of ``POLICIES``.
        num_blocks_per_group: blocks that visit the device together (``block`` and ``disk``; ignored otherwise).
        use_stream: prefetch the next group on a CUDA side stream; None chooses it where it works: a CUDA onload
            device and, for block groups, ``num_blocks_per_group == 1`` (diffusers prefetches one block at a time).
        disk_dir: where the ``disk`` policy writes its weight files (a fresh sub-folder per model); required by
            ``disk`` and refused by the others.
        low_cpu_mem_usage: with streams, pin RAM on the fly instead of keeping a pinned copy of the weights.
    """

    policy: str
    num_blocks_per_group: int = 1
    use_stream: bool | None = None
    disk_dir: Path | None = None
    low_cpu_mem_usage: bool = False

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ValueError(f"offload policy {self.policy!r} is not one of {', '.join(POLICIES)}")
        blocks = self.num_blocks_per_group
        if isinstance(blocks, bool) or not isinstance(blocks, int) or blocks < 1:
            raise ValueError(f"num_blocks_per_group must be a positive integer, got {blocks!r}")
        if self.use_stream not in (None, True, False):
            raise ValueError(f"use_stream must be True, False or None (auto), got {self.use_stream!r}")
        if self.use_stream and self.policy not in GROUP_POLICIES:
            raise ValueError(f"use_stream=True needs a group policy ({', '.join(GROUP_POLICIES)}), got {self.policy!r}")
        if self.use_stream and self.policy != "leaf" and blocks != 1:
            raise ValueError(
                f"use_stream=True prefetches one block at a time: num_blocks_per_group must be 1, got {blocks}"
            )
        if self.policy == "disk" and self.disk_dir is None:
            raise ValueError("the disk offload policy needs disk_dir (a folder for the weight files)")
        if self.policy != "disk" and self.disk_dir is not None:
            raise ValueError(f"disk_dir is only used by the disk policy, got policy {self.policy!r}")
        if self.disk_dir is not None:
            object.__setattr__(self, "disk_dir", Path(self.disk_dir))


@dataclass(frozen=True)
class GroupInfo:
    """One offload group: the modules it names (``<root>`` for the model's own parameters) and its bytes."""

    name: str
    nbytes: int


class _Group:
    """A diffusers ``ModuleGroup`` with its name and size, as the accounting sees it."""

    def __init__(self, group: Any, name: str, nbytes: int) -> None:
        self.group = group
        self.info = GroupInfo(name, nbytes)
        self.onloaded = False


class AppliedOffload:
    """A policy installed on one module, and the bytes it keeps on the onload device.

    ``resident_bytes()`` counts from hook events, not from ``tensor.device``, so it also works where the onload and
    offload devices are both the CPU. A group counts from the forward pre-hook of the module that onloads it (plus the
    group it prefetches) to the forward hook of the module that offloads it, as diffusers' hooks do. A forward that
    raises leaves its groups counted, as diffusers leaves them onloaded; ``remove_offload`` puts them back. Under
    ``resident`` and ``model`` the whole model counts: it is on the device whenever it runs.
    """

    def __init__(
        self,
        config: OffloadConfig,
        onload_device: torch.device,
        offload_device: torch.device,
        use_stream: bool,
        total_bytes: int,
        groups: list[_Group],
        disk_path: Path | None,
    ) -> None:
        self.config = config
        self.onload_device = onload_device
        self.offload_device = offload_device
        self.use_stream = use_stream
        self.total_bytes = total_bytes
        self.disk_path = disk_path
        self._groups = groups
        self._resident = 0 if groups else total_bytes
        self._peak = self._resident
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self._cleanup: weakref.finalize | None = None

    @property
    def policy(self) -> str:
        return self.config.policy

    @property
    def moves_whole_module(self) -> bool:
        """True for ``resident`` and ``model``: the ModelManager moves the module; no hooks do."""
        return not self._groups

    @property
    def groups(self) -> tuple[GroupInfo, ...]:
        """The offload groups diffusers made, in module order (empty for whole-model policies)."""
        return tuple(group.info for group in self._groups)

    @property
    def largest_group_bytes(self) -> int:
        return max((group.info.nbytes for group in self._groups), default=self.total_bytes)

    def resident_bytes(self) -> int:
        """Bytes of parameters and buffers on the onload device now, by the policy's hooks."""
        return self._resident

    @property
    def peak_resident_bytes(self) -> int:
        """The most ``resident_bytes()`` has been since the policy was applied or ``reset_peak()``."""
        return self._peak

    def reset_peak(self) -> None:
        self._peak = self._resident

    def _onload(self, group: _Group) -> None:
        if not group.onloaded:
            group.onloaded = True
            self._resident += group.info.nbytes
            self._peak = max(self._peak, self._resident)

    def _offload(self, group: _Group) -> None:
        if group.onloaded:
            group.onloaded = False
            self._resident -= group.info.nbytes

    def __repr__(self) -> str:
        return (
            f"<AppliedOffload {self.policy} on {self.onload_device}: {len(self._groups)} groups, "
            f"resident {format_bytes(self._resident)} of {format_bytes(self.total_bytes)}>"
        )


def applied_offload(module: torch.nn.Module) -> AppliedOffload | None:
    """The policy ``apply_offload`` installed on ``module``, or None."""
    return getattr(module, _ATTRIBUTE, None)


def apply_offload(
    module: torch.nn.Module, config: OffloadConfig, onload_device: torch.device, offload_device: torch.device
) -> AppliedOffload:
    """Install ``config``'s policy on ``module``; raises ``ValueError`` if one is installed already.

    Group policies offload the weights at once (``disk`` writes its files now); whole-model policies move nothing
    (the ModelManager places the module). ``use_stream=True`` needs a CUDA onload device.
    """
    from diffusers.hooks import apply_group_offloading
    from diffusers.hooks.group_offloading import _is_group_offload_enabled

    onload_device, offload_device = torch.device(onload_device), torch.device(offload_device)
    current = applied_offload(module)
    if current is not None:
        raise ValueError(f"{type(module).__name__} already has the {current.policy!r} offload policy: remove it first")
    if _is_group_offload_enabled(module):
        raise ValueError(f"{type(module).__name__} already has diffusers group offloading applied outside Reelgraph")
    if config.use_stream and onload_device.type != "cuda":
        raise ValueError(f"use_stream=True needs a CUDA onload device, got {onload_device}")
    use_stream = _resolve_stream(config, onload_device)
    total = sum(tensor.numel() * tensor.element_size() for tensor in _unique_tensors([module]))

    disk_path = None
    if config.policy in GROUP_POLICIES:
        if config.disk_dir is not None:
            config.disk_dir.mkdir(parents=True, exist_ok=True)
            # A fresh folder per application: diffusers reuses any file already at a group's path, stale or not.
            disk_path = Path(tempfile.mkdtemp(prefix=f"{type(module).__name__}-", dir=config.disk_dir))
        try:
            apply_group_offloading(
                module,
                onload_device=onload_device,
                offload_device=offload_device,
                offload_type=_OFFLOAD_TYPES[config.policy],
                num_blocks_per_group=config.num_blocks_per_group if config.policy != "leaf" else None,
                use_stream=use_stream,
                low_cpu_mem_usage=config.low_cpu_mem_usage,
                offload_to_disk_path=None if disk_path is None else str(disk_path),
            )
        except BaseException:
            for group in _collect_groups(module):  # a disk write failed part-way: read back what was written
                _restore(group.group, offload_device)
            _remove_diffusers_hooks(module)
            if disk_path is not None:
                shutil.rmtree(disk_path, ignore_errors=True)
            raise
    groups = _collect_groups(module)
    if config.policy in ("block", "disk") and len(groups) == 1:
        logger.warning("%s has no block lists: %s offloading moves it whole", type(module).__name__, config.policy)
    applied = AppliedOffload(config, onload_device, offload_device, use_stream, total, groups, disk_path)
    _install_accounting(module, applied)
    if disk_path is not None:
        applied._cleanup = weakref.finalize(module, shutil.rmtree, disk_path, True)
    setattr(module, _ATTRIBUTE, applied)
    logger.info(
        "offload %s on %s for %s (%s): %d groups, largest %s%s%s",
        config.policy,
        onload_device,
        type(module).__name__,
        format_bytes(total),
        len(groups),
        format_bytes(applied.largest_group_bytes),
        ", prefetching on a stream" if use_stream else "",
        f", weights in {disk_path}" if disk_path is not None else "",
    )
    return applied


def remove_offload(module: torch.nn.Module) -> bool:
    """Undo ``apply_offload``: weights whole on the offload device again, hooks gone; False if none was installed.

    Groups a failed forward left on the device go back; ``disk`` reads every group back into RAM (one group at a
    time) and deletes its folder. If RAM cannot hold the weights, drop the module and reload it instead.
    """
    applied = applied_offload(module)
    if applied is None:
        return False
    for handle in applied._handles:
        handle.remove()
    for group in applied._groups:
        _restore(group.group, applied.offload_device)
        group.onloaded = False
    if applied._groups:
        _remove_diffusers_hooks(module)
    delattr(module, _ATTRIBUTE)
    if applied._cleanup is not None:
        applied._cleanup()
    logger.info("removed offload %s from %s", applied.policy, type(module).__name__)
    return True


def _resolve_stream(config: OffloadConfig, onload_device: torch.device) -> bool:
    if config.use_stream is not None:
        return config.use_stream
    one_block = config.policy == "leaf" or config.num_blocks_per_group == 1
    return config.policy in GROUP_POLICIES and onload_device.type == "cuda" and one_block


def _collect_groups(module: torch.nn.Module) -> list[_Group]:
    """The distinct diffusers groups whose hooks sit in ``module``, with names and sizes."""
    from diffusers.hooks.group_offloading import _GROUP_OFFLOADING

    names = {id(submodule): name or "<root>" for name, submodule in module.named_modules()}
    groups: dict[int, _Group] = {}
    for submodule in module.modules():
        registry = getattr(submodule, "_diffusers_hook", None)
        hook = registry.get_hook(_GROUP_OFFLOADING) if registry is not None else None
        if hook is None or id(hook.group) in groups:
            continue
        group = hook.group
        parts = [names[id(member)] for member in group.modules]
        if group.parameters or group.buffers:
            parts.append(f"{names[id(group.offload_leader)]} (own tensors)")
        name = "+".join(parts)
        tensors = _unique_tensors(group.modules, [*group.parameters, *group.buffers])
        groups[id(group)] = _Group(group, name, sum(t.numel() * t.element_size() for t in tensors))
    return list(groups.values())


def _install_accounting(module: torch.nn.Module, applied: AppliedOffload) -> None:
    """Forward hooks that mirror diffusers' onload (pre-forward of the onload leader) and offload (forward hook of the
    offload leader); registered after diffusers', but torch runs them around the hooked forward either way."""
    from diffusers.hooks.group_offloading import _GROUP_OFFLOADING

    by_group = {id(group.group): group for group in applied._groups}

    def onload_hook(group: _Group, leader: torch.nn.Module) -> Any:
        def hook(_module: torch.nn.Module, _args: Any) -> None:
            applied._onload(group)
            diffusers_hook = leader._diffusers_hook.get_hook(_GROUP_OFFLOADING)
            following = getattr(diffusers_hook, "next_group", None)
            if following is not None and not following.onload_self and id(following) in by_group:
                applied._onload(by_group[id(following)])  # prefetched with this group

        return hook

    def offload_hook(group: _Group) -> Any:
        def hook(_module: torch.nn.Module, _args: Any, _output: Any) -> None:
            applied._offload(group)

        return hook

    for group in applied._groups:
        leaders = [group.group.onload_leader] if group.group.onload_leader is not None else group.group.modules
        for leader in leaders:
            applied._handles.append(leader.register_forward_pre_hook(onload_hook(group, leader)))
        applied._handles.append(group.group.offload_leader.register_forward_hook(offload_hook(group)))


def _restore(group: Any, offload_device: torch.device) -> None:
    """Put a group's weights, whole, on the offload device.

    A disk group is read from its file straight to the offload device: going through the onload device could fail
    for want of memory, which may be why the policy is being removed.
    """
    if group.offload_to_disk_path is None:
        group.offload_()
    elif group._is_offloaded_to_disk:
        from safetensors.torch import load_file

        loaded = load_file(group.safetensors_file_path, device=str(offload_device))
        for key, tensor in group.key_to_tensor.items():
            tensor.data = loaded[key]


def _remove_diffusers_hooks(module: torch.nn.Module) -> None:
    from diffusers.hooks.group_offloading import (
        _GROUP_OFFLOADING,
        _LAYER_EXECUTION_TRACKER,
        _LAZY_PREFETCH_GROUP_OFFLOADING,
    )
    from diffusers.hooks.hooks import HookRegistry

    registry = HookRegistry.check_if_exists_or_initialize(module)
    for name in (_LAZY_PREFETCH_GROUP_OFFLOADING, _LAYER_EXECUTION_TRACKER, _GROUP_OFFLOADING):
        registry.remove_hook(name, recurse=True)
    for submodule in module.modules():  # leave no trace where no other diffusers hook remains
        registry = submodule.__dict__.get("_diffusers_hook")
        if registry is not None and not registry.hooks:
            del submodule._diffusers_hook
            forward = submodule.__dict__.get("forward")
            if getattr(forward, "__func__", None) is type(submodule).forward:
                del submodule.forward  # the bound method diffusers restored: back to the class's


def _unique_tensors(modules: Iterable[torch.nn.Module], extra: Iterable[torch.Tensor] = ()) -> list[torch.Tensor]:
    """Parameters and buffers of ``modules`` plus ``extra``, each once (tied weights count once)."""
    seen: dict[int, torch.Tensor] = {}
    for module in modules:
        for tensor in [*module.parameters(), *module.buffers()]:
            seen.setdefault(id(tensor), tensor)
    for tensor in extra:
        seen.setdefault(id(tensor), tensor)
    return list(seen.values())
