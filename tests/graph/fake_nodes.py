"""Small ComfyUI-style fake node classes for graph-layer tests (pure Python: values are ints, strings, lists).

Shared by the validation, cache-key and executor tests. ``make_registry()`` returns a fresh ``NodeRegistry``
holding every class in ``NODE_CLASS_MAPPINGS``.

Summary (inputs -> outputs):

- ``Const``(value: INT widget, default 0, [-1000, 1000]) -> (INT)
- ``FloatConst``(value: FLOAT widget, default 0.5, [0.0, 1.0]) -> (FLOAT)
- ``BoolConst``(value: BOOLEAN widget) -> (BOOLEAN)
- ``Text``(text: STRING widget) -> (STRING)
- ``Pick``(choice: one of ``PICK_CHOICES``) -> (STRING)
- ``Add``(a: INT, b: INT, both forced sockets) -> (INT)
- ``AddOptional``(a: INT socket; optional b: INT socket) -> (INT)  a + (b or 0)
- ``Collect``(value: ``*``) -> ()  output node, ui ``{"values": [value]}``
- ``MakeThing``(value: INT socket) -> (THING)  a ``Thing`` object; ``UseThing``(thing: THING) -> (INT)
- ``Even``(value: INT widget [0, 10]; VALIDATE_INPUTS(value) names it, so the range check is skipped) -> (INT)
- ``ValidateRaises``(value: INT widget; VALIDATE_INPUTS raises ValueError) -> (INT)
- ``NumberIn``(value: custom NUMBER socket; VALIDATE_INPUTS(input_types) accepts INT or FLOAT links) -> (FLOAT)
- ``UniqueTag``(hidden UNIQUE_ID) -> (STRING)  its own node id
- ``Volatile``(NOT_IDEMPOTENT) -> (INT)  counts its calls
- ``Watched``(name: STRING widget; IS_CHANGED returns ``Watched.version``) -> (STRING)
- ``Boom``(value: ``*``) -> (INT)  raises ``RuntimeError`` when run
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from graph.registry import NodeRegistry

PICK_CHOICES = ("red", "green", "blue")


@dataclass(frozen=True)
class Thing:
    """The value behind the custom ``THING`` type."""

    value: int


class _Node:
    FUNCTION = "run"
    CATEGORY = "testing"
    RETURN_TYPES: tuple[str, ...] = ()


class Const(_Node):
    RETURN_TYPES = ("INT",)

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"value": ("INT", {"default": 0, "min": -1000, "max": 1000})}}

    def run(self, value: int) -> tuple[int]:
        return (value,)


class FloatConst(_Node):
    RETURN_TYPES = ("FLOAT",)

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"value": ("FLOAT", {"default": 0.5, "min": 0.0, "max": 1.0, "step": 0.01})}}

    def run(self, value: float) -> tuple[float]:
        return (value,)


class BoolConst(_Node):
    RETURN_TYPES = ("BOOLEAN",)

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"value": ("BOOLEAN", {"default": False})}}

    def run(self, value: bool) -> tuple[bool]:
        return (value,)


class Text(_Node):
    RETURN_TYPES = ("STRING",)

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"text": ("STRING", {"default": "", "multiline": True})}}

    def run(self, text: str) -> tuple[str]:
        return (text,)


class Pick(_Node):
    RETURN_TYPES = ("STRING",)

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"choice": (list(PICK_CHOICES),)}}

    def run(self, choice: str) -> tuple[str]:
        return (choice,)


class Add(_Node):
    RETURN_TYPES = ("INT",)

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"a": ("INT", {"forceInput": True}), "b": ("INT", {"forceInput": True})}}

    def run(self, a: int, b: int) -> tuple[int]:
        return (a + b,)


class AddOptional(_Node):
    RETURN_TYPES = ("INT",)

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"a": ("INT", {"forceInput": True})}, "optional": {"b": ("INT", {"forceInput": True})}}

    def run(self, a: int, b: int | None = None) -> tuple[int]:
        return (a + (b or 0),)


class Collect(_Node):
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"value": ("*",)}}

    def run(self, value: Any) -> dict[str, Any]:
        return {"ui": {"values": [value]}}


class MakeThing(_Node):
    RETURN_TYPES = ("THING",)

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"value": ("INT", {"forceInput": True})}}

    def run(self, value: int) -> tuple[Thing]:
        return (Thing(value),)


class UseThing(_Node):
    RETURN_TYPES = ("INT",)

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"thing": ("THING",)}}

    def run(self, thing: Thing) -> tuple[int]:
        return (thing.value,)


class Even(_Node):
    """Its ``VALIDATE_INPUTS`` names ``value``, so the declared [0, 10] range is not checked for it."""

    RETURN_TYPES = ("INT",)

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"value": ("INT", {"default": 0, "min": 0, "max": 10})}}

    @classmethod
    def VALIDATE_INPUTS(cls, value: int) -> bool | str:
        return True if value % 2 == 0 else f"value {value} is odd"

    def run(self, value: int) -> tuple[int]:
        return (value,)


class ValidateRaises(_Node):
    RETURN_TYPES = ("INT",)

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"value": ("INT", {"default": 0})}}

    @classmethod
    def VALIDATE_INPUTS(cls, value: int) -> bool:
        raise ValueError("validator exploded")

    def run(self, value: int) -> tuple[int]:
        return (value,)


class NumberIn(_Node):
    """Declares a custom ``NUMBER`` socket; its ``VALIDATE_INPUTS`` checks the linked types itself."""

    RETURN_TYPES = ("FLOAT",)

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"value": ("NUMBER",)}}

    @classmethod
    def VALIDATE_INPUTS(cls, input_types: dict[str, str]) -> bool | str:
        received = input_types.get("value")
        return True if received in ("INT", "FLOAT") else f"value must be INT or FLOAT, got {received}"

    def run(self, value: float) -> tuple[float]:
        return (float(value),)


class UniqueTag(_Node):
    RETURN_TYPES = ("STRING",)

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {}, "hidden": {"unique_id": "UNIQUE_ID"}}

    def run(self, unique_id: str) -> tuple[str]:
        return (str(unique_id),)


class Volatile(_Node):
    RETURN_TYPES = ("INT",)
    NOT_IDEMPOTENT = True
    calls: ClassVar[int] = 0

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {}}

    def run(self) -> tuple[int]:
        type(self).calls += 1
        return (type(self).calls,)


class Watched(_Node):
    """``IS_CHANGED`` returns the class attribute ``version``; tests change it (e.g. with monkeypatch)."""

    RETURN_TYPES = ("STRING",)
    version: ClassVar[Any] = 1

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"name": ("STRING", {"default": "a"})}}

    @classmethod
    def IS_CHANGED(cls, name: str) -> Any:
        return cls.version

    def run(self, name: str) -> tuple[str]:
        return (f"{name}@{type(self).version}",)


class Boom(_Node):
    RETURN_TYPES = ("INT",)

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"value": ("*",)}}

    def run(self, value: Any) -> tuple[int]:
        raise RuntimeError("boom")


NODE_CLASS_MAPPINGS: dict[str, type] = {
    "Const": Const,
    "FloatConst": FloatConst,
    "BoolConst": BoolConst,
    "Text": Text,
    "Pick": Pick,
    "Add": Add,
    "AddOptional": AddOptional,
    "Collect": Collect,
    "MakeThing": MakeThing,
    "UseThing": UseThing,
    "Even": Even,
    "ValidateRaises": ValidateRaises,
    "NumberIn": NumberIn,
    "UniqueTag": UniqueTag,
    "Volatile": Volatile,
    "Watched": Watched,
    "Boom": Boom,
}


def make_registry() -> NodeRegistry:
    """A fresh registry with every fake node class registered (fails loudly if one is rejected)."""
    registry = NodeRegistry()
    report = registry.register_mappings(NODE_CLASS_MAPPINGS, python_module="tests.graph.fake_nodes")
    if report.failures:
        raise AssertionError(f"fake nodes rejected: {report.failures}")
    return registry


def node(class_type: str, title: str | None = None, **inputs: Any) -> dict[str, Any]:
    """One API-format node body: ``node("Add", a=["1", 0], b=["2", 0])``."""
    body: dict[str, Any] = {"class_type": class_type, "inputs": inputs}
    if title is not None:
        body["_meta"] = {"title": title}
    return body
