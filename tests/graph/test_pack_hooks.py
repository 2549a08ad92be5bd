"""Packs' ``VALIDATE_INPUTS`` and ``IS_CHANGED`` get the inputs they name: constants, None for linked ones."""

from __future__ import annotations

from typing import Any, ClassVar

from graph.cache_keys import CacheKeys
from graph.prompt import DynamicPrompt, Prompt
from graph.registry import NodeRegistry
from graph.validation import validate_prompt


class Source:
    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"value": ("INT", {"default": 0})}}

    def run(self, value: int) -> tuple[int]:
        return (value,)


class Picky:
    RETURN_TYPES = ()
    FUNCTION = "run"
    OUTPUT_NODE = True
    seen: ClassVar[list[dict[str, Any]]] = []

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"amount": ("INT", {"forceInput": True}), "label": ("STRING", {"default": ""})}}

    @classmethod
    def VALIDATE_INPUTS(cls, amount: Any, label: str) -> bool | str:
        cls.seen.append({"amount": amount, "label": label})
        return True if label else "label must not be empty"

    @classmethod
    def IS_CHANGED(cls, label: str) -> str:
        return label.upper()

    def run(self, amount: int, label: str) -> dict[str, Any]:
        return {"ui": {"text": [f"{label}={amount}"]}}


def registry() -> NodeRegistry:
    registry = NodeRegistry()
    registry.register("Source", Source)
    registry.register("Picky", Picky)
    return registry


def prompt(label: str) -> Prompt:
    return Prompt.parse(
        {
            "1": {"class_type": "Source", "inputs": {"value": 3}},
            "2": {"class_type": "Picky", "inputs": {"amount": ["1", 0], "label": label}},
        }
    )


def test_validate_inputs_gets_none_for_a_linked_input_it_names() -> None:
    Picky.seen.clear()
    assert validate_prompt(prompt("ok"), registry()).ok
    assert Picky.seen == [{"amount": None, "label": "ok"}]
    failed = validate_prompt(prompt(""), registry())
    assert not failed.ok
    assert failed.node_errors["2"]["errors"][0]["type"] == "custom_validation_failed"


def test_is_changed_with_a_narrower_signature_still_keys_the_node() -> None:
    def key(label: str, nonce: str) -> str:
        return CacheKeys(DynamicPrompt(prompt(label)), registry().get, run_nonce=nonce).key("2")

    assert key("a", "run-1") == key("a", "run-2")  # cacheable: the same across runs
    assert key("a", "run-1") != key("b", "run-1")
