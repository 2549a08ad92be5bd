"""Prompt validation, per input: ComfyUI's error shapes for missing, linked, typed and custom-validated inputs."""

from __future__ import annotations

from typing import Any

import pytest

from graph.prompt import Prompt
from graph.validation import validate_prompt
from tests.graph.fake_nodes import make_registry, node
from tests.graph.validation_helpers import assert_failed, line_of, only_error, validate

# --- a valid prompt -----------------------------------------------------------------------------------------------


def test_valid_prompt_has_no_errors() -> None:
    raw = {
        "1": node("Const", value=2),
        "2": node("Const", value=3),
        "3": node("Add", a=["1", 0], b=["2", 0]),
        "4": node("Collect", value=["3", 0]),
    }
    result = validate(raw)
    assert result.ok
    assert result.error is None
    assert result.node_errors == {}
    assert result.outputs == ["4"]


def test_integer_node_ids_in_links_are_accepted() -> None:
    raw = {"1": node("Const", value=2), "2": node("Collect", value=[1, 0])}
    result = validate(raw)
    assert result.ok and result.outputs == ["2"]


# --- missing_node_type --------------------------------------------------------------------------------------------


def test_missing_node_type_is_the_top_level_error() -> None:
    raw = {
        "1": node("NoSuchLoader", title="My loader", path="x"),
        "2": node("Collect", value=["1", 0]),
    }
    result = validate(raw)
    assert_failed(result)
    assert result.error is not None
    assert result.error["type"] == "missing_node_type"
    assert "NoSuchLoader" in result.error["message"]
    assert "1" in result.error["details"]
    assert result.error["extra_info"] == {"node_id": "1", "class_type": "NoSuchLoader", "node_title": "My loader"}
    assert result.node_errors["1"]["class_type"] == "NoSuchLoader"
    assert result.node_errors["1"]["dependent_outputs"] == ["2"]


def test_missing_output_node_class_alone_is_missing_node_type() -> None:
    result = validate({"1": node("NoSuchSaver", images=["2", 0]), "2": node("Const", value=1)})
    assert_failed(result)
    assert result.error is not None
    assert result.error["type"] == "missing_node_type"
    assert result.error["extra_info"]["node_id"] == "1"
    assert result.error["extra_info"]["node_title"] == "NoSuchSaver"  # no title: the class name, as ComfyUI does


# --- per-input errors ---------------------------------------------------------------------------------------------


def test_required_input_missing() -> None:
    raw = {"1": node("Const", value=1), "2": node("Add", a=["1", 0]), "3": node("Collect", value=["2", 0])}
    result = validate(raw)
    assert_failed(result)
    error = only_error(result, "2")
    assert error["type"] == "required_input_missing"
    assert error["extra_info"]["input_name"] == "b"
    assert result.node_errors["2"]["class_type"] == "Add"
    assert result.node_errors["2"]["dependent_outputs"] == ["3"]
    line = line_of(result, "2", raw)
    assert "#2" in line and "Add" in line and "'b'" in line and "missing" in line.lower()


def test_missing_optional_input_is_fine() -> None:
    raw = {"1": node("Const", value=1), "2": node("AddOptional", a=["1", 0]), "3": node("Collect", value=["2", 0])}
    result = validate(raw)
    assert result.ok and result.node_errors == {}


def test_optional_input_is_still_type_checked() -> None:
    raw = {
        "1": node("Const", value=1),
        "2": node("Text", text="x"),
        "3": node("AddOptional", a=["1", 0], b=["2", 0]),
        "4": node("Collect", value=["3", 0]),
    }
    error = only_error(validate(raw), "3")
    assert error["type"] == "return_type_mismatch"
    assert error["extra_info"]["input_name"] == "b"


@pytest.mark.parametrize("bad", [["1"], ["1", 0, 0], ["1", "zero"], [None, 0], ["1", True]])
def test_bad_linked_input_malformed_list(bad: list[Any]) -> None:
    raw = {"1": node("Const", value=1), "2": node("Collect", value=bad)}
    result = validate(raw)
    assert_failed(result)
    error = only_error(result, "2")
    assert error["type"] == "bad_linked_input"
    assert error["extra_info"]["input_name"] == "value"
    assert error["extra_info"]["received_value"] == bad
    line = line_of(result, "2", raw)
    assert "#2" in line and "Collect" in line and "'value'" in line


def test_bad_linked_input_to_missing_node() -> None:
    raw = {"2": node("Collect", value=["99", 0])}
    result = validate(raw)
    assert_failed(result)
    error = only_error(result, "2")
    assert error["type"] == "bad_linked_input"
    assert error["extra_info"]["input_name"] == "value"
    assert error["extra_info"]["linked_node"] == ["99", 0]
    assert "99" in error["message"]
    assert result.error is not None and result.error["type"] == "prompt_outputs_failed_validation"


@pytest.mark.parametrize("slot", [1, 5, -1])
def test_bad_linked_input_output_slot_out_of_range(slot: int) -> None:
    raw = {"1": node("Const", value=1), "2": node("Collect", value=["1", slot])}
    result = validate(raw)
    error = only_error(result, "2")
    assert error["type"] == "bad_linked_input"
    assert error["extra_info"]["linked_node"] == ["1", slot]
    assert "#1 Const" in error["message"]
    assert "1 output" in error["message"]


def test_return_type_mismatch() -> None:
    raw = {
        "1": node("Text", text="hi"),
        "2": node("Const", value=1),
        "3": node("Add", a=["1", 0], b=["2", 0]),
        "4": node("Collect", value=["3", 0]),
    }
    result = validate(raw)
    assert_failed(result)
    error = only_error(result, "3")
    assert error["type"] == "return_type_mismatch"
    assert error["extra_info"]["input_name"] == "a"
    assert error["extra_info"]["received_type"] == "STRING"
    assert error["extra_info"]["linked_node"] == ["1", 0]
    assert "STRING" in error["details"] and "INT" in error["details"]
    line = line_of(result, "3", raw)
    assert "#3" in line and "Add" in line and "'a'" in line and "STRING" in line


def test_custom_type_mismatch() -> None:
    raw = {
        "1": node("Const", value=1),
        "2": node("UseThing", thing=["1", 0]),
        "3": node("Collect", value=["2", 0]),
    }
    error = only_error(validate(raw), "2")
    assert error["type"] == "return_type_mismatch"
    assert error["extra_info"]["received_type"] == "INT"


def test_custom_type_link_matches() -> None:
    raw = {
        "1": node("Const", value=1),
        "2": node("MakeThing", value=["1", 0]),
        "3": node("UseThing", thing=["2", 0]),
        "4": node("Collect", value=["3", 0]),
    }
    result = validate(raw)
    assert result.ok and result.node_errors == {}


def test_any_type_input_accepts_every_output() -> None:
    raw = {
        "1": node("Const", value=1),
        "2": node("MakeThing", value=["1", 0]),
        "3": node("Collect", value=["2", 0]),
        "4": node("Text", text="x"),
        "5": node("Collect", value=["4", 0]),
    }
    result = validate(raw)
    assert result.ok and sorted(result.outputs) == ["3", "5"]


def _register_union_nodes() -> Any:
    registry = make_registry()

    class AnyOut:
        RETURN_TYPES = ("*",)
        FUNCTION = "run"

        @classmethod
        def INPUT_TYPES(cls) -> dict[str, Any]:
            return {"required": {}}

        def run(self) -> tuple[Any]:
            return (1,)

    class UnionOut(AnyOut):
        RETURN_TYPES = ("INT,FLOAT",)

    class UnionOutSpaced(AnyOut):
        RETURN_TYPES = ("INT, FLOAT",)

    class UnionIn(AnyOut):
        RETURN_TYPES = ("FLOAT",)

        @classmethod
        def INPUT_TYPES(cls) -> dict[str, Any]:
            return {"required": {"x": ("FLOAT,STRING",)}}

    for cls in (AnyOut, UnionOut, UnionOutSpaced, UnionIn):
        registry.register(cls.__name__, cls)
    return registry


@pytest.mark.parametrize(
    ("source", "consumer", "ok"),
    [
        ("AnyOut", "Add", True),  # a "*" output feeds any input
        ("UnionOut", "Add", True),  # INT,FLOAT overlaps INT
        ("Const", "UnionIn", False),  # INT does not overlap FLOAT,STRING
        ("FloatConst", "UnionIn", True),  # FLOAT is one of FLOAT,STRING
        ("UnionOut", "UnionIn", True),  # INT,FLOAT overlaps FLOAT,STRING
        ("UnionOutSpaced", "UnionIn", True),  # "INT, FLOAT": spaces around names are ignored
        ("Text", "UnionIn", True),
    ],
)
def test_star_and_union_types_match(source: str, consumer: str, ok: bool) -> None:
    registry = _register_union_nodes()
    body: dict[str, Any] = {"Add": {"a": ["1", 0], "b": ["1", 0]}, "UnionIn": {"x": ["1", 0]}}[consumer]
    src_inputs = {"Const": {"value": 1}, "FloatConst": {"value": 0.5}, "Text": {"text": "t"}}.get(source, {})
    raw = {
        "1": {"class_type": source, "inputs": src_inputs},
        "2": {"class_type": consumer, "inputs": body},
        "3": node("Collect", value=["2", 0]),
    }
    result = validate_prompt(Prompt.parse(raw), registry)
    assert result.ok is ok
    if not ok:
        assert result.node_errors["2"]["errors"][0]["type"] == "return_type_mismatch"


@pytest.mark.parametrize("value", ["five", "1e999", "nan", None, [1, 2, 3], {"a": 1}, float("inf")])
def test_invalid_input_type_for_int(value: Any) -> None:
    raw = {"1": node("Const", value=value), "2": node("Collect", value=["1", 0])}
    result = validate(raw)
    assert_failed(result)
    error = only_error(result, "1")
    if isinstance(value, list):  # a list is read as a link, and this one is malformed
        assert error["type"] == "bad_linked_input"
        return
    assert error["type"] == "invalid_input_type"
    assert error["extra_info"]["input_name"] == "value"
    assert error["extra_info"]["received_value"] == value
    assert "INT" in error["message"]
    line = line_of(result, "1", raw)
    assert "#1" in line and "Const" in line and "'value'" in line


def test_invalid_input_type_constant_for_socket_only_type() -> None:
    raw = {"1": node("UseThing", thing="a thing"), "2": node("Collect", value=["1", 0])}
    result = validate(raw)
    error = only_error(result, "1")
    assert error["type"] == "invalid_input_type"
    assert error["extra_info"]["input_name"] == "thing"
    assert "THING" in error["message"]
    line = line_of(result, "1", raw)
    assert "#1" in line and "UseThing" in line and "'thing'" in line and "THING" in line


def test_constant_for_forced_int_socket_is_coerced() -> None:
    # forceInput only changes the editor; a typed-in value in an API prompt is still accepted as ComfyUI does.
    raw = {"1": node("Add", a="2", b=3), "2": node("Collect", value=["1", 0])}
    result = validate(raw)
    assert result.ok
    assert result.prompt.nodes["1"].inputs == {"a": 2, "b": 3}


def test_value_smaller_than_min() -> None:
    raw = {"1": node("Const", value=-1001), "2": node("Collect", value=["1", 0])}
    result = validate(raw)
    assert_failed(result)
    error = only_error(result, "1")
    assert error["type"] == "value_smaller_than_min"
    assert "-1001" in error["message"] and "-1000" in error["message"]
    assert error["extra_info"]["input_name"] == "value"
    assert error["extra_info"]["input_config"] == ["INT", {"default": 0, "min": -1000, "max": 1000}]
    assert error["extra_info"]["received_value"] == -1001
    line = line_of(result, "1", raw)
    assert line.startswith("#1 Const") and "'value'" in line and "smaller than min" in line


def test_value_bigger_than_max() -> None:
    raw = {"1": node("Const", value="2000"), "2": node("Collect", value=["1", 0])}
    error = only_error(validate(raw), "1")
    assert error["type"] == "value_bigger_than_max"
    assert "2000" in error["message"] and "1000" in error["message"]
    assert error["extra_info"]["received_value"] == "2000"


def test_bounds_are_inclusive() -> None:
    raw = {
        "1": node("Const", value=1000),
        "2": node("Collect", value=["1", 0]),
        "3": node("Const", value=-1000),
        "4": node("Collect", value=["3", 0]),
    }
    assert validate(raw).node_errors == {}


def test_float_range() -> None:
    raw = {"1": node("FloatConst", value=1.5), "2": node("Collect", value=["1", 0])}
    assert only_error(validate(raw), "1")["type"] == "value_bigger_than_max"
    raw["1"] = node("FloatConst", value=-0.25)
    assert only_error(validate(raw), "1")["type"] == "value_smaller_than_min"


def test_value_not_in_list() -> None:
    raw = {"1": node("Pick", choice="purple"), "2": node("Collect", value=["1", 0])}
    result = validate(raw)
    assert_failed(result)
    error = only_error(result, "1")
    assert error["type"] == "value_not_in_list"
    assert "purple" in error["details"] and "red" in error["details"]
    assert error["extra_info"]["input_name"] == "choice"
    assert error["extra_info"]["input_config"] == [["red", "green", "blue"]]
    assert error["extra_info"]["received_value"] == "purple"
    line = line_of(result, "1", raw)
    assert "#1" in line and "Pick" in line and "'choice'" in line and "purple" in line


def test_combo_choices_are_read_fresh(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = make_registry()
    raw = {"1": node("Pick", choice="purple"), "2": node("Collect", value=["1", 0])}
    assert not validate_prompt(Prompt.parse(raw), registry).ok
    monkeypatch.setattr("tests.graph.fake_nodes.PICK_CHOICES", ("red", "purple"))
    assert validate_prompt(Prompt.parse(raw), registry).ok


def test_combo_fed_by_a_string_link() -> None:
    raw = {"1": node("Text", text="red"), "2": node("Pick", choice=["1", 0]), "3": node("Collect", value=["2", 0])}
    assert validate(raw).ok


def test_custom_validation_failed() -> None:
    raw = {"1": node("Even", value=3), "2": node("Collect", value=["1", 0])}
    result = validate(raw)
    assert_failed(result)
    error = only_error(result, "1")
    assert error["type"] == "custom_validation_failed"
    assert "value 3 is odd" in error["details"]
    line = line_of(result, "1", raw)
    assert "#1" in line and "Even" in line and "value 3 is odd" in line


def test_custom_validation_receives_coerced_values() -> None:
    raw = {"1": node("Even", value="4"), "2": node("Collect", value=["1", 0])}
    result = validate(raw)
    assert result.ok
    assert result.prompt.nodes["1"].inputs["value"] == 4


def test_validate_inputs_naming_an_input_skips_its_range_check() -> None:
    # Even declares [0, 10] but its VALIDATE_INPUTS names "value": 12 is even, so it passes.
    raw = {"1": node("Even", value=12), "2": node("Collect", value=["1", 0])}
    result = validate(raw)
    assert result.ok, result.node_errors
    # ... while its type is still converted and checked.
    raw["1"] = node("Even", value="twelve")
    assert only_error(validate(raw), "1")["type"] == "invalid_input_type"


def test_validate_inputs_with_kwargs_gets_every_constant_and_keeps_range_checks() -> None:
    seen: list[dict[str, Any]] = []

    class Loose:
        RETURN_TYPES = ("INT",)
        FUNCTION = "run"

        @classmethod
        def INPUT_TYPES(cls) -> dict[str, Any]:
            return {"required": {"value": ("INT", {"min": 0, "max": 10}), "other": ("INT", {"forceInput": True})}}

        @classmethod
        def VALIDATE_INPUTS(cls, **kwargs: Any) -> bool:
            seen.append(kwargs)
            return True

        def run(self, value: int, other: int) -> tuple[int]:
            return (value,)

    registry = make_registry()
    registry.register("Loose", Loose)
    raw = {
        "1": node("Const", value=1),
        "2": node("Loose", value="7", other=["1", 0]),
        "3": node("Collect", value=["2", 0]),
    }
    assert validate_prompt(Prompt.parse(raw), registry).ok
    assert seen == [{"value": 7}]  # coerced constants only; linked inputs are not known yet
    raw["2"] = node("Loose", value=11, other=["1", 0])
    result = validate_prompt(Prompt.parse(raw), registry)
    assert result.node_errors["2"]["errors"][0]["type"] == "value_bigger_than_max"
    assert len(seen) == 1  # the node's own check does not run once the built-in checks failed


def test_exception_during_validation() -> None:
    raw = {"1": node("ValidateRaises", value=1), "2": node("Collect", value=["1", 0])}
    result = validate(raw)
    assert_failed(result)
    error = only_error(result, "1")
    assert error["type"] == "exception_during_validation"
    assert "ValueError" in error["details"] and "validator exploded" in error["details"]
    line = line_of(result, "1", raw)
    assert "#1" in line and "ValidateRaises" in line and "validator exploded" in line


def test_exception_in_input_types_is_reported_on_the_node() -> None:
    registry = make_registry()

    class Flaky:
        RETURN_TYPES = ("INT",)
        FUNCTION = "run"
        broken = False

        @classmethod
        def INPUT_TYPES(cls) -> dict[str, Any]:
            if cls.broken:
                raise OSError("model folder is gone")
            return {"required": {}}

        def run(self) -> tuple[int]:
            return (1,)

    registry.register("Flaky", Flaky)
    Flaky.broken = True
    raw = {"1": {"class_type": "Flaky", "inputs": {}}, "2": node("Collect", value=["1", 0])}
    result = validate_prompt(Prompt.parse(raw), registry)
    assert_failed(result)
    error = only_error(result, "1")
    assert error["type"] == "exception_during_validation"
    assert "model folder is gone" in error["details"]
    assert result.node_errors["1"]["dependent_outputs"] == ["2"]


def test_validate_inputs_with_input_types_replaces_the_type_check() -> None:
    ok = {"1": node("Const", value=1), "2": node("NumberIn", value=["1", 0]), "3": node("Collect", value=["2", 0])}
    result = validate(ok)
    assert result.ok, result.node_errors  # INT into a NUMBER socket: only the node's own check decides
    bad = {"1": node("Text", text="x"), "2": node("NumberIn", value=["1", 0]), "3": node("Collect", value=["2", 0])}
    error = only_error(validate(bad), "2")
    assert error["type"] == "custom_validation_failed"
    assert "got STRING" in error["details"]
