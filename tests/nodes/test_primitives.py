"""Primitive nodes: declarations match ComfyUI's and values pass through unchanged."""

from __future__ import annotations

import pytest

from graph.spec import NodeSpec
from nodes import primitives
from nodes.primitives import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS


@pytest.mark.parametrize("class_type", sorted(NODE_CLASS_MAPPINGS))
def test_every_class_is_accepted_by_the_spec_checker(class_type: str) -> None:
    spec = NodeSpec.from_class(class_type, NODE_CLASS_MAPPINGS[class_type])
    assert spec.category == "utils/primitive"
    assert not spec.output_node
    assert class_type in NODE_DISPLAY_NAME_MAPPINGS


@pytest.mark.parametrize(
    ("class_type", "socket", "default", "value"),
    [
        ("PrimitiveInt", "INT", 0, -(2**62)),
        ("PrimitiveFloat", "FLOAT", 0.0, 3.25),
        ("PrimitiveString", "STRING", "", "a cat"),
        ("PrimitiveStringMultiline", "STRING", "", "line 1\nline 2"),
        ("PrimitiveBoolean", "BOOLEAN", False, True),
    ],
)
def test_value_primitives(class_type: str, socket: str, default: object, value: object) -> None:
    node_class = NODE_CLASS_MAPPINGS[class_type]
    spec = NodeSpec.from_class(class_type, node_class)
    assert list(spec.inputs) == ["value"]
    value_input = spec.inputs["value"]
    assert value_input.type == socket and value_input.required
    assert value_input.options["default"] == default
    assert isinstance(value_input.options["default"], type(default))
    assert spec.output_types == (socket,)
    node = node_class()
    assert getattr(node, spec.function)(value=value) == (value,)


def test_int_primitive_has_a_wide_range_and_a_seed_control() -> None:
    spec = NodeSpec.from_class("PrimitiveInt", primitives.PrimitiveInt)
    options = spec.inputs["value"].options
    assert options["min"] <= -(2**63) + 1 and options["max"] >= 2**63 - 1
    assert spec.inputs["value"].has_control_after_generate
    assert [w.name for w in spec.widget_inputs] == ["value"]


def test_multiline_flag_only_on_multiline_string() -> None:
    multi = NodeSpec.from_class("PrimitiveStringMultiline", primitives.PrimitiveStringMultiline)
    single = NodeSpec.from_class("PrimitiveString", primitives.PrimitiveString)
    assert multi.inputs["value"].options.get("multiline") is True
    assert not single.inputs["value"].options.get("multiline")


def test_float_and_bool_have_no_seed_control() -> None:
    for class_type in ("PrimitiveFloat", "PrimitiveBoolean", "PrimitiveString"):
        spec = NodeSpec.from_class(class_type, NODE_CLASS_MAPPINGS[class_type])
        assert not spec.inputs["value"].has_control_after_generate


def test_seed_node() -> None:
    spec = NodeSpec.from_class("PrimitiveSeed", primitives.PrimitiveSeed)
    seed = spec.inputs["seed"]
    assert seed.type == "INT"
    assert (seed.options["default"], seed.options["min"], seed.options["max"]) == (0, 0, 0xFFFFFFFFFFFFFFFF)
    assert seed.has_control_after_generate
    assert spec.output_types == ("INT",) and spec.output_names == ("seed",)
    assert primitives.PrimitiveSeed().execute(seed=0xFFFFFFFFFFFFFFFF) == (0xFFFFFFFFFFFFFFFF,)


def test_object_info_shape() -> None:
    info = NodeSpec.from_class("PrimitiveInt", primitives.PrimitiveInt, display_name="Int").object_info()
    assert info["input"]["required"]["value"][0] == "INT"
    assert info["output"] == ["INT"]
    assert info["display_name"] == "Int"
