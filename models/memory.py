"""The model memory manager: one place that knows which models are loaded, where, and how many bytes they take.

Nodes get a shared ``ModelHandle`` from ``ModelManager.load`` (the same key gives the same handle and module, loaded
once) and run the model inside ``handle.use()``, which brings it to the compute device after evicting idle models in
least-recently-used order. ``handle.use(work)`` plans instead: it measures the room, chooses an offload policy
(``models.placement``), applies it, and counts on the device only the bytes that policy keeps there while the model
runs. Both the device and host RAM are held to budgets, so idle models are offloaded or unloaded instead of piling up
across runs. Outputs should carry handles, not modules: an unloaded handle drops its module and the memory goes with
it, while a module held elsewhere (a node output cache, a closure) would stay alive.
"""

from __future__ import annotations

import gc
import logging
import shutil
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Collection, Iterable
from pathlib import Path

import torch

from models.devices import Device, DeviceProbe
from models.memory_types import (
    MODES,
    LoadedModel,
    Location,
    MemoryConfig,
    ModelMemoryError,
    WorkEstimate,
    format_bytes,
)
from models.model_handle import ModelHandle, module_nbytes
from models.offload import GROUP_POLICIES, apply_offload, remove_offload
from models.offload_policy import offload_sizes
from models.placement import Room, plan_placement, weights_on_device

__all__ = [
    "MODELS_SERVICE",
    "MODES",
    "LoadedModel",
    "Location",
    "MemoryConfig",
    "ModelHandle",
    "ModelManager",
    "ModelMemoryError",
    "WorkEstimate",
    "file_key",
    "module_nbytes",
]

logger = logging.getLogger(__name__)

MODELS_SERVICE = "models"
"""The name nodes use to reach the manager: ``current_context().service(MODELS_SERVICE)``."""

_HOST = torch.device("cpu")


def file_key(kind: str, path: Path, *options: str) -> str:
    """The manager key of a model file: its kind, real path, size and modification time (an edited file loads
    anew) and the options it is loaded with."""
    real = Path(path).resolve()
    stat = real.stat()
    return ":".join((kind, str(real), str(stat.st_size), str(stat.st_mtime_ns), *options))


class ModelManager:
    """Loads, shares, places and evicts models within a device budget and a RAM budget; thread-safe.

    One lock guards the accounting. Loaders run outside it (a second caller for the same key waits for the first);
    moves between device and RAM run under it, so they happen one at a time.

    Args:
        config: budgets, reserves and mode.
        probe: finds the compute device (asked once, here) and measures free memory when a budget is None.
    """

    def __init__(self, config: MemoryConfig, probe: DeviceProbe) -> None:
        self.config = config
        self.probe = probe
        self.device: Device = probe.compute_device(force_cpu=config.force_cpu)
        self._target = probe.torch_device(self.device)
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._handles: dict[str, ModelHandle] = {}
        self._clock = 0
        self._temp_offload_dir: Path | None = None
        logger.info(
            "model memory: compute device %s, mode %s, device budget %s, RAM budget %s",
            self.device,
            config.mode,
            _budget_text(config.device_budget_bytes),
            _budget_text(config.ram_budget_bytes),
        )

    # -- public API --------------------------------------------------------------------------------------------

    @property
    def compute_device(self) -> torch.device:
        """Where a model's inputs go: the ``torch.device`` models run on (``cuda:N`` or ``cpu``)."""
        return self._target

    def load(self, key: str, loader: Callable[[], torch.nn.Module], *, size_hint: int | None = None) -> ModelHandle:
        """The handle for ``key``, running ``loader`` (into RAM) only if the model is not loaded yet.

        The key identifies the model: later calls with the same key share the handle (and, while it is loaded, the
        module; an unloaded handle takes the newest loader). Idle models are unloaded first when ``size_hint`` (or the
        size from an earlier load) would not fit the RAM budget.
        """
        with self._lock:
            handle = self._handles.get(key)
            if handle is None:
                handle = ModelHandle(self, key, loader, size_hint)
                self._handles[key] = handle
            elif handle._module is None and handle._loader_thread is None:
                handle._loader = loader  # not loaded: the newest loader reloads it (an earlier one may have failed)
                handle._size_hint = size_hint if size_hint is not None else handle._size_hint
        self._ensure_loaded(handle)
        return handle

    def derive(
        self, base: ModelHandle, suffix: str, transform: Callable[[torch.nn.Module], torch.nn.Module]
    ) -> ModelHandle:
        """The handle of ``base``'s model changed by ``transform`` (a LoRA merge), keyed ``base.key + suffix``.

        Its loader takes ``base``'s module when ``base`` is loaded and idle (``base`` unloads, and reloads from its
        own loader if it is used again), so a model loaded only to be patched is not read or held twice; otherwise
        it runs ``base``'s loader. ``transform`` may change the module in place and must return it.
        """

        def load() -> torch.nn.Module:
            module = self._take_idle_module(base)
            return transform(module if module is not None else base._loader())

        return self.load(base.key + suffix, load, size_hint=base.nbytes)

    def _take_idle_module(self, handle: ModelHandle) -> torch.nn.Module | None:
        """Unload ``handle`` and return its module in RAM, or None if it is not loaded, in use, or streamed from
        disk (its weights are not all in memory)."""
        with self._lock:
            module = handle._module
            if module is None or handle._refs or handle._loader_thread is not None:
                return None
            if handle._applied is not None and handle._applied.policy == "disk":
                return None
            self._drop_plan_locked(handle, "its module is handed to a derived model")
            if handle._location == Location.DEVICE:
                self._move_locked(handle, Location.CPU)
            self._unload_locked(handle, "its module is handed to a derived model")
            return module

    def free(self, unload_all: bool = True, *, keep: Collection[str] = ()) -> int:
        """Unload every idle model (``unload_all``) or only move idle models off the device; returns bytes freed.

        Freed bytes are those that left the device (and RAM, for unloads). Models in use stay and are logged, as do
        the models whose keys are in ``keep`` (the OOM retry keeps the model it retries).
        """
        freed = 0
        with self._lock:
            busy = []
            for handle in self._lru(self._handles.values()):
                if handle._module is None or handle.key in keep:
                    continue
                if handle._refs:
                    busy.append(handle)
                elif unload_all:
                    freed += self._unload_locked(handle, "free requested")
                elif handle._location == Location.DEVICE:
                    freed += handle._nbytes
                    self._offload_locked(handle, "free requested")
            if busy:
                logger.info("free: left %s in use", ", ".join(f"{h.key!r} ({format_bytes(h._nbytes)})" for h in busy))
        if freed:
            gc.collect()
            self.probe.release_cached(self.device)
        logger.info("free (%s): released %s", "unload" if unload_all else "offload", format_bytes(freed))
        return freed

    def make_device_room(self, nbytes: int, purpose: str = "working memory") -> int:
        """Evict idle models (LRU) until ``nbytes`` more fit the device budget; returns the bytes evicted.

        For memory that is not a model (a VAE decode's activations); raises ``ModelMemoryError`` if it cannot.
        """
        with self._lock:
            return self._make_device_room_locked(nbytes, purpose)

    def snapshot(self) -> list[LoadedModel]:
        """Every model the manager knows (unloaded ones too), least recently used first."""
        with self._lock:
            return self._snapshot_locked(self._handles.values())

    def resident_bytes(self, location: str) -> int:
        """Bytes of models now at ``location``: ``"device"`` (what each counts there, see ``LoadedModel``),
        ``"cpu"`` or ``"disk"``."""
        if location not in (Location.DEVICE, Location.CPU, Location.DISK):
            raise ValueError(f"location must be 'device', 'cpu' or 'disk', got {location!r}")
        with self._lock:
            return self._resident_locked(Location(location))

    def device_budget_bytes(self) -> int:
        """The device budget now: the configured one, or free device memory plus our resident models minus a reserve."""
        with self._lock:
            return self._device_budget_locked()

    def ram_budget_bytes(self) -> int:
        """The RAM budget now: the configured one, or available RAM plus our models in RAM minus a reserve."""
        with self._lock:
            return self._ram_budget_locked()

    # -- use -----------------------------------------------------------------------------------------------------

    def _acquire(self, handle: ModelHandle, work: WorkEstimate | None, forced: str | None) -> torch.nn.Module:
        with self._lock:
            handle._refs += 1
        try:
            self._ensure_loaded(handle)
            with self._lock:
                module = handle._module
                assert module is not None  # pinned: nothing unloads a model in use
                if handle._active:
                    logger.debug("%r is running: this use shares its placement", handle.key)
                else:
                    try:
                        if work is None:
                            self._place_whole_locked(handle)
                        else:
                            self._place_planned_locked(handle, module, work, forced)
                    except BaseException:
                        self._drop_plan_locked(handle, "placing it failed")  # no hooks stay after a failure
                        raise
                handle._active += 1
                handle._last_used = self._tick()
                return module
        except BaseException:
            with self._lock:
                handle._refs -= 1
            raise

    def _release(self, handle: ModelHandle, failed: bool) -> None:
        with self._lock:
            handle._refs -= 1
            handle._active -= 1
            handle._last_used = self._tick()
            applied = handle._applied
            if handle._active or applied is None:
                return
            if failed or (not applied.moves_whole_module and applied.resident_bytes()):
                self._drop_plan_locked(handle, "the run failed" if failed else "groups were left on the device")
            elif applied.policy == "model" and handle._location == Location.DEVICE and not handle._refs:
                self._offload_locked(handle, "the model policy returns it to RAM after each use")

    # -- placement (lock held) -----------------------------------------------------------------------------------

    def _place_whole_locked(self, handle: ModelHandle) -> None:
        """A plain use: no plan, the whole module on the device."""
        if handle._applied is not None:
            self._drop_plan_locked(handle, "a plain use() places it whole")
        handle._plan = None
        if handle._location != Location.DEVICE:
            self._make_device_room_locked(handle._nbytes, handle.key)
            self._move_locked(handle, Location.DEVICE)
            logger.info("moved %r (%s) to %s", handle.key, format_bytes(handle._nbytes), self.device)

    def _place_planned_locked(
        self, handle: ModelHandle, module: torch.nn.Module, work: WorkEstimate, forced: str | None
    ) -> None:
        """Plan from the room now; keep the applied policy if the plan is the same, else replace it; make room."""
        if handle._sizes is None:
            handle._sizes = offload_sizes(module)
        plan, config = plan_placement(handle._sizes, work, self._room_locked(handle), forced, self._offload_dir_locked)
        handle._plan = plan
        applied = handle._applied
        if applied is not None and applied.config != config:
            self._drop_plan_locked(handle, f"re-planned as {plan.policy}")
            applied = None
        if applied is None:
            logger.info("placing %r (%s): %s", handle.key, format_bytes(handle._nbytes), plan.reason)
        if config.policy not in GROUP_POLICIES:
            weights = 0 if handle._location == Location.DEVICE else handle._nbytes
            self._make_run_room_locked(handle, weights, work.activation_bytes)
            if handle._location != Location.DEVICE:
                self._move_locked(handle, Location.DEVICE)
            handle._applied = applied or apply_offload(module, config, self._target, _HOST)
            return
        if applied is None:
            if handle._location == Location.DEVICE:  # group policies start from RAM
                self._make_ram_room_locked(handle._nbytes, handle.key, strict=False, older_than=handle._last_used)
                self._move_locked(handle, Location.CPU)
            applied = apply_offload(module, config, self._target, _HOST)
            handle._applied = applied
            handle._location = Location.DISK if config.policy == "disk" else Location.CPU
        handle._reserve = weights_on_device(applied, handle._sizes)
        self._make_run_room_locked(handle, handle._reserve, work.activation_bytes)

    def _make_run_room_locked(self, handle: ModelHandle, weights: int, activations: int) -> None:
        """Evict idle models for the weights and the activation estimate; for the weights alone if that is all
        there is room for (the estimate is rough); ``ModelMemoryError`` if not even that."""
        try:
            self._make_device_room_locked(weights + activations, handle.key)
        except ModelMemoryError:
            if not activations:
                raise
            self._make_device_room_locked(weights, handle.key)
            logger.warning(
                "%r: no room on %s for the estimated %s of activations besides %s of weights; running anyway",
                handle.key,
                self.device,
                format_bytes(activations),
                format_bytes(weights),
            )

    def _drop_plan_locked(self, handle: ModelHandle, reason: str) -> None:
        """Remove the applied policy: weights whole in RAM, hooks gone. An idle ``disk`` model that RAM cannot take
        back is unloaded instead (it reloads on next use)."""
        applied, module = handle._applied, handle._module
        handle._applied = None
        handle._reserve = 0
        if applied is None or module is None:
            return
        if applied.policy == "disk":
            room = self._make_ram_room_locked(handle._nbytes, handle.key, strict=False, older_than=handle._last_used)
            if not room and not handle._refs:
                self._unload_locked(handle, f"{reason}; no room in RAM to read its weights back")
                return
        remove_offload(module)
        if handle._location == Location.DISK:
            handle._location = Location.CPU
        logger.info("removed the %s policy from %r: %s", applied.policy, handle.key, reason)

    def _room_locked(self, handle: ModelHandle) -> Room:
        """What ``handle`` can have now: the budgets minus what the other models take."""
        others = [h for h in self._handles.values() if h is not handle]
        device_used = sum(self._device_bytes(h) for h in others)
        ram_used = sum(h._nbytes for h in others if self._in_ram(h))
        ram_used += sum(h.nbytes for h in others if h._loader_thread is not None)
        return Room(
            device_free=max(0, self._device_budget_locked() - device_used),
            evictable=sum(h._nbytes for h in others if h._location == Location.DEVICE and not h._refs),
            ram_free=max(0, self._ram_budget_locked() - ram_used),
            has_cuda=self.device.is_cuda,
            streams=self._target.type == "cuda",
        )

    def _offload_dir_locked(self) -> Path:
        """``config.offload_dir``, or a temporary folder made on first need and deleted with the manager."""
        if self.config.offload_dir is not None:
            return self.config.offload_dir
        if self._temp_offload_dir is None:
            self._temp_offload_dir = Path(tempfile.mkdtemp(prefix="reelgraph-offload-"))
            weakref.finalize(self, shutil.rmtree, self._temp_offload_dir, True)
            logger.info("disk offload folder: %s", self._temp_offload_dir)
        return self._temp_offload_dir

    # -- loading -------------------------------------------------------------------------------------------------

    def _ensure_loaded(self, handle: ModelHandle) -> None:
        """Load the handle's module into RAM unless it is loaded; one thread loads, the others wait for it."""
        with self._changed:
            while handle._loader_thread is not None:
                if handle._loader_thread == threading.get_ident():
                    raise RuntimeError(f"the loader for {handle.key!r} asked for {handle.key!r} again")
                self._changed.wait()
            if handle._module is not None:
                handle._last_used = self._tick()
                return
            self._make_ram_room_locked(handle.nbytes, handle.key, strict=True)
            handle._loader_thread = threading.get_ident()
        started = time.perf_counter()
        try:
            module = handle._loader()
            if not isinstance(module, torch.nn.Module):
                raise TypeError(f"the loader for {handle.key!r} returned {type(module).__name__}, not a torch module")
            nbytes = module_nbytes(module)
            if remove_offload(module):  # the loader returned a module it kept, with the policy of an earlier load
                logger.info("removed a stale offload policy from the module the loader for %r returned", handle.key)
        except BaseException:
            with self._changed:
                handle._loader_thread = None
                self._changed.notify_all()
            raise
        with self._changed:
            handle._module = module
            handle._nbytes = nbytes
            handle._location = Location.CPU
            handle._loader_thread = None
            handle._loads += 1
            handle._last_used = self._tick()
            self._changed.notify_all()
            logger.info(
                "loaded %r (%s) to cpu in %.2f s", handle.key, format_bytes(nbytes), time.perf_counter() - started
            )
            # The size was a guess until now: hold the RAM budget by unloading older idle models if it was low.
            if not self._make_ram_room_locked(0, handle.key, strict=False, older_than=handle._last_used):
                logger.warning(
                    "RAM budget exceeded after loading %r: %s of models in RAM, budget %s, nothing idle to unload",
                    handle.key,
                    format_bytes(self._ram_used_locked()),
                    format_bytes(self._ram_budget_locked()),
                )

    # -- room making (lock held) ---------------------------------------------------------------------------------

    def _make_device_room_locked(self, need: int, key: str) -> int:
        budget = self._device_budget_locked()
        used = self._resident_locked(Location.DEVICE)
        idle = [h for h in self._lru(self._handles.values()) if h._location == Location.DEVICE and not h._refs]
        plan = self._plan(idle, used, need, budget)
        if plan is None:
            raise ModelMemoryError(key, need, budget, str(self.device), self._resident_snapshot_locked())
        for handle in plan:
            self._offload_locked(
                handle, f"least recently used, frees {format_bytes(handle._nbytes)} of {self.device} for {key!r}"
            )
        return sum(handle._nbytes for handle in plan)

    def _make_ram_room_locked(self, need: int, key: str, *, strict: bool, older_than: int | None = None) -> bool:
        """Unload idle models in RAM (LRU, only those used before ``older_than`` if given) until ``need`` fits.

        Nothing is unloaded unless that makes enough room; then raises when ``strict``, else returns False.
        """
        budget = self._ram_budget_locked()
        idle = [
            h
            for h in self._lru(self._handles.values())
            if self._in_ram(h) and not h._refs and (older_than is None or h._last_used < older_than)
        ]
        plan = self._plan(idle, self._ram_used_locked(), need, budget)
        if plan is None:
            if strict:
                raise ModelMemoryError(key, need, budget, "RAM", self._resident_snapshot_locked())
            return False
        for handle in plan:
            self._unload_locked(handle, f"least recently used, frees {format_bytes(handle._nbytes)} of RAM for {key!r}")
        return True

    @staticmethod
    def _plan(idle: list[ModelHandle], used: int, need: int, budget: int) -> list[ModelHandle] | None:
        """The shortest LRU prefix of ``idle`` whose eviction makes ``need`` fit, or None if none does."""
        plan: list[ModelHandle] = []
        for handle in idle:
            if used + need <= budget:
                break
            plan.append(handle)
            used -= handle._nbytes
        return plan if used + need <= budget else None

    def _offload_locked(self, handle: ModelHandle, reason: str) -> None:
        """Move an idle model from the device to RAM if the RAM budget allows (unloading older ones), else unload it."""
        ram_cost = handle._nbytes if self.device.is_cuda else 0  # on a CPU device the weights already sit in RAM
        idle_since = handle._last_used
        if ram_cost and not self._make_ram_room_locked(ram_cost, handle.key, strict=False, older_than=idle_since):
            self._unload_locked(handle, f"{reason}; no room for it in RAM")
            return
        self._move_locked(handle, Location.CPU)
        logger.info("evicted %r to cpu, idle since use #%d: %s", handle.key, idle_since, reason)

    def _unload_locked(self, handle: ModelHandle, reason: str) -> int:
        """Drop the module (its memory goes once nothing else references it, a disk policy's files with it); it
        reloads on next use."""
        previous = handle._location
        if handle._applied is not None and handle._applied.policy != "disk" and handle._module is not None:
            remove_offload(handle._module)  # cheap (the weights are in RAM); no hooks stay on a module kept elsewhere
        handle._module = None
        handle._location = Location.UNLOADED
        handle._applied = handle._plan = handle._sizes = None
        handle._reserve = 0
        logger.info("unloaded %r from %s, idle since use #%d: %s", handle.key, previous, handle._last_used, reason)
        return handle._nbytes

    def _move_locked(self, handle: ModelHandle, location: Location) -> None:
        """Move the module; if that fails part-way (out of memory), put it back whole in RAM and re-raise."""
        module = handle._module
        assert module is not None
        try:
            module.to(self._target if location == Location.DEVICE else _HOST)
        except BaseException:
            module.to(_HOST)
            handle._location = Location.CPU
            raise
        handle._location = location

    # -- accounting (lock held) ----------------------------------------------------------------------------------

    def _device_budget_locked(self) -> int:
        if self.config.device_budget_bytes is not None:
            return self.config.device_budget_bytes
        reserve = self.config.device_reserve_bytes if self.device.is_cuda else self.config.ram_reserve_bytes
        return max(0, self.probe.free_bytes(self.device) + self._resident_locked(Location.DEVICE) - reserve)

    def _ram_budget_locked(self) -> int:
        if self.config.ram_budget_bytes is not None:
            return self.config.ram_budget_bytes
        in_ram = sum(h._nbytes for h in self._handles.values() if self._in_ram(h))
        return max(0, self.probe.ram_available() + in_ram - self.config.ram_reserve_bytes)

    def _ram_used_locked(self) -> int:
        """Bytes of models in RAM, plus the expected size of loads under way (their loaders run unlocked)."""
        return sum(h._nbytes for h in self._handles.values() if self._in_ram(h)) + sum(
            h.nbytes for h in self._handles.values() if h._loader_thread is not None
        )

    def _in_ram(self, handle: ModelHandle) -> bool:
        if handle._location == Location.CPU:
            return True
        return handle._location == Location.DEVICE and not self.device.is_cuda

    @staticmethod
    def _device_bytes(handle: ModelHandle) -> int:
        """The whole model on the device; under a group policy the groups there now, and while it runs at least the
        bytes reserved for them."""
        if handle._location == Location.DEVICE:
            return handle._nbytes
        applied = handle._applied
        if applied is None or applied.moves_whole_module:
            return 0
        live = applied.resident_bytes()
        return max(handle._reserve, live) if handle._active else live

    def _resident_locked(self, location: Location) -> int:
        if location == Location.DEVICE:
            return sum(self._device_bytes(h) for h in self._handles.values())
        return sum(h._nbytes for h in self._handles.values() if h._location == location)

    def _resident_snapshot_locked(self) -> tuple[LoadedModel, ...]:
        loaded = [h for h in self._handles.values() if h._location != Location.UNLOADED]
        return tuple(self._snapshot_locked(loaded))

    def _snapshot_locked(self, handles: Iterable[ModelHandle]) -> list[LoadedModel]:
        return [
            LoadedModel(
                h.key,
                h.nbytes,
                h._location,
                h._refs,
                h._last_used,
                self._device_bytes(h),
                None if h._applied is None else h._applied.policy,
            )
            for h in self._lru(handles)
        ]

    @staticmethod
    def _lru(handles: Iterable[ModelHandle]) -> list[ModelHandle]:
        return sorted(handles, key=lambda handle: handle._last_used)

    def _tick(self) -> int:
        self._clock += 1
        return self._clock


def _budget_text(budget: int | None) -> str:
    return "measured" if budget is None else format_bytes(budget)
