"""Map a UI node's ``widgets_values`` onto its class's widget inputs.

The editor saves widget values as a list in the order of the class's widget inputs (required, then optional). Two
kinds of extra entries sit between them: the ``control_after_generate`` setting right after a seed's value
(``"fixed"``, ``"randomize"``, ...) and the upload button's value (``"image"``) after an image or video combo.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from graph.spec import COMBO_TYPE, UPLOAD_BUTTON_VALUE, InputSpec

CONTROL_VALUES = frozenset({"fixed", "increment", "decrement", "randomize"})


@dataclass(frozen=True)
class WidgetValues:
    """Values by input name, and the saved values no input of ours took, with their list index (or object key)."""

    values: dict[str, Any]
    left_over: tuple[tuple[int | str, Any], ...] = ()


def map_widget_values(raw: list[Any] | Mapping[str, Any], widgets: list[InputSpec]) -> WidgetValues:
    """Map saved widget values onto ``widgets`` (the spec's widget inputs), skipping control and upload values."""
    if isinstance(raw, Mapping):
        names = {spec.name for spec in widgets}
        left_over = tuple((key, value) for key, value in raw.items() if key not in names)
        return WidgetValues({spec.name: raw[spec.name] for spec in widgets if spec.name in raw}, left_over)
    values: dict[str, Any] = {}
    position = 0
    for index, spec in enumerate(widgets):
        if position >= len(raw):
            break
        values[spec.name] = raw[position]
        position += 1
        if position < len(raw) and _is_control_value(spec, raw[position], widgets[index + 1 :]):
            position += 1
        if position < len(raw) and spec.has_upload_button and raw[position] in (UPLOAD_BUTTON_VALUE, None):
            position += 1  # the upload button's value (workflows saved before it existed have none)
    return WidgetValues(values, tuple((index, raw[index]) for index in range(position, len(raw))))


def _is_control_value(spec: InputSpec, value: Any, following: list[InputSpec]) -> bool:
    """Whether ``value`` (right after ``spec``'s value) is a control_after_generate setting, not the next widget."""
    if spec.type not in ("INT", "FLOAT") or not isinstance(value, str) or value not in CONTROL_VALUES:
        return False
    if spec.has_control_after_generate:
        return True
    upcoming = following[0] if following else None
    return not (upcoming is not None and upcoming.type == COMBO_TYPE and value in (upcoming.choices or ()))
