"""Content-addressed cache keys: stability, what changes a key, node-id independence, uncacheable nodes, cycles."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from graph.cache_keys import CacheKeys
from graph.errors import GraphError
from graph.prompt import DynamicPrompt, Prompt
from graph.registry import NodeRegistry
from tests.graph import fake_nodes
from tests.graph.fake_nodes import make_registry, node

REPO = Path(__file__).resolve().parents[2]


def keys_of(raw: dict[str, Any], nonce: str = "run-1", registry: NodeRegistry | None = None) -> dict[str, str]:
    """The key of every node of ``raw``, from a fresh ``CacheKeys``."""
    registry = registry or make_registry()
    keys = CacheKeys(DynamicPrompt(Prompt.parse(raw)), registry.get, run_nonce=nonce)
    return {node_id: keys.key(node_id) for node_id in raw}


def sample() -> dict[str, Any]:
    return {
        "1": node("Const", value=1),
        "2": node("Const", value=2),
        "3": node("Add", a=["1", 0], b=["2", 0]),
        "4": node("Collect", value=["3", 0]),
        "5": node("Text", text="sibling"),
        "6": node("Collect", value=["5", 0]),
    }


def test_keys_are_sha256_hex_and_stable_across_instances_and_runs() -> None:
    first = keys_of(sample(), nonce="run-1")
    second = keys_of(sample(), nonce="run-2")
    assert first == second
    for key in first.values():
        assert len(key) == 64 and int(key, 16) >= 0


def test_keys_are_stable_across_processes() -> None:
    script = (
        "import json; from graph.cache_keys import CacheKeys; from graph.prompt import DynamicPrompt, Prompt;"
        "from tests.graph.fake_nodes import make_registry;"
        "from tests.graph.test_cache_keys import sample;"
        "keys = CacheKeys(DynamicPrompt(Prompt.parse(sample())), make_registry().get, run_nonce='other');"
        "print(json.dumps({n: keys.key(n) for n in sample()}))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True, check=True, timeout=60
    )
    assert json.loads(done.stdout) == keys_of(sample())


def test_distinct_nodes_get_distinct_keys() -> None:
    keys = keys_of(sample())
    assert len(set(keys.values())) == len(keys)


def test_changed_constant_changes_the_node_and_everything_downstream_only() -> None:
    before = keys_of(sample())
    changed = sample()
    changed["1"]["inputs"]["value"] = 5
    after = keys_of(changed)
    for node_id in ("1", "3", "4"):  # the node and its descendants
        assert after[node_id] != before[node_id], node_id
    for node_id in ("2", "5", "6"):  # its upstream sibling and an unrelated branch
        assert after[node_id] == before[node_id], node_id


def test_input_order_in_the_json_does_not_matter() -> None:
    forward = {"1": node("Const", value=1), "2": node("Add", a=["1", 0], b=["1", 0])}
    backward = {"1": node("Const", value=1), "2": {"class_type": "Add", "inputs": {"b": ["1", 0], "a": ["1", 0]}}}
    assert keys_of(forward) == keys_of(backward)


def test_which_input_a_link_feeds_matters() -> None:
    raw = {"1": node("Const", value=1), "2": node("Const", value=2), "3": node("Add", a=["1", 0], b=["2", 0])}
    swapped = {**raw, "3": node("Add", a=["2", 0], b=["1", 0])}
    assert keys_of(raw)["3"] != keys_of(swapped)["3"]


def test_link_slot_matters() -> None:
    class Pair:
        RETURN_TYPES = ("INT", "INT")
        FUNCTION = "run"

        @classmethod
        def INPUT_TYPES(cls) -> dict[str, Any]:
            return {"required": {}}

        def run(self) -> tuple[int, int]:
            return (1, 2)

    registry = make_registry()
    registry.register("Pair", Pair)
    first = {"1": {"class_type": "Pair", "inputs": {}}, "2": node("Collect", value=["1", 0])}
    second = {"1": {"class_type": "Pair", "inputs": {}}, "2": node("Collect", value=["1", 1])}
    assert keys_of(first, registry=registry)["2"] != keys_of(second, registry=registry)["2"]


def test_class_and_cache_version_are_part_of_the_key() -> None:
    class ConstV2(fake_nodes.Const):
        CACHE_VERSION = "2"

    registry = make_registry()
    registry.register("ConstCopy", fake_nodes.Const)
    same_inputs = {"1": node("Const", value=1), "2": node("ConstCopy", value=1)}
    keys = keys_of(same_inputs, registry=registry)
    assert keys["1"] != keys["2"]  # the class name is hashed, not just the inputs

    raw = {"1": node("ConstCopy", value=1)}
    before = keys_of(raw, registry=registry)["1"]
    registry.register("ConstCopy", ConstV2, override=True)
    assert keys_of(raw, registry=registry)["1"] != before  # a new CACHE_VERSION invalidates old results


def test_keys_do_not_depend_on_node_ids() -> None:
    renamed = {
        "a": node("Const", value=1),
        "b": node("Const", value=2),
        "sum": node("Add", a=["a", 0], b=["b", 0]),
        "out": node("Collect", value=["sum", 0]),
        "77": node("Text", text="sibling"),
        "78": node("Collect", value=["77", 0]),
    }
    original = keys_of(sample())
    other = keys_of(renamed)
    mapping = {"1": "a", "2": "b", "3": "sum", "4": "out", "5": "77", "6": "78"}
    for old, new in mapping.items():
        assert original[old] == other[new], old


def test_identical_subgraphs_in_one_prompt_share_keys() -> None:
    raw = {
        "1": node("Const", value=4),
        "2": node("Const", value=4),
        "3": node("Add", a=["1", 0], b=["1", 0]),
        "4": node("Add", a=["2", 0], b=["2", 0]),
    }
    keys = keys_of(raw)
    assert keys["1"] == keys["2"] and keys["3"] == keys["4"]


def test_unique_id_hidden_input_makes_the_node_id_matter() -> None:
    first = keys_of({"1": node("UniqueTag"), "2": node("Collect", value=["1", 0])})
    second = keys_of({"9": node("UniqueTag"), "2": node("Collect", value=["9", 0])})
    again = keys_of({"1": node("UniqueTag"), "2": node("Collect", value=["1", 0])}, nonce="another run")
    assert first["1"] != second["9"]
    assert first["2"] != second["2"]  # downstream of it too
    assert first == again  # but it is still cacheable from run to run


def test_not_idempotent_uses_the_run_nonce() -> None:
    raw = {"1": node("Volatile"), "2": node("Collect", value=["1", 0]), "3": node("Const", value=1)}
    run1 = keys_of(raw, nonce="run-1")
    run2 = keys_of(raw, nonce="run-2")
    assert run1["1"] != run2["1"]
    assert run1["2"] != run2["2"]
    assert run1["3"] == run2["3"]
    assert keys_of(raw, nonce="run-1") == run1  # the same run (nonce) gives the same keys


def test_not_idempotent_nodes_in_one_run_differ_by_id() -> None:
    keys = keys_of({"1": node("Volatile"), "2": node("Volatile")})
    assert keys["1"] != keys["2"]


def test_key_is_memoised_within_a_run() -> None:
    registry = make_registry()
    keys = CacheKeys(DynamicPrompt(Prompt.parse({"1": node("Volatile")})), registry.get, run_nonce="n")
    assert keys.key("1") == keys.key("1")


def test_is_changed_result_participates(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = {"1": node("Watched", name="a"), "2": node("Collect", value=["1", 0])}
    monkeypatch.setattr(fake_nodes.Watched, "version", 1)
    v1 = keys_of(raw, nonce="run-1")
    assert keys_of(raw, nonce="run-2") == v1  # the same IS_CHANGED result: cacheable across runs
    monkeypatch.setattr(fake_nodes.Watched, "version", 2)
    v2 = keys_of(raw, nonce="run-1")
    assert v2["1"] != v1["1"] and v2["2"] != v1["2"]
    monkeypatch.setattr(fake_nodes.Watched, "version", {"mtime": 3, "files": ["a", "b"]})
    assert keys_of(raw, nonce="run-1") == keys_of(raw, nonce="run-2")


def test_is_changed_sees_the_constant_inputs() -> None:
    seen: list[dict[str, Any]] = []

    class Spy(fake_nodes.Watched):
        @classmethod
        def IS_CHANGED(cls, **kwargs: Any) -> Any:
            seen.append(kwargs)
            return "same"

    registry = make_registry()
    registry.register("Spy", Spy)
    raw = {"1": node("Text", text="x"), "2": {"class_type": "Spy", "inputs": {"name": "clip.mp4", "extra": ["1", 0]}}}
    keys = CacheKeys(DynamicPrompt(Prompt.parse(raw)), registry.get, run_nonce="n")
    keys.key("2")
    keys.key("2")
    assert seen == [{"name": "clip.mp4"}]  # links are not passed, and it is asked once per run


@pytest.mark.parametrize("verdict", [float("nan"), object(), b"bytes"])
def test_is_changed_nan_or_unhashable_makes_the_node_uncacheable(monkeypatch: pytest.MonkeyPatch, verdict: Any) -> None:
    monkeypatch.setattr(fake_nodes.Watched, "version", verdict)
    raw = {"1": node("Watched", name="a"), "2": node("Collect", value=["1", 0]), "3": node("Const", value=1)}
    run1 = keys_of(raw, nonce="run-1")
    run2 = keys_of(raw, nonce="run-2")
    assert run1["1"] != run2["1"]
    assert run1["2"] != run2["2"]
    assert run1["3"] == run2["3"]


def test_is_changed_exception_makes_the_node_uncacheable() -> None:
    class Broken(fake_nodes.Watched):
        @classmethod
        def IS_CHANGED(cls, name: str) -> Any:
            raise FileNotFoundError(name)

    registry = make_registry()
    registry.register("Broken", Broken)
    raw = {"1": {"class_type": "Broken", "inputs": {"name": "gone.png"}}}
    assert keys_of(raw, nonce="a", registry=registry) != keys_of(raw, nonce="b", registry=registry)


@pytest.mark.parametrize("value", [object(), {1, 2}, b"raw", complex(1, 2)])
def test_non_json_constants_make_the_node_uncacheable(value: Any) -> None:
    raw = {"1": node("Const", value=value), "2": node("Collect", value=["1", 0]), "3": node("Const", value=1)}
    run1 = keys_of(raw, nonce="run-1")
    run2 = keys_of(raw, nonce="run-2")
    assert run1["1"] != run2["1"]
    assert run1["2"] != run2["2"]
    assert run1["3"] == run2["3"]


def test_nested_json_constants_are_cacheable() -> None:
    raw = {"1": node("Collect", value={"a": [1, 2.5, None, True, "x"]})}
    assert keys_of(raw, nonce="a") == keys_of(raw, nonce="b")
    other = {"1": node("Collect", value={"a": [1, 2.5, None, True, "y"]})}
    assert keys_of(raw)["1"] != keys_of(other)["1"]


def test_long_chain_is_iterative_and_linear(monkeypatch: pytest.MonkeyPatch) -> None:
    length = 5000  # far deeper than Python's default recursion limit (1000)
    raw: dict[str, Any] = {"0": node("Const", value=1)}
    for index in range(1, length + 1):
        raw[str(index)] = node("Add", a=[str(index - 1), 0], b=["0", 0])
    computed: list[str] = []
    original = CacheKeys._compute

    def counting(self: CacheKeys, prompt_node: Any) -> str:
        computed.append(prompt_node.id)
        return original(self, prompt_node)

    monkeypatch.setattr(CacheKeys, "_compute", counting)
    registry = make_registry()
    keys = CacheKeys(DynamicPrompt(Prompt.parse(raw)), registry.get, run_nonce="n")
    last = keys.key(str(length))
    assert len(last) == 64
    assert len(computed) == length + 1 and len(set(computed)) == length + 1  # each node hashed once
    assert keys.key(str(length // 2)) and len(computed) == length + 1  # already known: no more work


def test_long_chain_keys_match_a_short_recomputation() -> None:
    raw: dict[str, Any] = {"0": node("Const", value=1)}
    for index in range(1, 101):
        raw[str(index)] = node("Add", a=[str(index - 1), 0], b=["0", 0])
    registry = make_registry()
    bottom_up = CacheKeys(DynamicPrompt(Prompt.parse(raw)), registry.get, run_nonce="n")
    for index in range(101):
        bottom_up.key(str(index))
    top_down = CacheKeys(DynamicPrompt(Prompt.parse(raw)), registry.get, run_nonce="n")
    assert top_down.key("100") == bottom_up.key("100")


def test_two_node_cycle_raises() -> None:
    raw = {"1": node("Add", a=["2", 0], b=["2", 0]), "2": node("Add", a=["1", 0], b=["1", 0])}
    registry = make_registry()
    keys = CacheKeys(DynamicPrompt(Prompt.parse(raw)), registry.get, run_nonce="n")
    with pytest.raises(GraphError, match="cycle"):
        keys.key("1")


def test_self_loop_raises() -> None:
    raw = {"1": node("Add", a=["1", 0], b=["1", 0])}
    registry = make_registry()
    keys = CacheKeys(DynamicPrompt(Prompt.parse(raw)), registry.get, run_nonce="n")
    with pytest.raises(GraphError, match="cycle"):
        keys.key("1")


def test_longer_cycle_behind_a_diamond_raises() -> None:
    raw = {
        "1": node("Const", value=1),
        "2": node("Add", a=["1", 0], b=["4", 0]),
        "3": node("Add", a=["2", 0], b=["1", 0]),
        "4": node("Add", a=["3", 0], b=["1", 0]),
        "5": node("Collect", value=["4", 0]),
    }
    registry = make_registry()
    keys = CacheKeys(DynamicPrompt(Prompt.parse(raw)), registry.get, run_nonce="n")
    with pytest.raises(GraphError, match="cycle"):
        keys.key("5")


def test_diamond_is_not_a_cycle() -> None:
    raw = {
        "1": node("Const", value=1),
        "2": node("Add", a=["1", 0], b=["1", 0]),
        "3": node("Add", a=["1", 0], b=["2", 0]),
        "4": node("Add", a=["2", 0], b=["3", 0]),
    }
    keys = keys_of(raw)
    assert len(set(keys.values())) == 4


def test_missing_source_and_unknown_class_raise() -> None:
    registry = make_registry()
    dangling = CacheKeys(DynamicPrompt(Prompt.parse({"1": node("Collect", value=["9", 0])})), registry.get, "n")
    with pytest.raises(GraphError, match="9"):
        dangling.key("1")
    unknown = CacheKeys(DynamicPrompt(Prompt.parse({"1": node("Nope")})), registry.get, "n")
    with pytest.raises(GraphError, match="Nope"):
        unknown.key("1")
