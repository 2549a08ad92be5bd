"""Prompt validation, whole prompt: cycles, outputs, coercion, dropping invalid outputs, targets, messages."""

from __future__ import annotations

from typing import Any

import pytest

from graph.prompt import Prompt
from graph.validation import format_node_error
from tests.graph.fake_nodes import node
from tests.graph.validation_helpers import assert_failed, line_of, only_error, validate


def test_dependency_cycle_between_two_nodes() -> None:
    raw = {
        "1": node("Add", a=["2", 0], b=["2", 0]),
        "2": node("Add", a=["1", 0], b=["1", 0]),
        "3": node("Collect", value=["1", 0]),
    }
    result = validate(raw)
    assert_failed(result)
    for node_id in ("1", "2"):
        error = only_error(result, node_id)
        assert error["type"] == "dependency_cycle"
        assert result.node_errors[node_id]["dependent_outputs"] == ["3"]
    assert "3" not in result.node_errors
    assert result.error is not None and result.error["type"] == "prompt_outputs_failed_validation"


def test_dependency_cycle_self_loop() -> None:
    raw = {"1": node("Add", a=["1", 0], b=["1", 0]), "2": node("Collect", value=["1", 0])}
    result = validate(raw)
    assert_failed(result)
    error = only_error(result, "1")
    assert error["type"] == "dependency_cycle"
    assert "1" in error["details"]
    assert set(result.node_errors) == {"1"}


def test_node_feeding_a_cycle_is_not_itself_in_the_cycle() -> None:
    raw = {
        "0": node("Const", value=1),
        "1": node("Add", a=["0", 0], b=["2", 0]),
        "2": node("Add", a=["1", 0], b=["0", 0]),
        "3": node("Collect", value=["2", 0]),
    }
    result = validate(raw)
    assert set(result.node_errors) == {"1", "2"}


def test_prompt_no_outputs() -> None:
    result = validate({"1": node("Const", value=1), "2": node("Add", a=["1", 0], b=["1", 0])})
    assert_failed(result)
    assert result.error is not None
    assert result.error["type"] == "prompt_no_outputs"
    assert result.node_errors == {}


def test_empty_prompt_has_no_outputs() -> None:
    result = validate({})
    assert result.error is not None and result.error["type"] == "prompt_no_outputs"


def test_prompt_outputs_failed_validation_details_name_every_failure() -> None:
    raw = {
        "1": node("Const", value=5000),
        "2": node("Collect", value=["1", 0]),
        "3": node("Pick", choice="nope"),
        "4": node("Collect", value=["3", 0]),
    }
    result = validate(raw)
    assert_failed(result)
    assert result.error is not None
    assert result.error["type"] == "prompt_outputs_failed_validation"
    assert result.error["message"] == "Prompt outputs failed validation"
    assert "#1 Const" in result.error["details"] and "'value'" in result.error["details"]
    assert "#3 Pick" in result.error["details"] and "'choice'" in result.error["details"]
    assert result.node_errors["1"]["dependent_outputs"] == ["2"]
    assert result.node_errors["3"]["dependent_outputs"] == ["4"]


def test_several_errors_on_one_node_are_all_reported() -> None:
    raw = {"1": node("Text", text="x"), "2": node("Add", a=["1", 0]), "3": node("Collect", value=["2", 0])}
    result = validate(raw)
    types = [e["type"] for e in result.node_errors["2"]["errors"]]
    assert sorted(types) == ["required_input_missing", "return_type_mismatch"]
    lines = line_of(result, "2", raw).splitlines()
    assert len(lines) == 2
    assert all(line.startswith("#2 Add") for line in lines)


# --- coercion -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("class_type", "name", "given", "expected"),
    [
        ("Const", "value", "5", 5),
        ("Const", "value", " 7 ", 7),
        ("Const", "value", 3.0, 3),
        ("Const", "value", True, 1),
        ("FloatConst", "value", "0.5", 0.5),
        ("FloatConst", "value", 1, 1.0),
        ("BoolConst", "value", "true", True),
        ("BoolConst", "value", "False", False),
        ("BoolConst", "value", 1, True),
        ("BoolConst", "value", 0, False),
        ("Text", "text", 1, "1"),
        ("Text", "text", 2.5, "2.5"),
    ],
)
def test_coercion_is_reflected_in_result_prompt(class_type: str, name: str, given: Any, expected: Any) -> None:
    raw = {"1": {"class_type": class_type, "inputs": {name: given}}, "2": node("Collect", value=["1", 0])}
    result = validate(raw)
    assert result.ok, result.node_errors
    value = result.prompt.nodes["1"].inputs[name]
    assert value == expected
    assert type(value) is type(expected)
    assert result.prompt.raw["1"]["inputs"][name] == given  # the submitted JSON is kept as it was


@pytest.mark.parametrize(("class_type", "given"), [("BoolConst", "maybe"), ("BoolConst", 2), ("Text", {"a": 1})])
def test_uncoercible_values_are_invalid_input_type(class_type: str, given: Any) -> None:
    name = "text" if class_type == "Text" else "value"
    raw = {"1": {"class_type": class_type, "inputs": {name: given}}, "2": node("Collect", value=["1", 0])}
    assert only_error(validate(raw), "1")["type"] == "invalid_input_type"


def test_coercion_leaves_links_alone() -> None:
    raw = {"1": node("Const", value="5"), "2": node("Collect", value=["1", 0])}
    result = validate(raw)
    assert result.prompt.nodes["2"].inputs["value"] == ("1", 0)


# --- dropping invalid outputs, targets ----------------------------------------------------------------------------


def test_invalid_outputs_are_dropped_and_valid_ones_still_run() -> None:
    raw = {
        "1": node("Const", value=5),
        "2": node("Collect", value=["1", 0]),
        "3": node("Const", value=99999),
        "4": node("Add", a=["3", 0], b=["1", 0]),
        "5": node("Collect", value=["4", 0]),
        "6": node("Collect", value=["3", 0]),
    }
    result = validate(raw)
    assert result.ok
    assert result.error is None
    assert result.outputs == ["2"]
    assert set(result.node_errors) == {"3"}
    assert sorted(result.node_errors["3"]["dependent_outputs"]) == ["5", "6"]
    assert result.node_errors["3"]["errors"][0]["type"] == "value_bigger_than_max"


def test_shared_failing_ancestor_lists_each_output_once() -> None:
    raw = {
        "1": node("Const", value=99999),
        "2": node("Add", a=["1", 0], b=["1", 0]),
        "3": node("Add", a=["2", 0], b=["1", 0]),
        "4": node("Collect", value=["3", 0]),
    }
    result = validate(raw)
    assert result.node_errors["1"]["dependent_outputs"] == ["4"]


def test_unreachable_nodes_are_not_validated() -> None:
    raw = {
        "1": node("Const", value=1),
        "2": node("Collect", value=["1", 0]),
        "3": node("Const", value=99999),  # feeds no output
    }
    result = validate(raw)
    assert result.ok and result.node_errors == {}


def test_missing_class_off_the_path_of_a_valid_output_does_not_block_it() -> None:
    # Unlike ComfyUI, which refuses the whole prompt, a missing class only drops the outputs that depend on it.
    raw = {
        "1": node("Const", value=1),
        "2": node("Collect", value=["1", 0]),
        "3": node("NoSuchNode"),
        "4": node("Collect", value=["3", 0]),
    }
    result = validate(raw)
    assert result.ok and result.outputs == ["2"]
    assert result.node_errors["3"]["errors"][0]["type"] == "missing_node_type"
    assert result.node_errors["3"]["dependent_outputs"] == ["4"]


def test_targets_restrict_outputs() -> None:
    raw = {
        "1": node("Const", value=1),
        "2": node("Collect", value=["1", 0]),
        "3": node("Const", value=99999),
        "4": node("Collect", value=["3", 0]),
        "5": node("Collect", value=["1", 0]),
    }
    result = validate(raw, targets=["2"])
    assert result.ok and result.outputs == ["2"]
    assert result.node_errors == {}  # node 3 feeds no target, so it is not checked
    result = validate(raw, targets=["4"])
    assert not result.ok
    assert result.error is not None and result.error["type"] == "prompt_outputs_failed_validation"
    assert result.node_errors["3"]["dependent_outputs"] == ["4"]
    result = validate(raw, targets=["2", "5"])
    assert sorted(result.outputs) == ["2", "5"]


def test_targets_ignore_non_output_and_unknown_nodes() -> None:
    raw = {"1": node("Const", value=1), "2": node("Collect", value=["1", 0])}
    result = validate(raw, targets=["1", "42"])
    assert result.error is not None and result.error["type"] == "prompt_no_outputs"
    assert validate(raw, targets=[2]).outputs == ["2"]  # type: ignore[list-item]


# --- format_node_error --------------------------------------------------------------------------------------------


def test_format_node_error_uses_title_and_input() -> None:
    raw = {"7": node("Const", title="Frame count", value=-5000), "8": node("Collect", value=["7", 0])}
    result = validate(raw)
    line = line_of(result, "7", raw)
    assert line == "#7 Const \"Frame count\": input 'value': Value -5000 smaller than min of -1000"


def test_format_node_error_for_node_missing_from_prompt() -> None:
    entry = {
        "errors": [{"type": "x", "message": "Something broke", "details": "why", "extra_info": {}}],
        "dependent_outputs": [],
        "class_type": "Gone",
    }
    assert format_node_error(Prompt.parse({}), "9", entry) == "#9 Gone: Something broke (why)"
