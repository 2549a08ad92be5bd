"""The memory manager's value types: its configuration, where a model is, the accounting rows, and its error."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from models.errors import ModelError

MiB = 1 << 20
GiB = 1 << 30
MODES = ("auto", "highvram", "lowvram", "novram", "cpu")
DEFAULT_DEVICE_RESERVE = 512 * MiB
DEFAULT_RAM_RESERVE = 1 * GiB


class Location(StrEnum):
    """Where a model's weights are: on the compute device, in host RAM, in files of the ``disk`` offload policy, or
    not loaded (equal to the plain strings). A model under a group offload policy is in RAM (or on disk) and visits
    the device group by group while it runs."""

    DEVICE = "device"
    CPU = "cpu"
    DISK = "disk"
    UNLOADED = "unloaded"


@dataclass(frozen=True)
class MemoryConfig:
    """How much memory models may take and how the manager should place them.

    Args:
        device_budget_bytes: bytes of model weights allowed on the compute device; None measures the device's free
            memory at each decision and keeps ``device_reserve_bytes`` of it free (``ram_reserve_bytes`` on a CPU).
        ram_budget_bytes: bytes of model weights allowed in host RAM; None measures available RAM minus
            ``ram_reserve_bytes``.
        device_reserve_bytes: device memory left for activations when the device budget is measured.
        ram_reserve_bytes: RAM left for everything else when a budget over RAM is measured.
        mode: ``auto``, ``highvram``, ``lowvram``, ``novram`` or ``cpu``; ``cpu`` makes the CPU the compute device, the
            others are read by the offload policies.
        offload_dir: where the ``disk`` offload policy writes weight files; None uses a temporary folder the manager
            creates on first need and deletes when it goes.
    """

    device_budget_bytes: int | None = None
    ram_budget_bytes: int | None = None
    device_reserve_bytes: int = DEFAULT_DEVICE_RESERVE
    ram_reserve_bytes: int = DEFAULT_RAM_RESERVE
    mode: str = "auto"
    offload_dir: Path | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"memory mode {self.mode!r} is not one of {', '.join(MODES)}")
        if self.offload_dir is not None:
            object.__setattr__(self, "offload_dir", Path(self.offload_dir))
        for name in ("device_budget_bytes", "ram_budget_bytes", "device_reserve_bytes", "ram_reserve_bytes"):
            value = getattr(self, name)
            if value is None and name.endswith("budget_bytes"):
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative number of bytes, got {value!r}")

    @property
    def force_cpu(self) -> bool:
        return self.mode == "cpu"


@dataclass(frozen=True)
class WorkEstimate:
    """Working memory one run of a model needs on the device besides its weights (``estimate_activation_bytes``)."""

    activation_bytes: int = 0

    def __post_init__(self) -> None:
        value = self.activation_bytes
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"activation_bytes must be a non-negative number of bytes, got {value!r}")


@dataclass(frozen=True)
class LoadedModel:
    """One row of the manager's accounting: a model's key, size, location, users and LRU stamp.

    ``device_bytes`` is what the model counts on the device: its size when it is there whole; under a group offload
    policy the groups on the device now, or while it runs the bytes reserved for its groups (the planned peak).
    ``policy`` is the offload policy applied to it (None: placed whole without a plan).
    """

    key: str
    nbytes: int
    location: Location
    refs: int
    last_used: int
    device_bytes: int = 0
    policy: str | None = None

    def describe(self) -> str:
        state = f"in use x{self.refs}" if self.refs else f"idle since use #{self.last_used}"
        if self.policy is None:
            return f"{self.key!r} {format_bytes(self.nbytes)} ({self.location}, {state})"
        on_device = f"{format_bytes(self.device_bytes)} on device"
        return f"{self.key!r} {format_bytes(self.nbytes)} ({self.location}, {self.policy}, {on_device}, {state})"


class ModelMemoryError(ModelError):
    """Room for a model cannot be made without evicting models that are in use (or the model exceeds the budget).

    Offload policies catch it and step down (partial loading, CPU execution). ``where`` is ``"RAM"`` or the device.
    """

    def __init__(self, key: str, needed_bytes: int, budget_bytes: int, where: str, resident: tuple[LoadedModel, ...]):
        self.key = key
        self.needed_bytes = needed_bytes
        self.budget_bytes = budget_bytes
        self.where = where
        self.resident = resident
        in_use = ", ".join(repr(model.key) for model in resident if model.refs) or "none"
        listing = "; ".join(model.describe() for model in resident) or "nothing"
        super().__init__(
            f"not enough memory on {where} for {key!r}: needs {needed_bytes} bytes ({format_bytes(needed_bytes)}), "
            f"budget {budget_bytes} bytes ({format_bytes(budget_bytes)}), in use: {in_use}"
            f"; resident: {listing}"
        )


def format_bytes(nbytes: int) -> str:
    """``12.0 MiB``: sizes in log lines and messages."""
    if nbytes >= GiB:
        return f"{nbytes / GiB:.2f} GiB"
    return f"{nbytes / MiB:.1f} MiB"
