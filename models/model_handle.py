"""``ModelHandle``: the shared reference nodes hold to a model the ``ModelManager`` loads, offloads and unloads."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import torch
from torch.utils._python_dispatch import is_traceable_wrapper_subclass

from models.memory_types import Location, WorkEstimate, format_bytes
from models.placement import forced_policy

if TYPE_CHECKING:
    from models.memory import ModelManager
    from models.offload import AppliedOffload
    from models.offload_policy import OffloadPlan, OffloadSizes


def module_nbytes(module: torch.nn.Module) -> int:
    """Bytes held by a module's parameters and buffers (tied parameters counted once); a quantized tensor (a
    wrapper subclass such as torchao's) counts its inner tensors (int8 data, scales), not the size it stands for."""
    return sum(tensor_nbytes(tensor) for tensor in (*module.parameters(), *module.buffers()))


def tensor_nbytes(tensor: torch.Tensor) -> int:
    """Bytes a tensor holds in memory (a wrapper subclass: the sum of its inner tensors)."""
    if is_traceable_wrapper_subclass(tensor):
        inner_names, _attributes = tensor.__tensor_flatten__()
        return sum(tensor_nbytes(getattr(tensor, name)) for name in inner_names)
    return tensor.numel() * tensor.element_size()


class ModelHandle:
    """A shared reference to one model; the manager may offload or unload its module whenever it is not in use.

    The properties are read-only views of the manager's accounting; only ``use()`` gives the module.
    """

    def __init__(self, manager: ModelManager, key: str, loader: Callable[[], torch.nn.Module], size_hint: int | None):
        self._manager = manager
        self._key = key
        self._loader = loader
        self._size_hint = size_hint
        self._module: torch.nn.Module | None = None
        self._nbytes = 0
        self._location = Location.UNLOADED
        self._refs = 0
        self._last_used = 0
        self._loader_thread: int | None = None  # the thread running the loader, while one does
        self._loads = 0
        self._active = 0  # use() blocks that placed or joined the placement (refs also counts those still placing)
        self._plan: OffloadPlan | None = None
        self._applied: AppliedOffload | None = None
        self._sizes: OffloadSizes | None = None  # measured at the first planned use of each load
        self._reserve = 0  # device bytes a group policy counts while the model runs

    @property
    def key(self) -> str:
        return self._key

    @property
    def nbytes(self) -> int:
        """Parameter and buffer bytes, measured after the last load (the size hint before the first)."""
        return self._nbytes if self._loads else (self._size_hint or 0)

    @property
    def location(self) -> Location:
        return self._location

    @property
    def refs(self) -> int:
        """How many ``use()`` blocks are open on this model now."""
        return self._refs

    @property
    def last_used(self) -> int:
        """The manager's use counter when this model was last loaded, entered or left (larger is more recent)."""
        return self._last_used

    @property
    def loads(self) -> int:
        """How many times the loader has run (again after every unload that was followed by a use)."""
        return self._loads

    @property
    def plan(self) -> OffloadPlan | None:
        """The offload plan of the latest planned ``use()`` (``policy`` and ``reason``, for a node's output info),
        kept after a failed run; None before one and after a plain ``use()``."""
        return self._plan

    @property
    def offload(self) -> AppliedOffload | None:
        """The offload policy applied to the module now (None when placed whole without a plan, or not loaded)."""
        return self._applied

    @contextmanager
    def use(self, work: WorkEstimate | None = None, policy: str | None = None) -> Iterator[torch.nn.Module]:
        """Pin the model, place it for a run (reloading it if needed) and yield the module.

        Without arguments the whole model goes to the compute device. With ``work`` (the run's activation estimate)
        or ``policy`` (one of ``models.offload.POLICIES`` to force, or ``"auto"``) the manager plans: it measures the
        device budget, the other models and RAM, chooses an offload policy (None/``"auto"`` follows the memory mode:
        ``highvram``/``lowvram``/``novram`` force ``resident``/``block``/``leaf``), applies it, and keeps it for the
        next use while the numbers give the same decision. ``plan`` says what was chosen and why. A second use while
        the model runs shares the placement it has. If the block raises, the policy is removed (hooks gone, weights
        whole in RAM) so that the next use starts clean.

        Raises ``ModelMemoryError`` when the room cannot be made because the other resident models are in use.
        Do not keep the module after the block: the manager may move or drop it once the model is idle.
        """
        forced = forced_policy(policy, self._manager.config.mode)
        if work is None and policy is not None:
            work = WorkEstimate()
        module = self._manager._acquire(self, work, forced)
        try:
            yield module
        except BaseException:
            self._manager._release(self, failed=True)
            raise
        self._manager._release(self, failed=False)

    def __repr__(self) -> str:
        return f"<ModelHandle {self._key!r} {format_bytes(self.nbytes)} {self._location} refs={self._refs}>"
