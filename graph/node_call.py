"""Calling one node: list semantics, execution blockers, and reading what the node returned."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from graph.errors import BlockedOutputError
from graph.spec import NodeSpec


class ExecutionBlocker:
    """Returned as an output value to block the nodes that use it; with a message, output nodes fail with it."""

    def __init__(self, message: str | None = None) -> None:
        self.message = message

    def __repr__(self) -> str:
        return f"ExecutionBlocker({self.message!r})"


class NodeReturnError(TypeError):
    """A node returned something that does not match its declaration."""


@dataclass
class CallResult:
    """What one call of a node's function produced (one item of its input lists)."""

    values: tuple[Any, ...] | None = None
    ui: dict[str, Any] | None = None
    expand: dict[str, Any] | None = None
    blocker: ExecutionBlocker | None = None


@dataclass
class MappedResult:
    """All calls of a node over its input lists."""

    calls: list[CallResult] = field(default_factory=list)

    @property
    def expands(self) -> bool:
        return any(call.expand is not None for call in self.calls)


def call_arguments(spec: NodeSpec, inputs: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """The keyword arguments of each call: one call per list index, shorter lists repeating their last item.

    ``INPUT_IS_LIST`` nodes get the whole lists in one call. Any empty input list means no call at all.
    """
    if spec.input_is_list:
        return [dict(inputs)]
    if any(len(items) == 0 for items in inputs.values()):
        return []
    count = max((len(items) for items in inputs.values()), default=1)
    if count == 1:
        return [{name: items[0] for name, items in inputs.items()}]
    return [{name: items[min(index, len(items) - 1)] for name, items in inputs.items()} for index in range(count)]


def find_blocker(arguments: dict[str, Any], input_is_list: bool) -> ExecutionBlocker | None:
    """The first execution blocker among a call's arguments, if any."""
    for value in arguments.values():
        if isinstance(value, ExecutionBlocker):
            return value
        if input_is_list and isinstance(value, list):
            for item in value:
                if isinstance(item, ExecutionBlocker):
                    return item
    return None


async def map_node(
    spec: NodeSpec, function: Callable[..., Any], inputs: dict[str, list[Any]], between_calls: Callable[[], None]
) -> MappedResult:
    """Call ``function`` once per list item (or once for ``INPUT_IS_LIST``), awaiting async functions.

    Args:
        spec: the node's spec.
        function: the bound node function.
        inputs: every input as a list of items.
        between_calls: run before each call (the executor's interrupt check).
    """
    mapped = MappedResult()
    for arguments in call_arguments(spec, inputs):
        between_calls()
        blocker = find_blocker(arguments, spec.input_is_list)
        if blocker is not None:
            mapped.calls.append(CallResult(blocker=blocker))
            continue
        returned = function(**arguments)
        if inspect.isawaitable(returned):
            returned = await returned
        mapped.calls.append(read_return(spec, returned))
    return mapped


def read_return(spec: NodeSpec, returned: Any) -> CallResult:
    """Interpret a node's return value: a tuple, or ``{"ui", "result", "expand"}``."""
    if isinstance(returned, dict):
        unknown = set(returned) - {"ui", "result", "expand"}
        if unknown:
            raise NodeReturnError(f"{spec.class_type} returned a dict with unknown keys {sorted(unknown)}")
        ui = returned.get("ui")
        if ui is not None and not isinstance(ui, dict):
            raise NodeReturnError(f"{spec.class_type} returned a 'ui' that is not a dict")
        values = returned.get("result")
        expand = returned.get("expand")
        if expand is not None and not isinstance(expand, dict):
            raise NodeReturnError(f"{spec.class_type} returned an 'expand' that is not a graph dict")
        return CallResult(values=_check_values(spec, values, allow_missing=True), ui=ui, expand=expand)
    return CallResult(values=_check_values(spec, returned, allow_missing=False))


def _check_values(spec: NodeSpec, values: Any, *, allow_missing: bool) -> tuple[Any, ...]:
    count = len(spec.output_types)
    if values is None:
        if count == 0 or allow_missing:
            return (None,) * count
        raise NodeReturnError(f"{spec.class_type} returned None but declares {count} output(s)")
    if isinstance(values, ExecutionBlocker):
        return (values,) * count
    if not isinstance(values, (tuple, list)):
        raise NodeReturnError(f"{spec.class_type} must return a tuple of {count} value(s), got {type(values).__name__}")
    if len(values) != count:
        raise NodeReturnError(f"{spec.class_type} returned {len(values)} value(s) but declares {count} output(s)")
    return tuple(values)


def merge_ui(parts: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Merge the UI dicts of several calls: lists under the same key are concatenated."""
    merged: dict[str, Any] = {}
    for part in parts:
        for key, value in part.items():
            if key in merged and isinstance(merged[key], list) and isinstance(value, list):
                merged[key] = merged[key] + value
            else:
                merged[key] = value
    return merged or None


def call_with_known_arguments(function: Callable[..., Any], values: dict[str, Any]) -> Any:
    """Call a pack's ``IS_CHANGED`` / ``VALIDATE_INPUTS`` with what it names: known values, None for the rest.

    Those hooks see only constant inputs; one that names a linked input gets None rather than a TypeError.
    """
    parameters = inspect.signature(function).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return function(**values)
    arguments: dict[str, Any] = {}
    for parameter in parameters:
        if parameter.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.POSITIONAL_ONLY):
            continue
        if parameter.name in values:
            arguments[parameter.name] = values[parameter.name]
        elif parameter.default is inspect.Parameter.empty:
            arguments[parameter.name] = None
    return function(**arguments)


class LinkedItems(list):
    """All items of an output a subgraph produced, standing for one expanded result value."""


def merge_outputs(spec: NodeSpec, calls: list[CallResult]) -> tuple[tuple[list[Any], ...], dict[str, Any] | None]:
    """Concatenate the calls' values per output (``OUTPUT_IS_LIST`` outputs are flattened) and merge their UI."""
    outputs: tuple[list[Any], ...] = tuple([] for _ in spec.output_types)
    for call in calls:
        if call.blocker is not None:
            for items in outputs:
                items.append(call.blocker)
            continue
        for index, value in enumerate(call.values or ()):
            if isinstance(value, LinkedItems) or (spec.output_is_list[index] and isinstance(value, (list, tuple))):
                outputs[index].extend(value)
            else:
                outputs[index].append(value)
    return outputs, merge_ui([call.ui for call in calls if call.ui])


def raise_output_blockers(mapped: MappedResult) -> None:
    """Output nodes fed a blocker that carries a message fail with that message."""
    for call in mapped.calls:
        if call.blocker is not None and call.blocker.message is not None:
            raise BlockedOutputError(call.blocker.message)


def describe_value(value: Any, limit: int = 200) -> str:
    """A short, JSON-safe description of an input value for error events (tensors by shape and dtype)."""
    shape = getattr(value, "shape", None)
    dtype = getattr(value, "dtype", None)
    if shape is not None and dtype is not None:
        return f"{type(value).__name__}(shape={list(shape)}, dtype={dtype})"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
