"""One check shared by the state-dict loaders: do the tensors a file holds fit the model built from its config?"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch

from models.errors import StateDictError

__all__ = ["check_tensor_shapes"]

MAX_LISTED = 4


def check_tensor_shapes(
    found: Mapping[str, torch.Tensor],
    expected: Mapping[str, tuple[int, ...]],
    what: str,
    original_name: Callable[[str], str] = str,
) -> None:
    """Raise ``StateDictError`` listing the missing, unexpected and misshapen tensors (a few of each, by the names
    ``original_name`` gives them: the file's names when the keys were converted), prefixed by ``what``."""
    missing = [original_name(key) for key in expected if key not in found]
    unexpected = [original_name(key) for key in found if key not in expected]
    misshapen = [
        f"{original_name(key)} is {tuple(tensor.shape)}, expected {tuple(expected[key])}"
        for key, tensor in found.items()
        if key in expected and tuple(tensor.shape) != tuple(expected[key])
    ]
    problems = [
        f"{len(names)} {label} ({'; '.join(names[:MAX_LISTED])}{', ...' if len(names) > MAX_LISTED else ''})"
        for label, names in (("missing", missing), ("unexpected", unexpected), ("misshapen", misshapen))
        if names
    ]
    if problems:
        raise StateDictError(f"{what}: tensors do not fit: " + "; ".join(problems))
