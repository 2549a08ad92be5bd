"""What the executor keeps in memory: only reusable outputs in the cache, intermediates released during a run."""

from __future__ import annotations

import asyncio
import gc
import weakref
from typing import Any

from graph.cache import LRUOutputCache
from graph.context import current_context
from graph.executor import Executor
from graph.prompt import Prompt
from graph.registry import NodeRegistry
from graph.validation import validate_prompt
from tests.graph.executor_harness import LOG, link, make_registry, num


def test_unreused_intermediates_are_not_kept_in_the_cache() -> None:
    registry = make_registry()
    cache = LRUOutputCache(None)
    executor = Executor(registry, cache, services={LOG: []})
    chain = {"n": num(1)}
    for index in range(5):
        chain[f"d{index}"] = {"class_type": "Double", "inputs": {"x": link("n" if index == 0 else f"d{index - 1}")}}
    chain["show"] = {"class_type": "Show", "inputs": {"value": link("d4")}}
    validated = validate_prompt(Prompt.parse(chain), registry)
    asyncio.run(executor.execute(validated.prompt, validated.outputs))
    assert len(cache) == 1  # only the output node: a single-input chain is recomputed whenever it changes
    everything = Executor(registry, LRUOutputCache(None), services={LOG: []}, cache_all_outputs=True)
    asyncio.run(everything.execute(validated.prompt, validated.outputs))
    assert len(everything.cache) == 7  # type: ignore[arg-type]


class Payload:
    """A stand-in for a big tensor: the test watches it through a weak reference."""


class Produce:
    RETURN_TYPES = ("PAYLOAD",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {}, "optional": {"previous": ("PAYLOAD",)}}

    def run(self, previous: Payload | None = None) -> tuple[Payload]:
        payload = Payload()
        current_context().service("refs").append(weakref.ref(payload))
        return (payload,)


class CountAlive:
    RETURN_TYPES = ()
    FUNCTION = "run"
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"payload": ("PAYLOAD",)}}

    def run(self, payload: Payload) -> dict[str, Any]:
        gc.collect()
        alive = sum(ref() is not None for ref in current_context().service("refs"))
        return {"ui": {"alive": [alive]}}


def test_intermediate_outputs_are_released_during_the_run() -> None:
    registry = NodeRegistry()
    registry.register_mappings({"Produce": Produce, "CountAlive": CountAlive})
    refs: list[weakref.ref[Payload]] = []
    executor = Executor(registry, LRUOutputCache(None), services={"refs": refs})
    api: dict[str, Any] = {"p0": {"class_type": "Produce", "inputs": {}}}
    for index in range(1, 20):
        api[f"p{index}"] = {"class_type": "Produce", "inputs": {"previous": [f"p{index - 1}", 0]}}
    api["count"] = {"class_type": "CountAlive", "inputs": {"payload": ["p19", 0]}}
    validated = validate_prompt(Prompt.parse(api), registry)
    result = asyncio.run(executor.execute(validated.prompt, validated.outputs))
    assert len(refs) == 20
    assert result.ui_outputs["count"] == {"alive": [1]}  # only the payload being counted is still held
