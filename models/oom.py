"""Out-of-memory recovery: run a model under the manager's plan, and after running out of memory free idle models,
step the offload policy down one notch and try again; if that fails too, a ``ModelOutOfMemoryError`` that says what
was tried, why, and with how much memory, instead of a crash.

Sampler and decoder nodes call ``run_with_oom_recovery(manager, handle, lambda module: ..., work)``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import torch

from models.errors import ModelError
from models.memory import ModelHandle, ModelManager
from models.memory_types import ModelMemoryError, WorkEstimate, format_bytes
from models.offload import POLICIES
from models.placement import step_down

__all__ = ["ModelOutOfMemoryError", "OomAttempt", "is_out_of_memory", "run_with_oom_recovery"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

OOM_MESSAGES = ("out of memory", "not enough memory")
"""Lower-case phrases of allocator failures raised as plain ``RuntimeError`` (CUDA, the CPU allocator, MPS)."""
_HOST_MESSAGES = ("not enough memory", "defaultcpuallocator")  # the CPU allocator's words: RAM ran out


@dataclass(frozen=True)
class OomAttempt:
    """One run that ran out of memory: the policy placed (or being placed), the plan's reason, the failure."""

    policy: str
    reason: str
    error: str


class ModelOutOfMemoryError(ModelError):
    """A model ran out of memory under every policy tried. ``attempts`` lists them in order; ``numbers`` holds the
    memory figures of the message in bytes (weights, device budget and use, RAM budget and use, bytes freed)."""

    def __init__(self, key: str, attempts: tuple[OomAttempt, ...], numbers: dict[str, int]) -> None:
        self.key = key
        self.attempts = attempts
        self.numbers = numbers
        tried = "; ".join(
            f"{index}) {attempt.policy} ({attempt.reason}) failed: {attempt.error}"
            for index, attempt in enumerate(attempts, 1)
        )
        figures = (
            f"weights {format_bytes(numbers['weights'])}, device budget {format_bytes(numbers['device_budget'])} "
            f"with {format_bytes(numbers['device_used'])} of models on it, RAM budget "
            f"{format_bytes(numbers['ram_budget'])} with {format_bytes(numbers['ram_used'])} of models in it, "
            f"{format_bytes(numbers['freed'])} freed from idle models before retrying"
        )
        super().__init__(
            f"out of memory running {key!r} after {len(attempts)} attempt{'s' if len(attempts) != 1 else ''}: "
            f"{tried}. Memory: {figures}. Lower the resolution, frame count or batch size, tile the decode, or free "
            f"memory used outside Reelgraph"
        )


def is_out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` means memory ran out: ``torch.OutOfMemoryError``, ``MemoryError``, the manager's
    ``ModelMemoryError``, or a ``RuntimeError`` whose message says so (``OOM_MESSAGES``)."""
    if isinstance(error, torch.OutOfMemoryError | MemoryError | ModelMemoryError):
        return True
    return isinstance(error, RuntimeError) and any(phrase in str(error).lower() for phrase in OOM_MESSAGES)


def run_with_oom_recovery(
    manager: ModelManager,
    handle: ModelHandle,
    run: Callable[[torch.nn.Module], T],
    work: WorkEstimate | None = None,
    *,
    policy: str | None = None,
    max_retries: int = 1,
    caller_recovers: bool = False,
) -> T:
    """``run(module)`` inside ``handle.use(work, policy)``; after running out of memory, retry stronger.

    Each retry first moves idle models off the device (``manager.free(unload_all=False)``) and, when RAM was what ran
    out (or the device is the CPU), unloads them too; then it forces the next policy (``models.placement.step_down``:
    resident/model -> block -> leaf -> disk), or the same one if none is stronger but memory was freed. Any other
    exception propagates unchanged, at once. ``use()`` removes the failed policy, so no hooks stay on the module.

    Args:
        manager: the manager ``handle`` belongs to.
        handle: the model to run.
        run: the work; it gets the placed module and must not keep it.
        work: the activation estimate the plan is made with (None: weights only).
        policy: the policy of the first attempt (None/``"auto"``: chosen, following the memory mode).
        max_retries: retries after the first attempt.
        caller_recovers: the caller catches ``ModelOutOfMemoryError`` and tries something smaller (a smaller tile),
            so giving up is not logged as an error here.

    Raises:
        ModelOutOfMemoryError: every attempt ran out of memory; it is chained to the last failure.
    """
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        raise ValueError(f"max_retries must be a non-negative integer, got {max_retries!r}")
    work = work or WorkEstimate()
    attempts: list[OomAttempt] = []
    freed = 0
    while True:
        try:
            with handle.use(work, policy=policy) as module:
                return run(module)
        except Exception as error:
            if not is_out_of_memory(error):
                raise
            plan = handle.plan
            tried = plan.policy if plan is not None else policy or "auto"
            reason = plan.reason if plan is not None else "not placed"
            attempts.append(OomAttempt(tried, reason, _summary(error)))
            logger.warning("out of memory running %r under %s: %s", handle.key, tried, _summary(error))
            if len(attempts) > max_retries:
                raise _give_up(manager, handle, attempts, freed, caller_recovers) from error
            released = _free_idle(manager, handle, error)
            freed += released
            stronger = step_down(tried if tried in POLICIES else "resident", manager.device.is_cuda)
            if stronger is None and not released:
                logger.warning("%r: no stronger policy than %s and nothing idle to free", handle.key, tried)
                raise _give_up(manager, handle, attempts, freed, caller_recovers) from error
            policy = stronger or tried
            logger.info("retrying %r with the %s policy (freed %s)", handle.key, policy, format_bytes(released))


def _free_idle(manager: ModelManager, handle: ModelHandle, error: BaseException) -> int:
    """Move idle models off the device; unload them too when RAM ran out or the device is the CPU."""
    freed = manager.free(unload_all=False, keep=(handle.key,)) if manager.device.is_cuda else 0
    if not manager.device.is_cuda or _host_failure(error):
        freed += manager.free(unload_all=True, keep=(handle.key,))
    logger.info("freed %s of idle models for %r", format_bytes(freed), handle.key)
    return freed


def _host_failure(error: BaseException) -> bool:
    if isinstance(error, MemoryError):
        return True
    if isinstance(error, ModelMemoryError):
        return error.where == "RAM"
    return any(phrase in str(error).lower() for phrase in _HOST_MESSAGES)


def _give_up(
    manager: ModelManager, handle: ModelHandle, attempts: list[OomAttempt], freed: int, caller_recovers: bool
) -> ModelOutOfMemoryError:
    ram_used = manager.resident_bytes("cpu") + (0 if manager.device.is_cuda else manager.resident_bytes("device"))
    numbers = {
        "weights": handle.nbytes,
        "device_budget": manager.device_budget_bytes(),
        "device_used": manager.resident_bytes("device"),
        "ram_budget": manager.ram_budget_bytes(),
        "ram_used": ram_used,
        "freed": freed,
    }
    error = ModelOutOfMemoryError(handle.key, tuple(attempts), numbers)
    if not caller_recovers:
        logger.error("%s", error)
    return error


def _summary(error: BaseException) -> str:
    """The error's type and first line (CUDA's messages run on for a paragraph)."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": ")
