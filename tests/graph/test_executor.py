"""The executor with pure-Python nodes: caching, lazy inputs, lists, expansion, blocking, async, interrupt, errors."""

from __future__ import annotations

import threading
import time

import pytest

from graph import events
from graph.registry import NodeRegistry
from tests.graph.executor_harness import Harness, link, make_registry, num, two_branches


@pytest.fixture
def registry() -> NodeRegistry:
    return make_registry()


@pytest.fixture
def harness(registry: NodeRegistry) -> Harness:
    return Harness(registry)


def test_runs_what_outputs_need_and_reports_ui(harness: Harness) -> None:
    result = harness.run(two_branches())
    assert result.status == "success"
    assert result.ui_outputs == {"show": {"values": [3]}, "show_c": {"values": [7]}}
    assert "unused" not in harness.ran()
    assert sorted(result.executed) == ["a", "b", "c", "show", "show_c", "sum"]
    kinds = [e.TYPE for e in harness.sink.events]
    assert kinds[:2] == ["execution_start", "execution_cached"] and kinds[-1] == "execution_success"
    assert kinds.index("executing") < kinds.index("executed")


def test_identical_rerun_executes_nothing_and_replays_ui(harness: Harness) -> None:
    harness.run(two_branches())
    result = harness.run(two_branches())
    assert harness.ran() == [] and result.executed == []
    assert result.ui_outputs == {"show": {"values": [3]}, "show_c": {"values": [7]}}
    cached_event = harness.sink.of_type(events.ExecutionCached)[0]
    assert {"show", "show_c"} <= set(cached_event.nodes)
    assert {e.node_id for e in harness.sink.of_type(events.Executed)} == {"show", "show_c"}
    kinds = [e.TYPE for e in harness.sink.events]
    assert kinds.index("execution_cached") < kinds.index("executed")


def test_changed_widget_reruns_exactly_its_downstream(harness: Harness) -> None:
    harness.run(two_branches(b=2))
    result = harness.run(two_branches(b=5))
    assert sorted(result.executed) == ["b", "show", "sum"]
    assert result.ui_outputs["show"] == {"values": [6]}


def test_lazy_input_that_is_not_chosen_never_runs(harness: Harness) -> None:
    api = {
        "ok": num(3),
        "bad": {"class_type": "Boom", "inputs": {"x": link("ok")}},
        "pick": {"class_type": "Switch", "inputs": {"choose_first": True, "first": link("ok"), "second": link("bad")}},
        "show": {"class_type": "Show", "inputs": {"value": link("pick")}},
    }
    result = harness.run(api)
    assert result.status == "success" and "bad" not in harness.ran()
    assert result.ui_outputs["show"] == {"values": [3]}
    api["pick"]["inputs"]["choose_first"] = False
    failed = harness.run(api)
    assert failed.status == "error" and failed.error is not None and failed.error.node_id == "bad"


def test_lazy_input_served_from_cache(harness: Harness) -> None:
    api = {
        "x": num(4),
        "y": num(9),
        "double": {"class_type": "Double", "inputs": {"x": link("y")}},
        "pick": {
            "class_type": "Switch",
            "inputs": {"choose_first": False, "first": link("x"), "second": link("double")},
        },
        "show": {"class_type": "Show", "inputs": {"value": link("pick")}},
        "keep": {"class_type": "Add", "inputs": {"a": link("double"), "b": link("x")}},
        "show_keep": {"class_type": "Show", "inputs": {"value": link("keep")}},
    }
    harness.run(api)
    api["show"]["inputs"]["value"] = link("pick")
    api["pick"]["inputs"]["first"] = link("y")  # pick's key changes; its lazy input 'double' is cached
    result = harness.run(api)
    assert sorted(result.executed) == ["pick", "show"]
    assert result.ui_outputs["show"] == {"values": [18]}


def test_list_semantics(harness: Harness) -> None:
    api = {
        "range": {"class_type": "Range", "inputs": {"count": 3}},
        "double": {"class_type": "Double", "inputs": {"x": link("range")}},
        "show_each": {"class_type": "Show", "inputs": {"value": link("double")}},
        "sum": {"class_type": "Sum", "inputs": {"values": link("range")}},
        "show_sum": {"class_type": "Show", "inputs": {"value": link("sum")}},
        "ten": num(10),
        "add": {"class_type": "Add", "inputs": {"a": link("range"), "b": link("ten")}},
        "show_add": {"class_type": "Show", "inputs": {"value": link("add")}},
    }
    result = harness.run(api)
    assert result.ui_outputs["show_each"] == {"values": [0, 2, 4]}
    assert result.ui_outputs["show_sum"] == {"values": [3]}
    assert result.ui_outputs["show_add"] == {"values": [10, 11, 12]}
    assert harness.ran().count("double") == 3 and harness.ran().count("sum") == 1


def test_empty_list_runs_nothing_downstream(harness: Harness) -> None:
    api = {
        "range": {"class_type": "Range", "inputs": {"count": 0}},
        "double": {"class_type": "Double", "inputs": {"x": link("range")}},
        "show": {"class_type": "Show", "inputs": {"value": link("double")}},
    }
    result = harness.run(api)
    assert result.status == "success"
    assert "double" not in harness.ran() and "show" not in harness.ran()


def test_loop_by_expansion(harness: Harness) -> None:
    api = {
        "one": num(1),
        "loop": {"class_type": "Countdown", "inputs": {"value": link("one"), "remaining": 5}},
        "show": {"class_type": "Show", "inputs": {"value": link("loop")}},
    }
    result = harness.run(api)
    assert result.status == "success"
    assert result.ui_outputs["show"] == {"values": [32]}
    ran = harness.ran()
    assert ran.count("one") == 1 and sum(1 for n in ran if n.startswith("loop.")) == 10  # 5 x (Double + Countdown)
    executing = [e for e in harness.sink.of_type(events.Executing) if e.node_id and e.node_id.startswith("loop.")]
    assert executing and all(e.display_node_id == "loop" for e in executing)
    again = harness.run(api)
    assert again.executed == [] and again.ui_outputs["show"] == {"values": [32]}
    api["loop"]["inputs"]["remaining"] = 6
    assert harness.run(api).ui_outputs["show"] == {"values": [64]}


def test_execution_blocker_silently_stops_downstream(harness: Harness) -> None:
    api = {
        "x": num(5),
        "gate": {"class_type": "Gate", "inputs": {"x": link("x"), "open": False, "message": ""}},
        "double": {"class_type": "Double", "inputs": {"x": link("gate")}},
        "show": {"class_type": "Show", "inputs": {"value": link("double")}},
    }
    result = harness.run(api)
    assert result.status == "success"
    assert "double" not in harness.ran() and "show" not in harness.ran()
    assert "show" not in result.ui_outputs
    api["gate"]["inputs"]["open"] = True
    assert harness.run(api).ui_outputs["show"] == {"values": [10]}


def test_execution_blocker_with_message_fails_the_output_node(harness: Harness) -> None:
    api = {
        "x": num(5),
        "gate": {"class_type": "Gate", "inputs": {"x": link("x"), "open": False, "message": "no frames to save"}},
        "show": {"class_type": "Show", "inputs": {"value": link("gate")}},
    }
    result = harness.run(api)
    assert result.status == "error" and result.error is not None
    assert result.error.node_id == "show" and "no frames to save" in result.error.exception_message


def test_async_nodes_run_concurrently(harness: Harness) -> None:
    api = {
        "slow1": {"class_type": "SlowAsync", "inputs": {"value": 1, "delay": 0.4}},
        "slow2": {"class_type": "SlowAsync", "inputs": {"value": 2, "delay": 0.4}},
        "sum": {"class_type": "Add", "inputs": {"a": link("slow1"), "b": link("slow2")}},
        "show": {"class_type": "Show", "inputs": {"value": link("sum")}},
    }
    started = time.perf_counter()
    result = harness.run(api)
    elapsed = time.perf_counter() - started
    assert result.ui_outputs["show"] == {"values": [3]}
    assert elapsed < 0.75, f"two 0.4 s async nodes took {elapsed:.2f} s: they did not overlap"


def test_progress_events_are_forwarded(harness: Harness) -> None:
    api = {
        "steps": {"class_type": "Steps", "inputs": {"count": 3}},
        "show": {"class_type": "Show", "inputs": {"value": link("steps")}},
    }
    harness.run(api)
    progress = harness.sink.of_type(events.Progress)
    assert [(p.node_id, p.value, p.max) for p in progress] == [("steps", 1, 3), ("steps", 2, 3), ("steps", 3, 3)]
    assert progress[0].message() == {"value": 1, "max": 3, "prompt_id": progress[0].prompt_id, "node": "steps"}


def test_pack_style_progress_bar_reports_through_the_context(harness: Harness) -> None:
    api = {
        "bar": {"class_type": "PackStyleSteps", "inputs": {}},
        "show": {"class_type": "Show", "inputs": {"value": ["bar", 0]}},
    }
    result = harness.run(api)
    progress = harness.sink.of_type(events.Progress)
    assert [(p.node_id, p.value, p.max, p.preview) for p in progress] == [
        ("bar", 1, 4, None),
        ("bar", 3, 4, "frame"),
        ("bar", 4, 4, None),
    ]
    assert result.ui_outputs["show"] == {"values": [4]}


def test_interrupt_stops_the_run_and_the_engine_stays_usable(harness: Harness) -> None:
    api = {
        "steps": {"class_type": "Steps", "inputs": {"count": 10**6}},
        "show": {"class_type": "Show", "inputs": {"value": link("steps")}},
    }
    timer = threading.Timer(0.2, harness.executor.interrupt.set)
    timer.start()
    started = time.perf_counter()
    result = harness.run(api)
    assert time.perf_counter() - started < 5
    assert result.status == "interrupted"
    interrupted = harness.sink.of_type(events.ExecutionInterrupted)
    assert len(interrupted) == 1 and interrupted[0].node_id == "steps"
    assert harness.run(two_branches()).status == "interrupted"  # the flag stays set until the host clears it
    harness.executor.interrupt.clear()
    assert harness.run(two_branches()).status == "success"


def test_node_exception_becomes_an_error_event_and_engine_stays_usable(harness: Harness) -> None:
    api = {
        "x": num(41),
        "boom": {"class_type": "Boom", "inputs": {"x": link("x")}},
        "show": {"class_type": "Show", "inputs": {"value": link("boom")}},
    }
    result = harness.run(api)
    assert result.status == "error" and result.error is not None
    error = result.error
    assert (error.node_id, error.node_type, error.exception_type) == ("boom", "Boom", "builtins.ValueError")
    assert error.exception_message == "cannot handle 41"
    assert error.current_inputs == {"x": ["41"]}
    assert any("cannot handle" in line for line in error.traceback)
    assert error.executed == ["x"]
    assert harness.sink.of_type(events.ExecutionFailed) == [error]
    assert harness.run(two_branches()).status == "success"


def test_not_idempotent_node_runs_every_time(harness: Harness) -> None:
    api = {
        "dice": {"class_type": "Dice", "inputs": {}},
        "show": {"class_type": "Show", "inputs": {"value": link("dice")}},
    }
    harness.run(api)
    second = harness.run(api)
    assert "dice" in second.executed and "show" in second.executed


def test_node_calling_sys_exit_is_an_error_not_an_exit(harness: Harness) -> None:
    api = {
        "x": num(1),
        "quit": {"class_type": "Quitter", "inputs": {"x": link("x")}},
        "show": {"class_type": "Show", "inputs": {"value": link("quit")}},
    }
    result = harness.run(api)
    assert result.status == "error" and result.error is not None
    assert (result.error.node_id, result.error.exception_type) == ("quit", "builtins.SystemExit")
