"""Subgraphs in schema-1 UI workflows flatten to ``<instance>:<inner>`` API nodes: inputs flow in through the
definition's input node (-10), outputs come from what feeds its output node (-20), promoted widgets reach the inner
widgets, and bypassed, muted, missing or self-containing subgraphs are handled the way the editor shows them."""

from __future__ import annotations

from typing import Any

import pytest

from graph.errors import WorkflowFormatError
from graph.registry import NodeRegistry
from graph.ui_format import convert_ui, ui_to_api
from tests.graph.ui_fake_nodes import FakeLoader, FakeNode, FakeSave, registry_of

LOOK = "11111111-1111-4111-8111-111111111111"
INNER = "22222222-2222-4222-8222-222222222222"


class FakeTint(FakeNode):
    RETURN_TYPES = ("IMAGE",)

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"image": ("IMAGE",), "amount": ("FLOAT", {"default": 0.5}), "mode": (["add", "mul"],)}}


@pytest.fixture
def registry() -> NodeRegistry:
    return registry_of({"FakeLoader": FakeLoader, "FakeSave": FakeSave, "FakeTint": FakeTint})


def link(link_id: int, origin: int, origin_slot: int, target: int, target_slot: int, type_: str) -> dict:
    return {
        "id": link_id,
        "origin_id": origin,
        "origin_slot": origin_slot,
        "target_id": target,
        "target_slot": target_slot,
        "type": type_,
    }


def node(node_id: int, node_type: str, inputs: list[dict], outputs: list[dict], **extra: Any) -> dict:
    body = {"id": node_id, "type": node_type, "mode": 0, "inputs": inputs, "outputs": outputs, "properties": {}}
    return {**body, **extra}


def slot(name: str, type_: str, link_id: int | None = None, widget: bool = False) -> dict:
    entry: dict[str, Any] = {"name": name, "type": type_, "link": link_id}
    return {**entry, "widget": {"name": name}} if widget else entry


def tint(node_id: int, image_link: int | None, out_links: list[int], amount_link: int | None = None) -> dict:
    inputs = [slot("image", "IMAGE", image_link), slot("amount", "FLOAT", amount_link, widget=True)]
    return node(node_id, "FakeTint", inputs, [slot("IMAGE", "IMAGE")], widgets_values=[0.5, "add"])


def definition(subgraph_id: str, name: str, nodes: list[dict], links: list[dict], **extra: Any) -> dict:
    body = {
        "id": subgraph_id,
        "name": name,
        "version": 1,
        "inputs": [{"id": "in-0", "name": "image", "type": "IMAGE", "linkIds": []}],
        "outputs": [{"id": "out-0", "name": "image", "type": "IMAGE", "linkIds": []}],
        "nodes": nodes,
        "links": links,
    }
    return {**body, **extra}


def instance(node_id: int, subgraph_id: str, in_link: int | None, *, mode: int = 0, **extra: Any) -> dict:
    return node(node_id, subgraph_id, [slot("image", "IMAGE", in_link)], [slot("image", "IMAGE")], mode=mode, **extra)


def root(nodes: list[dict], links: list[dict], definitions: list[dict]) -> dict:
    return {"version": 1, "nodes": nodes, "links": links, "definitions": {"subgraphs": definitions}, "state": {}}


def look_definition(**extra: Any) -> dict:
    """image -> FakeTint(7) -> image."""
    inner = [tint(7, 1, [2])]
    links = [link(1, -10, 0, 7, 0, "IMAGE"), link(2, 7, 0, -20, 0, "IMAGE")]
    return definition(LOOK, "Look", inner, links, **extra)


def outer_graph(subgraph: dict, **instance_extra: Any) -> dict:
    """FakeLoader(1) -> instance(4) -> FakeSave(9)."""
    nodes = [
        node(1, "FakeLoader", [], [slot("IMAGE", "IMAGE"), slot("MASK", "MASK")], widgets_values=["b.png"]),
        instance(4, subgraph.get("id", LOOK), 1, **instance_extra),
        node(9, "FakeSave", [slot("images", "IMAGE", 2)], [], widgets_values=["out"]),
    ]
    links = [link(1, 1, 0, 4, 0, "IMAGE"), link(2, 4, 0, 9, 0, "IMAGE")]
    return root(nodes, links, [subgraph])


def test_instance_flattens_to_prefixed_inner_nodes(registry: NodeRegistry) -> None:
    api = ui_to_api(outer_graph(look_definition()), registry)
    assert api["4:7"]["inputs"] == {"image": ["1", 0], "amount": 0.5, "mode": "add"}
    assert api["9"]["inputs"]["images"] == ["4:7", 0]
    assert set(api) == {"1", "4:7", "9"}


def test_array_links_inside_a_definition_also_work(registry: NodeRegistry) -> None:
    subgraph = look_definition()
    subgraph["links"] = [[1, -10, 0, 7, 0, "IMAGE"], [2, 7, 0, -20, 0, "IMAGE"]]
    assert ui_to_api(outer_graph(subgraph), registry)["9"]["inputs"]["images"] == ["4:7", 0]


def test_definitions_nested_inside_a_definition_are_found(registry: NodeRegistry) -> None:
    inner = look_definition()
    inner["id"] = INNER
    middle = definition(
        LOOK,
        "Middle",
        [instance(3, INNER, 1)],
        [link(1, -10, 0, 3, 0, "IMAGE"), link(2, 3, 0, -20, 0, "IMAGE")],
        definitions={"subgraphs": [inner]},
    )
    api = ui_to_api(outer_graph(middle), registry)
    assert api["4:3:7"]["inputs"]["image"] == ["1", 0]
    assert api["9"]["inputs"]["images"] == ["4:3:7", 0]


def test_input_wired_straight_to_output_passes_through(registry: NodeRegistry) -> None:
    passthrough = definition(LOOK, "Pass", [], [link(1, -10, 0, -20, 0, "IMAGE")])
    api = ui_to_api(outer_graph(passthrough), registry)
    assert api["9"]["inputs"]["images"] == ["1", 0]


def test_promoted_input_widget_without_proxy_widgets_uses_widget_order(registry: NodeRegistry) -> None:
    """Editors before proxyWidgets: each instance input carrying a widget takes widgets_values in order."""
    subgraph = look_definition()
    subgraph["inputs"].append({"id": "in-1", "name": "strength", "type": "FLOAT", "linkIds": [3]})
    subgraph["nodes"] = [tint(7, 1, [2], amount_link=3)]
    subgraph["links"].append(link(3, -10, 1, 7, 1, "FLOAT"))
    workflow = outer_graph(subgraph, widgets_values=[0.25])
    workflow["nodes"][1]["inputs"].append(slot("strength", "FLOAT", None, widget=True))
    assert ui_to_api(workflow, registry)["4:7"]["inputs"]["amount"] == 0.25


def test_proxy_widget_value_overrides_the_inner_widget(registry: NodeRegistry) -> None:
    workflow = outer_graph(look_definition(), properties={"proxyWidgets": [["7", "mode"]]}, widgets_values=["mul"])
    assert ui_to_api(workflow, registry)["4:7"]["inputs"]["mode"] == "mul"


def test_unlinked_subgraph_input_leaves_the_inner_widget_value(registry: NodeRegistry) -> None:
    subgraph = look_definition()
    subgraph["inputs"].append({"id": "in-1", "name": "strength", "type": "FLOAT", "linkIds": [3]})
    subgraph["nodes"] = [tint(7, 1, [2], amount_link=3)]
    subgraph["links"].append(link(3, -10, 1, 7, 1, "FLOAT"))
    assert ui_to_api(outer_graph(subgraph), registry)["4:7"]["inputs"]["amount"] == 0.5


def test_bypassed_instance_passes_its_matching_input_through(registry: NodeRegistry) -> None:
    api = ui_to_api(outer_graph(look_definition(), mode=4), registry)
    assert set(api) == {"1", "9"} and api["9"]["inputs"]["images"] == ["1", 0]


def test_muted_instance_runs_nothing_and_its_consumer_loses_the_input(registry: NodeRegistry) -> None:
    api = ui_to_api(outer_graph(look_definition(), mode=2), registry)
    assert set(api) == {"1", "9"} and "images" not in api["9"]["inputs"]


def test_muted_and_bypassed_nodes_inside_a_definition(registry: NodeRegistry) -> None:
    subgraph = look_definition()
    subgraph["nodes"][0]["mode"] = 4
    assert ui_to_api(outer_graph(subgraph), registry)["9"]["inputs"]["images"] == ["1", 0]
    subgraph["nodes"][0]["mode"] = 2
    api = ui_to_api(outer_graph(subgraph), registry)
    assert "images" not in api["9"]["inputs"] and "4:7" not in api


def test_instance_of_an_undefined_subgraph_stays_a_node_for_validation_to_name(registry: NodeRegistry) -> None:
    workflow = outer_graph(look_definition())
    workflow["definitions"]["subgraphs"] = []
    api = ui_to_api(workflow, registry)
    assert api["4"]["class_type"] == LOOK and api["9"]["inputs"]["images"] == ["4", 0]


def test_subgraph_containing_itself_is_refused_with_its_name(registry: NodeRegistry) -> None:
    looping = definition(
        LOOK, "Ouroboros", [instance(3, LOOK, 1)], [link(1, -10, 0, 3, 0, "IMAGE"), link(2, 3, 0, -20, 0, "IMAGE")]
    )
    with pytest.raises(WorkflowFormatError, match="'Ouroboros' contains itself"):
        ui_to_api(outer_graph(looping), registry)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("id"), "subgraph definition 'Look' has no 'id'"),
        (lambda d: d.update(nodes=None), r"subgraph 'Look' \(1111.*\): 'nodes' must be a list"),
        (lambda d: d.update(inputs=[{"type": "IMAGE"}]), r"subgraph 'Look'.*inputs\[0\] has no name"),
        (lambda d: d.update(links=[[1, -10]]), r"subgraph 'Look'.*links\[0\] must be"),
    ],
)
def test_malformed_definitions_name_the_subgraph(registry: NodeRegistry, change: Any, message: str) -> None:
    subgraph = look_definition()
    change(subgraph)
    with pytest.raises(WorkflowFormatError, match=message):
        ui_to_api(outer_graph(subgraph), registry)


def test_left_over_widget_values_are_reported_with_their_position(registry: NodeRegistry) -> None:
    workflow = outer_graph(look_definition())
    workflow["nodes"][2]["widgets_values"] = ["out", "a newer widget"]
    conversion = convert_ui(workflow, registry)
    (left,) = conversion.left_over_widgets
    assert (left.api_id, left.class_type, left.values) == ("9", "FakeSave", ((1, "a newer widget"),))


def test_unknown_types_nothing_links_to_or_from_are_left_out(registry: NodeRegistry) -> None:
    workflow = outer_graph(look_definition())
    label = node(30, "Label (rgthree)", [], [], properties={"aux_id": "rgthree/rgthree-comfy"})
    linked_unknown = node(31, "VHS_VideoCombine", [slot("images", "IMAGE", 3)], [])
    workflow["nodes"] += [label, linked_unknown]
    workflow["links"].append(link(3, 4, 0, 31, 0, "IMAGE"))
    conversion = convert_ui(workflow, registry)
    assert [source.node.id for source in conversion.unconnected_unknown] == ["30"]
    assert "30" not in conversion.api and conversion.api["31"]["inputs"] == {"images": ["4:7", 0]}
