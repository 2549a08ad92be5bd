"""Pure-Python fake nodes and a harness for the executor tests (caching, lazy, lists, expansion, async, errors).

Nodes log what ran to the ``log`` service; ``Harness.run(api)`` validates and executes an API dict.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, ClassVar

from graph import events
from graph.builder import GraphBuilder
from graph.cache import LRUOutputCache
from graph.context import ProgressBar, current_context
from graph.executor import Executor, RunResult
from graph.node_call import ExecutionBlocker
from graph.prompt import Prompt
from graph.registry import NodeRegistry
from graph.validation import validate_prompt

LOG = "log"


def _log(name: str) -> None:
    current_context().service(LOG).append((current_context().node_id, name))


class Num:
    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"value": ("INT", {"default": 0, "min": -(10**9), "max": 10**9})}}

    def run(self, value: int) -> tuple[int]:
        _log("Num")
        return (value,)


class Add:
    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"a": ("INT", {"forceInput": True}), "b": ("INT", {"forceInput": True})}}

    def run(self, a: int, b: int) -> tuple[int]:
        _log("Add")
        return (a + b,)


class Double:
    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"x": ("INT", {"forceInput": True})}}

    def run(self, x: int) -> tuple[int]:
        _log("Double")
        return (2 * x,)


class Show:
    RETURN_TYPES = ()
    FUNCTION = "run"
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"value": ("*",)}}

    def run(self, value: Any) -> dict[str, Any]:
        _log("Show")
        return {"ui": {"values": [value]}}


class Boom:
    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"x": ("INT", {"forceInput": True})}}

    def run(self, x: int) -> tuple[int]:
        _log("Boom")
        raise ValueError(f"cannot handle {x}")


class Quitter:
    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"x": ("INT", {"forceInput": True})}}

    def run(self, x: int) -> tuple[int]:
        raise SystemExit(3)  # a careless pack must not take the server down


class Switch:
    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "choose_first": ("BOOLEAN", {"default": True}),
                "first": ("INT", {"lazy": True, "forceInput": True}),
                "second": ("INT", {"lazy": True, "forceInput": True}),
            }
        }

    def check_lazy_status(self, choose_first: bool, first: Any, second: Any) -> list[str]:
        wanted = "first" if choose_first else "second"
        return [wanted] if (first if choose_first else second) is None else []

    def run(self, choose_first: bool, first: Any, second: Any) -> tuple[int]:
        _log("Switch")
        return (first if choose_first else second,)


class Range:
    RETURN_TYPES = ("INT",)
    OUTPUT_IS_LIST = (True,)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"count": ("INT", {"default": 3, "min": 0})}}

    def run(self, count: int) -> tuple[list[int]]:
        _log("Range")
        return (list(range(count)),)


class Sum:
    RETURN_TYPES = ("INT",)
    INPUT_IS_LIST = True
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"values": ("INT", {"forceInput": True})}}

    def run(self, values: list[int]) -> tuple[int]:
        _log("Sum")
        return (sum(values),)


class Countdown:
    """Doubles ``value`` ``remaining`` times by expanding into Double -> Countdown(remaining - 1): a loop."""

    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"value": ("INT", {"forceInput": True}), "remaining": ("INT", {"default": 0, "min": 0})}}

    def run(self, value: int, remaining: int) -> Any:
        _log("Countdown")
        if remaining == 0:
            return (value,)
        graph = GraphBuilder()
        doubled = graph.node("Double", x=value)
        again = graph.node("Countdown", value=doubled.out(0), remaining=remaining - 1)
        return {"result": (again.out(0),), "expand": graph.finalize()}


class Gate:
    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "x": ("INT", {"forceInput": True}),
                "open": ("BOOLEAN", {"default": True}),
                "message": ("STRING", {"default": ""}),
            }
        }

    def run(self, x: int, open: bool, message: str) -> tuple[Any]:
        _log("Gate")
        return (x if open else ExecutionBlocker(message or None),)


class SlowAsync:
    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"value": ("INT", {"default": 0}), "delay": ("FLOAT", {"default": 0.3})}}

    async def run(self, value: int, delay: float) -> tuple[int]:
        _log("SlowAsync")
        await asyncio.sleep(delay)
        return (value,)


class Steps:
    """Reports progress for ``count`` steps; with ``count`` huge it runs until interrupted."""

    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"count": ("INT", {"default": 3, "min": 1, "max": 10**9})}}

    def run(self, count: int) -> tuple[int]:
        _log("Steps")
        for step in range(1, count + 1):
            if count > 100:
                time.sleep(0.001)
            current_context().report_progress(step, count)
        return (count,)


class PackStyleSteps:
    """Reports progress the way ComfyUI packs do, through ``ProgressBar``."""

    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {}, "hidden": {"unique_id": "UNIQUE_ID"}}

    def run(self, unique_id: str) -> tuple[int]:
        bar = ProgressBar(4, node_id=unique_id)
        bar.update(1)
        bar.update_absolute(3, preview="frame")
        bar.update(5)  # clamped to the total
        return (bar.current,)


class Dice:
    RETURN_TYPES = ("INT",)
    FUNCTION = "run"
    NOT_IDEMPOTENT = True
    rolls: ClassVar[int] = 0

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {}}

    def run(self) -> tuple[int]:
        _log("Dice")
        return (4,)


NODES = {
    cls.__name__: cls
    for cls in (
        Num,
        Add,
        Double,
        Show,
        Boom,
        Quitter,
        PackStyleSteps,
        Switch,
        Range,
        Sum,
        Countdown,
        Gate,
        SlowAsync,
        Steps,
        Dice,
    )
}


def make_registry() -> NodeRegistry:
    registry = NodeRegistry()
    report = registry.register_mappings(NODES)
    assert not report.failures
    return registry


class Harness:
    """An executor with a collecting sink and an execution log, and helpers to run API dicts."""

    def __init__(self, registry: NodeRegistry) -> None:
        self.registry = registry
        self.log: list[tuple[str, str]] = []
        self.sink = events.CollectingSink()
        self.executor = Executor(registry, LRUOutputCache(None), self.sink, services={LOG: self.log})

    def run(self, api: dict[str, Any]) -> RunResult:
        self.log.clear()
        self.sink.events.clear()
        validated = validate_prompt(Prompt.parse(api), self.registry)
        assert validated.ok, validated.node_errors
        return asyncio.run(self.executor.execute(validated.prompt, validated.outputs))

    def ran(self) -> list[str]:
        return [node_id for node_id, _ in self.log]


def num(value: int) -> dict[str, Any]:
    return {"class_type": "Num", "inputs": {"value": value}}


def link(node_id: str, slot: int = 0) -> list[Any]:
    return [node_id, slot]


def two_branches(b: int = 2) -> dict[str, Any]:
    return {
        "a": num(1),
        "b": num(b),
        "sum": {"class_type": "Add", "inputs": {"a": link("a"), "b": link("b")}},
        "show": {"class_type": "Show", "inputs": {"value": link("sum")}},
        "c": num(7),
        "show_c": {"class_type": "Show", "inputs": {"value": link("c")}},
        "unused": {"class_type": "Double", "inputs": {"x": link("c")}},
    }
