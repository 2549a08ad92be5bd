"""Checks of one constant input value against its declared type and options, as ComfyUI coerces them."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from graph.spec import ANY_TYPE, COMBO_TYPE, InputSpec

_TRUE_WORDS = frozenset({"true", "1", "yes", "on"})
_FALSE_WORDS = frozenset({"false", "0", "no", "off", ""})


@dataclass(frozen=True)
class ValueProblem:
    """Why a constant value was refused: one of ComfyUI's per-input error types, a message and details."""

    type: str
    message: str
    details: str


def coerce_constant(spec: InputSpec, value: Any, *, check_options: bool = True) -> tuple[Any, ValueProblem | None]:
    """Return ``(coerced value, None)`` or ``(value, problem)`` for a constant given to input ``spec``.

    Args:
        spec: the declared input.
        value: the literal from the prompt.
        check_options: False when the node's own ``VALIDATE_INPUTS`` takes over min/max/choices checks.
    """
    kind = spec.type
    if kind == COMBO_TYPE:
        if check_options and spec.choices is not None and value not in spec.choices:
            shown = ", ".join(repr(c) for c in spec.choices[:20]) + (", ..." if len(spec.choices) > 20 else "")
            return value, ValueProblem(
                "value_not_in_list", "Value not in list", f"{spec.name}: {value!r} not in [{shown}]"
            )
        return value, None
    converter = _CONVERTERS.get(kind)
    if converter is None:
        if kind == ANY_TYPE or "," in kind:
            return value, None
        return value, ValueProblem(
            "invalid_input_type",
            f"Input '{spec.name}' takes {kind} from a linked node, not a typed-in value",
            f"{spec.name}, received {type(value).__name__} {_short(value)}",
        )
    try:
        coerced = converter(value)
    except (TypeError, ValueError, OverflowError) as exc:
        return value, ValueProblem(
            "invalid_input_type",
            f"Failed to convert an input value to a {kind} value",
            f"{spec.name}, {_short(value)}, {exc}",
        )
    if check_options and kind in ("INT", "FLOAT"):
        problem = _range_problem(spec, coerced)
        if problem is not None:
            return value, problem
    return coerced, None


def _range_problem(spec: InputSpec, value: float) -> ValueProblem | None:
    low, high = spec.options.get("min"), spec.options.get("max")
    if low is not None and value < low:
        return ValueProblem("value_smaller_than_min", f"Value {value} smaller than min of {low}", f"{spec.name}")
    if high is not None and value > high:
        return ValueProblem("value_bigger_than_max", f"Value {value} bigger than max of {high}", f"{spec.name}")
    return None


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value} is not a finite number")
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            return _to_int(float(text))
    if isinstance(value, int):
        return value
    raise TypeError(f"{type(value).__name__} is not a number")


def _to_float(value: Any) -> float:
    if isinstance(value, (int, float, str)):
        result = float(value)
        if math.isnan(result):
            raise ValueError("NaN is not a usable number")
        return result
    raise TypeError(f"{type(value).__name__} is not a number")


def _to_str(value: Any) -> str:
    if isinstance(value, (str, int, float, bool)):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not text")


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE_WORDS | _FALSE_WORDS:
        return value.strip().lower() in _TRUE_WORDS
    raise ValueError(f"{_short(value)} is not true or false")


_CONVERTERS = {"INT": _to_int, "FLOAT": _to_float, "STRING": _to_str, "BOOLEAN": _to_bool}


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def types_match(received: str, expected: str) -> bool:
    """Whether an output of type ``received`` may feed an input of type ``expected`` (``*`` and unions ``A,B``)."""
    if received == expected or ANY_TYPE in (received, expected):
        return True
    if expected == COMBO_TYPE:
        return received in (COMBO_TYPE, "STRING")
    return bool(_type_names(received) & _type_names(expected))


def _type_names(union: str) -> set[str]:
    return {name.strip() for name in union.split(",")}
