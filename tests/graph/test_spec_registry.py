"""Node specs and the registry: declaration checks, duplicates, pack loading, object_info, import hygiene."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from graph.errors import DuplicateNodeError, NodeDefinitionError
from graph.registry import LoadReport, NodeRegistry
from graph.spec import NodeSpec
from tests.graph import fake_nodes
from tests.graph.fake_nodes import make_registry

REPO = Path(__file__).resolve().parents[2]


class Good:
    """Scales a number."""

    RETURN_TYPES = ("INT", "STRING")
    RETURN_NAMES = ("number", "label")
    FUNCTION = "run"
    CATEGORY = "testing/math"
    DESCRIPTION = "Multiplies by a factor."

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "value": ("INT", {"default": 1, "min": 0, "max": 10, "step": 1}),
                "mode": (["fast", "exact"], {"default": "fast"}),
            },
            "optional": {"factor": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 4.0}), "thing": ("THING",)},
            "hidden": {"unique_id": "UNIQUE_ID", "prompt": "PROMPT"},
        }

    def run(self, **kwargs: Any) -> tuple[int, str]:
        return (1, "x")


def subclass(**attributes: Any) -> type:
    """A variant of ``Good`` with some class attributes replaced."""
    return type("Variant", (Good,), attributes)


def with_inputs(inputs: dict[str, Any]) -> type:
    return subclass(INPUT_TYPES=classmethod(lambda cls: inputs))


# --- NodeSpec.from_class ------------------------------------------------------------------------------------------


def test_good_class_builds_a_spec() -> None:
    spec = NodeSpec.from_class("Good", Good)
    assert spec.class_type == "Good"
    assert spec.output_types == ("INT", "STRING")
    assert spec.output_names == ("number", "label")
    assert spec.output_is_list == (False, False)
    assert spec.function == "run"
    assert spec.input_order == {
        "required": ("value", "mode"),
        "optional": ("factor", "thing"),
        "hidden": ("unique_id", "prompt"),
    }
    assert spec.inputs["mode"].type == "COMBO" and spec.inputs["mode"].choices == ("fast", "exact")
    assert spec.inputs["value"].required and not spec.inputs["factor"].required
    assert spec.inputs["unique_id"].type == "UNIQUE_ID" and spec.inputs["unique_id"].section == "hidden"
    assert [i.name for i in spec.widget_inputs] == ["value", "mode", "factor"]
    assert spec.display_name == "Good"
    assert spec.python_module == __name__
    assert not spec.runs_async and not spec.output_node and not spec.has_validate_inputs


def _assert_rejected(node_class: Any, *words: str, class_type: str = "Bad") -> NodeDefinitionError:
    with pytest.raises(NodeDefinitionError) as caught:
        NodeSpec.from_class(class_type, node_class)
    error = caught.value
    assert error.class_type == class_type
    assert f"'{class_type}'" in str(error)
    for word in words:
        assert word in str(error), (word, str(error))
    return error


def test_missing_function_is_rejected() -> None:
    _assert_rejected(subclass(FUNCTION=None), "FUNCTION")


def test_function_that_is_not_a_method_is_rejected() -> None:
    _assert_rejected(subclass(FUNCTION="nowhere"), "FUNCTION", "nowhere")
    _assert_rejected(subclass(FUNCTION="CATEGORY"), "FUNCTION", "CATEGORY")  # an attribute, not callable
    _assert_rejected(subclass(FUNCTION=3), "FUNCTION")


@pytest.mark.parametrize(
    "options",
    [
        {"default": 11, "min": 0, "max": 10},
        {"default": -1, "min": 0},
        {"default": 5.5, "max": 5},
        {"min": 10, "max": 0},
        {"min": "zero"},
        {"default": True},
        {"step": float("nan")},
    ],
)
def test_bad_numeric_options_are_rejected(options: dict[str, Any]) -> None:
    _assert_rejected(with_inputs({"required": {"value": ("INT", options)}}), "'value'")
    _assert_rejected(with_inputs({"optional": {"ratio": ("FLOAT", options)}}), "'ratio'")


def test_numeric_options_on_other_types_are_not_checked() -> None:
    NodeSpec.from_class("Ok", with_inputs({"required": {"name": ("STRING", {"default": "a", "min": 5})}}))


def test_return_names_length_mismatch_is_rejected() -> None:
    _assert_rejected(subclass(RETURN_NAMES=("only_one",)), "RETURN_NAMES")


def test_output_is_list_length_mismatch_is_rejected() -> None:
    _assert_rejected(subclass(OUTPUT_IS_LIST=(True,)), "OUTPUT_IS_LIST")


@pytest.mark.parametrize(
    ("attributes", "word"),
    [
        ({"RETURN_NAMES": 5}, "RETURN_NAMES"),
        ({"OUTPUT_IS_LIST": True}, "OUTPUT_IS_LIST"),
        ({"RETURN_TYPES": "INT"}, "RETURN_TYPES"),
        ({"RETURN_TYPES": ("INT", 3)}, "RETURN_TYPES"),
    ],
)
def test_malformed_output_declarations_are_rejected(attributes: dict[str, Any], word: str) -> None:
    _assert_rejected(subclass(**attributes), word)


def test_input_types_raising_is_rejected() -> None:
    def explode(cls: type) -> dict[str, Any]:
        raise FileNotFoundError("models/upscale_models")

    error = _assert_rejected(subclass(INPUT_TYPES=classmethod(explode)), "INPUT_TYPES", "FileNotFoundError")
    assert isinstance(error.__cause__, FileNotFoundError)


@pytest.mark.parametrize(
    ("node_class", "word"),
    [
        (subclass(INPUT_TYPES=None), "INPUT_TYPES"),
        (with_inputs(["not", "a", "dict"]), "dict"),  # type: ignore[arg-type]
        (with_inputs({"required": ["value"]}), "required"),
        (with_inputs({"required": {"value": 5}}), "'value'"),
        (with_inputs({"required": {"value": ()}}), "'value'"),
        (with_inputs({"required": {"value": ("",)}}), "'value'"),
        (with_inputs({"required": {"value": ("INT",)}, "optional": {"value": ("INT",)}}), "twice"),
    ],
)
def test_bad_input_declarations_are_rejected(node_class: type, word: str) -> None:
    _assert_rejected(node_class, word)


def test_not_a_class_is_rejected() -> None:
    _assert_rejected(Good(), "not a class")


def test_flags_are_read() -> None:
    class Flags(Good):
        OUTPUT_NODE = True
        NOT_IDEMPOTENT = True
        INPUT_IS_LIST = True
        OUTPUT_IS_LIST = (True, False)
        DEPRECATED = True
        FUNCTION = "arun"

        async def arun(self, **kwargs: Any) -> tuple[int, str]:
            return (1, "x")

        @classmethod
        def IS_CHANGED(cls, **kwargs: Any) -> str:
            return ""

        @classmethod
        def VALIDATE_INPUTS(cls, **kwargs: Any) -> bool:
            return True

        def check_lazy_status(self, **kwargs: Any) -> list[str]:
            return []

    spec = NodeSpec.from_class("Flags", Flags)
    assert spec.output_node and spec.not_idempotent and spec.input_is_list and spec.deprecated
    assert spec.output_is_list == (True, False)
    assert spec.runs_async and spec.has_is_changed and spec.has_validate_inputs and spec.has_lazy_check
    assert spec.validate_inputs_takes_all

    class AsyncLazyCheck(Good):
        async def check_lazy_status(self, **kwargs: Any) -> list[str]:
            return []

        @classmethod
        def VALIDATE_INPUTS(cls, value: int, input_types: dict[str, str]) -> bool:
            return True

    lazy = NodeSpec.from_class("AsyncLazyCheck", AsyncLazyCheck)
    assert lazy.runs_async  # an async check_lazy_status is awaited too, so the node runs as a task
    assert lazy.validate_inputs_names == {"value", "input_types"} and not lazy.validate_inputs_takes_all
    assert not NodeSpec.from_class("Good", Good).runs_async


# --- registry -----------------------------------------------------------------------------------------------------


def test_duplicate_registration_raises_unless_override() -> None:
    registry = NodeRegistry()
    registry.register("Good", Good, python_module="pack_a")
    with pytest.raises(DuplicateNodeError, match="Good") as caught:
        registry.register("Good", subclass(CATEGORY="other"), python_module="pack_b")
    assert "pack_a" in str(caught.value)
    assert registry.get("Good").category == "testing/math"  # type: ignore[union-attr]
    replacement = subclass(CATEGORY="other")
    spec = registry.register("Good", replacement, python_module="pack_b", override=True)
    assert registry.get("Good") is spec
    assert spec.node_class is replacement and spec.python_module == "pack_b"
    assert len(registry) == 1 and list(registry) == ["Good"] and "Good" in registry


def test_failed_registration_leaves_no_entry() -> None:
    registry = NodeRegistry()
    with pytest.raises(NodeDefinitionError):
        registry.register("Bad", subclass(FUNCTION="nowhere"))
    assert "Bad" not in registry and registry.get("Bad") is None


def test_register_mappings_collects_failures() -> None:
    registry = NodeRegistry()
    registry.register("Taken", Good, python_module="core")
    report = registry.register_mappings(
        {
            "Fine": Good,
            "NoFunction": subclass(FUNCTION=None),
            "Taken": Good,
            "Raises": subclass(INPUT_TYPES=classmethod(lambda cls: 1 / 0)),
            "WeirdNames": subclass(RETURN_NAMES=5),
            "AlsoFine": fake_nodes.Const,
        },
        {"Fine": "Fine Node"},
        python_module="custom_nodes.pack",
    )
    assert isinstance(report, LoadReport)
    assert report.registered == ["Fine", "AlsoFine"]
    assert set(report.failures) == {"NoFunction", "Taken", "Raises", "WeirdNames"}
    assert "FUNCTION" in report.failures["NoFunction"]
    assert "already registered" in report.failures["Taken"]
    assert "ZeroDivisionError" in report.failures["Raises"]
    assert registry.get("Fine").display_name == "Fine Node"  # type: ignore[union-attr]
    assert registry.get("Fine").python_module == "custom_nodes.pack"  # type: ignore[union-attr]
    assert registry.get("AlsoFine").display_name == "AlsoFine"  # type: ignore[union-attr]
    assert registry.get("Taken").python_module == "core"  # type: ignore[union-attr]
    assert "NoFunction" not in registry


def test_fake_node_registry_is_complete() -> None:
    registry = make_registry()
    assert sorted(registry) == sorted(fake_nodes.NODE_CLASS_MAPPINGS)
    assert registry.get("Collect").output_node  # type: ignore[union-attr]
    assert registry.get("UseThing").inputs["thing"].type == "THING"  # type: ignore[union-attr]


# --- object_info --------------------------------------------------------------------------------------------------


def test_object_info_shape() -> None:
    registry = NodeRegistry()
    registry.register("Good", Good, display_name="Good Node", python_module="custom_nodes.good")
    info = registry.object_info()
    assert list(info) == ["Good"]
    entry = info["Good"]
    assert entry == registry.object_info("Good")["Good"]
    assert entry["input"] == {
        "required": {
            "value": ["INT", {"default": 1, "min": 0, "max": 10, "step": 1}],
            "mode": [["fast", "exact"], {"default": "fast"}],
        },
        "optional": {"factor": ["FLOAT", {"default": 1.0, "min": 0.0, "max": 4.0}], "thing": ["THING"]},
        "hidden": {"unique_id": ["UNIQUE_ID"], "prompt": ["PROMPT"]},
    }
    assert entry["input_order"] == {
        "required": ["value", "mode"],
        "optional": ["factor", "thing"],
        "hidden": ["unique_id", "prompt"],
    }
    assert entry["output"] == ["INT", "STRING"]
    assert entry["output_is_list"] == [False, False]
    assert entry["output_name"] == ["number", "label"]
    assert entry["name"] == "Good"
    assert entry["display_name"] == "Good Node"
    assert entry["description"] == "Multiplies by a factor."
    assert entry["python_module"] == "custom_nodes.good"
    assert entry["category"] == "testing/math"
    assert entry["output_node"] is False
    assert "deprecated" not in entry and "experimental" not in entry


def test_object_info_minimal_node_and_flags() -> None:
    registry = make_registry()
    collect = registry.object_info("Collect")["Collect"]
    assert collect["input"] == {"required": {"value": ["*"]}}
    assert collect["input_order"] == {"required": ["value"]}
    assert collect["output"] == [] and collect["output_is_list"] == [] and collect["output_name"] == []
    assert collect["output_node"] is True
    assert collect["python_module"] == "tests.graph.fake_nodes"
    assert collect["description"] == ""

    registry.register("Old", subclass(DEPRECATED=True, EXPERIMENTAL=True, OUTPUT_TOOLTIPS=("n", "l")))
    old = registry.object_info("Old")["Old"]
    assert old["deprecated"] is True and old["experimental"] is True
    assert old["output_tooltips"] == ["n", "l"]


def test_object_info_unknown_class_is_empty() -> None:
    assert make_registry().object_info("Nope") == {}


def test_object_info_is_json_serialisable() -> None:
    import json

    text = json.dumps(make_registry().object_info())
    assert "Const" in json.loads(text)


def test_combo_choices_are_read_fresh_on_each_call(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = make_registry()
    assert registry.object_info("Pick")["Pick"]["input"]["required"]["choice"] == [["red", "green", "blue"]]
    monkeypatch.setattr(fake_nodes, "PICK_CHOICES", ("clip_a.mp4", "clip_b.mp4"))
    assert registry.object_info("Pick")["Pick"]["input"]["required"]["choice"] == [["clip_a.mp4", "clip_b.mp4"]]
    assert registry.object_info()["Pick"]["input"]["required"]["choice"] == [["clip_a.mp4", "clip_b.mp4"]]


def test_combo_declared_with_options_key() -> None:
    spec = NodeSpec.from_class("C", with_inputs({"required": {"mode": ("COMBO", {"options": ["a", "b"]})}}))
    assert spec.inputs["mode"].choices == ("a", "b")
    assert spec.inputs["mode"].raw() == ["COMBO", {"options": ["a", "b"]}]


def test_object_info_skips_a_class_whose_input_types_starts_failing() -> None:
    class Flaky(Good):
        broken = False

        @classmethod
        def INPUT_TYPES(cls) -> dict[str, Any]:
            if cls.broken:
                raise OSError("folder is gone")
            return {"required": {}}

    registry = make_registry()
    registry.register("Flaky", Flaky)
    Flaky.broken = True
    info = registry.object_info()
    assert "Flaky" not in info and "Const" in info


# --- import hygiene -----------------------------------------------------------------------------------------------


def test_graph_modules_do_not_import_torch_or_aiohttp() -> None:
    code = (
        "import graph.executor, graph.validation, graph.ui_format, graph.workflow_file, graph.cache, graph.cache_keys;"
        "import sys;"
        "heavy = [m for m in ('torch', 'aiohttp') if m in sys.modules];"
        "assert not heavy, heavy"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
