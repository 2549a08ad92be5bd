"""Helpers shared by the validation tests."""

from __future__ import annotations

from typing import Any

from graph.prompt import Prompt
from graph.validation import ValidationResult, format_node_error, validate_prompt
from tests.graph.fake_nodes import make_registry

ERROR_KEYS = {"type", "message", "details", "extra_info"}


def validate(raw: dict[str, Any], targets: list[str] | None = None) -> ValidationResult:
    return validate_prompt(Prompt.parse(raw), make_registry(), targets)


def only_error(result: ValidationResult, node_id: str) -> dict[str, Any]:
    """The single error of ``node_id``, after checking the node_errors entry has ComfyUI's shape."""
    entry = result.node_errors[node_id]
    assert set(entry) == {"errors", "dependent_outputs", "class_type"}
    assert len(entry["errors"]) == 1, entry["errors"]
    error = entry["errors"][0]
    assert set(error) == ERROR_KEYS
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["extra_info"], dict)
    return error


def line_of(result: ValidationResult, node_id: str, raw: dict[str, Any]) -> str:
    return format_node_error(Prompt.parse(raw), node_id, result.node_errors[node_id])


def assert_failed(result: ValidationResult) -> None:
    assert not result.ok
    assert result.outputs == []
    assert result.error is not None and set(result.error) == ERROR_KEYS
