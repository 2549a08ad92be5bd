"""What the sampling run asks of an accelerator a MODEL carries (``DiffusionModel.accelerations``): to check the
network it will run on, to be applied to the placed network for the run (and removed after it), and to know each
step's sigma while applied."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager
from typing import Protocol

import torch

from models.sampling.model_sampling import ModelSampling

__all__ = ["Acceleration", "AppliedAcceleration", "accelerated_step", "applied_accelerations"]


class AppliedAcceleration(Protocol):
    """An accelerator applied to a network for one run."""

    def step(self, sigma: float) -> AbstractContextManager[None]:
        """The network calls of the step at ``sigma`` run inside this."""


class Acceleration(Protocol):
    """An accelerator's settings, as a node sets them on a MODEL."""

    def describe(self) -> str:
        """E.g. ``"First Block Cache (threshold 0.1, 0.1-1)"``."""

    def check(self, network_class: type, model: str) -> None:
        """``ValueError`` naming the node when it cannot run on networks of ``network_class`` (``model``: the
        model's description)."""

    def applied(self, network: torch.nn.Module, sampling: ModelSampling) -> AbstractContextManager[AppliedAcceleration]:
        """Applied to the placed ``network`` while the block runs; removed after it, even on errors."""


@contextmanager
def applied_accelerations(
    network: torch.nn.Module, accelerations: Sequence[Acceleration], sampling: ModelSampling, model: str
) -> Iterator[list[AppliedAcceleration]]:
    """Every acceleration checked, then applied to ``network`` for the block, in order."""
    for acceleration in accelerations:
        acceleration.check(type(network), model)
    with ExitStack() as stack:
        yield [stack.enter_context(acceleration.applied(network, sampling)) for acceleration in accelerations]


@contextmanager
def accelerated_step(applied: Sequence[AppliedAcceleration], sigma: float) -> Iterator[None]:
    """The step at ``sigma`` inside every applied acceleration's step."""
    with ExitStack() as stack:
        for acceleration in applied:
            stack.enter_context(acceleration.step(sigma))
        yield
