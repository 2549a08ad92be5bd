"""Property: any graph of built-in nodes, saved the way ComfyUI's editor saves it (array or object links, reroutes,
primitives, bypassed and muted nodes, notes, groups, a subgraph used once or twice), converts to exactly the API
prompt computed from the graph itself."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as st

from graph.registry import NodeRegistry
from graph.ui_format import convert_ui
from models.folders import ModelFolders
from nodes import register_builtin_nodes
from nodes.folders import Folders
from tests.graph.ui_workflow_strategies import GraphModel, ui_cases

Expected = dict[str, tuple[str, dict[str, Any]]]


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> NodeRegistry:
    """The built-in nodes over empty folders (so file combos offer no choices and take any name)."""
    base = tmp_path_factory.mktemp("builtin")
    registry = NodeRegistry()
    assert not register_builtin_nodes(registry, Folders.under(base), ModelFolders(base / "models")).failures
    return registry


def expected_api(model: GraphModel) -> Expected:
    """Each unmuted node (once per subgraph instance it sits in): widget values, then links to the real source;
    a primitive's value where one feeds; an input fed by a muted node is left out."""
    placement = model.placement
    primitive_values = {target: p.value for p in model.primitives for target in p.targets}
    expected: Expected = {}
    for node in model.nodes.values():
        if node.muted:
            continue
        for instance in placement.copies(node.uid):
            inputs = dict(node.widgets)
            inputs.update({name: value for (uid, name), value in primitive_values.items() if uid == node.uid})
            for edge in model.edges:
                if edge.target != node.uid or model.nodes[edge.source].muted:
                    continue
                source_inner = edge.source in placement.inner_ids
                source_copy = (placement.instances[0] if instance is None else instance) if source_inner else None
                inputs[edge.input] = [placement.api_id(edge.source, source_copy), edge.slot]
            expected[placement.api_id(node.uid, instance)] = (node.class_type, inputs)
    return expected


@settings(max_examples=1000, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_saved_ui_workflow_converts_to_the_graphs_api_prompt(registry: NodeRegistry, data: st.DataObject) -> None:
    case = data.draw(ui_cases(registry))
    conversion = convert_ui(case.workflow, registry)
    actual = {api_id: (node["class_type"], node["inputs"]) for api_id, node in conversion.api.items()}
    assert actual == expected_api(case.model)
    assert conversion.left_over_widgets == []


def _nodes(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    inner = [node for sub in workflow.get("definitions", {}).get("subgraphs", []) for node in sub["nodes"]]
    return workflow["nodes"] + inner


def _two_instances(workflow: dict[str, Any]) -> bool:
    subgraphs = workflow.get("definitions", {}).get("subgraphs", [])
    used = [node for node in workflow["nodes"] if subgraphs and node["type"] == subgraphs[0]["id"]]
    return len(used) == 2 and bool(subgraphs[0]["inputs"]) and bool(subgraphs[0]["outputs"])


def _bypass_fed_by_subgraph_input(workflow: dict[str, Any]) -> bool:
    for subgraph in workflow.get("definitions", {}).get("subgraphs", []):
        bypassed = {node["id"] for node in subgraph["nodes"] if node["mode"] == 4}
        if any(link["origin_id"] == -10 and link["target_id"] in bypassed for link in subgraph["links"]):
            return True
    return False


FEATURES = {
    "bypassed node": lambda w: any(node["mode"] == 4 for node in _nodes(w)),
    "muted node": lambda w: any(node["mode"] == 2 for node in _nodes(w)),
    "reroute node in a subgraph": lambda w: any(n["type"] == "Reroute" for n in _nodes(w)[len(w["nodes"]) :]),
    "primitive feeding two inputs": lambda w: any(
        n["type"] == "PrimitiveNode" and len(n["outputs"][0]["links"]) > 1 for n in _nodes(w)
    ),
    "linked widget input": lambda w: any(
        "widget" in slot and slot["link"] is not None for n in _nodes(w) for slot in n["inputs"]
    ),
    "subgraph used twice": _two_instances,
    "bypassed node fed by a subgraph input": _bypass_fed_by_subgraph_input,
    "native reroute": lambda w: bool(w.get("reroutes")),
    "array links and a subgraph": lambda w: w["version"] == 0.4 and "definitions" in w,
}


@pytest.mark.parametrize("feature", FEATURES)
def test_the_generator_reaches(registry: NodeRegistry, feature: str) -> None:
    """The property is not vacuous: the generator draws each decoration (``find`` raises when it never does)."""
    find(
        ui_cases(registry).map(lambda drawn: FEATURES[feature](drawn.workflow)),  # a bool: cheap to print
        bool,
        settings=settings(max_examples=2000, database=None, deadline=None, phases=[Phase.generate]),
    )
