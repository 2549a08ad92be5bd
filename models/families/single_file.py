"""What reading any family's single files takes: the key prefix a release puts its model under, the tensors under
it, shapes read by name with clear errors, and building a diffusers module from a converted state dict without
allocating weights of its own."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from typing import Any

import torch

from models.errors import StateDictError
from models.scaled_fp8 import MARKER
from models.state_dict_checks import check_tensor_shapes

__all__ = ["MAX_LISTED", "StateShapes", "build_from_state_dict", "key_prefix", "unprefixed"]

logger = logging.getLogger(__name__)

MAX_LISTED = 5
"""How many missing or unknown names an error lists."""


def key_prefix(state_dict: Mapping[str, torch.Tensor], identity: str, *companions: str) -> str | None:
    """The prefix of a model's keys (``""``, ``model.diffusion_model.``, ``vae.``, ...): the shortest one under which
    ``identity`` and every one of ``companions`` exist; ``None`` when there is none."""
    prefixes = sorted(
        (key[: -len(identity)] for key in state_dict if key == identity or key.endswith("." + identity)), key=len
    )
    return next((prefix for prefix in prefixes if all(prefix + name in state_dict for name in companions)), None)


def unprefixed(state_dict: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The model's tensors with ``prefix`` removed; others (and the fp8 marker) are dropped."""
    tensors = {key[len(prefix) :]: tensor for key, tensor in state_dict.items() if key.startswith(prefix)}
    tensors.pop(MARKER, None)
    if len(tensors) < len(state_dict):
        logger.debug("ignored %d tensors outside the model prefix %r", len(state_dict) - len(tensors), prefix)
    return tensors


class StateShapes:
    """Shapes of the tensors under a key prefix of a ``family`` diffusion model (``"Wan"``); a missing or misshapen
    one raises ``StateDictError``."""

    def __init__(self, state_dict: Mapping[str, torch.Tensor], prefix: str, family: str) -> None:
        self._state_dict = state_dict
        self._prefix = prefix
        self._family = family

    def has(self, name: str) -> bool:
        return self._prefix + name in self._state_dict

    def get(self, name: str, ndim: int) -> tuple[int, ...]:
        tensor = self._state_dict.get(self._prefix + name)
        if tensor is None:
            raise StateDictError(
                f"a {self._family} diffusion model needs {name}, which is missing: is the file complete?"
            )
        if tensor.dim() != ndim:
            raise StateDictError(f"{name} has shape {tuple(tensor.shape)}; {self._family}'s has {ndim} dimensions")
        return tuple(tensor.shape)

    def top_level_modules(self) -> set[str]:
        prefix = self._prefix
        return {key[len(prefix) :].split(".", 1)[0] for key in self._state_dict if key.startswith(prefix)}

    def count(self, group: str) -> int:
        """How many ``group.N`` blocks there are; a gap in the numbering raises."""
        pattern = re.compile(re.escape(self._prefix + group) + r"\.(\d+)\.")
        indices = {int(match.group(1)) for key in self._state_dict if (match := pattern.match(key))}
        if not indices:
            raise StateDictError(
                f"a {self._family} diffusion model needs {group}.0, which is missing: is the file complete?"
            )
        count = max(indices) + 1
        gaps = sorted(set(range(count)) - indices)
        if gaps:
            listed = ", ".join(f"{group}.{index}" for index in gaps[:MAX_LISTED])
            raise StateDictError(f"{listed} missing (the file has {group} up to {count - 1}): is the file complete?")
        return count


def build_from_state_dict(
    model_class: type,
    config: Mapping[str, Any],
    state_dict: dict[str, torch.Tensor],
    dtype: torch.dtype,
    what: str,
    original_name: Callable[[str], str] = str,
) -> Any:
    """``model_class(**config)`` in eval mode holding ``state_dict``'s tensors (diffusers names), without ever
    allocating weights of its own; ``state_dict`` is emptied as its tensors are cast, one at a time.

    Floating-point tensors become ``dtype``, except in ``model_class._keep_in_fp32_modules``, which stay float32 as
    ``from_pretrained`` keeps them. Missing, unexpected or misshapen tensors raise ``StateDictError`` naming a few
    of each (``original_name`` turns a diffusers name into the file's), prefixed by ``what``.
    """
    from accelerate import init_empty_weights

    with init_empty_weights():
        model = model_class(**config)
    expected = {key: tuple(tensor.shape) for key, tensor in model.state_dict().items()}
    check_tensor_shapes(state_dict, expected, what, original_name)
    keep = frozenset(getattr(model_class, "_keep_in_fp32_modules", None) or ())
    tensors: dict[str, torch.Tensor] = {}
    for key in list(state_dict):
        tensor = state_dict.pop(key)
        if tensor.is_floating_point():
            tensor = tensor.to(torch.float32 if keep.intersection(key.split(".")) else dtype)
        tensors[key] = tensor
    model.load_state_dict(tensors, strict=True, assign=True)
    return model.eval()
