"""UI-format workflows convert to API prompts: widgets, links, virtual, muted and bypassed nodes."""

from __future__ import annotations

from typing import Any

import pytest

from graph.errors import WorkflowFormatError
from graph.prompt import Link, Prompt
from graph.registry import NodeRegistry
from graph.ui_format import ui_to_api
from tests.graph.ui_fake_nodes import FakeLoader, FakeNode, FakeSave, registry_of


class FakeImageOp(FakeNode):
    RETURN_TYPES = ("IMAGE",)

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {"image": ("IMAGE",), "amount": ("FLOAT", {"default": 1.0})},
            "optional": {"mask": ("MASK",), "label": ("STRING", {"default": ""})},
        }


class FakeSampler(FakeNode):
    RETURN_TYPES = ("IMAGE",)

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "image": ("IMAGE",),
                "seed": ("INT", {"default": 0}),
                "steps": ("INT", {"default": 20}),
                "cfg": ("FLOAT", {"default": 7.0}),
                "sampler_name": (["euler", "ddim"],),
            }
        }


class FakeNoise(FakeNode):
    RETURN_TYPES = ("NOISE",)

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "noise": ("INT", {"default": 0, "control_after_generate": True}),
                "kind": (["gaussian", "fixed"],),
            }
        }


class FakeFloatThenInt(FakeNode):
    RETURN_TYPES = ("FLOAT",)

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"amount": ("FLOAT", {"default": 0.0}), "count": ("INT", {"default": 1})}}


class FakeIntThenCombo(FakeNode):
    RETURN_TYPES = ("INT",)

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"value": ("INT", {"default": 0}), "policy": (["fixed", "other"],)}}


class FakeSeedThenCombo(FakeNode):
    RETURN_TYPES = ("INT",)

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"seed": ("INT", {"default": 0}), "policy": (["randomize", "keep"],)}}


@pytest.fixture
def registry() -> NodeRegistry:
    classes = (FakeLoader, FakeImageOp, FakeSampler, FakeNoise, FakeFloatThenInt, FakeIntThenCombo, FakeSeedThenCombo)
    return registry_of({cls.__name__: cls for cls in (*classes, FakeSave)})


def node(node_id: int, node_type: str, widgets: Any = None, inputs: Any = (), outputs: Any = (), **extra: Any) -> dict:
    body = {"id": node_id, "type": node_type, "pos": [0, 0], "size": [100, 50], "flags": {}, "order": node_id}
    body.update({"mode": 0, "inputs": list(inputs), "outputs": list(outputs), "properties": {}})
    body.update(extra)
    if widgets is not None:
        body["widgets_values"] = widgets
    return body


def socket(name: str, type_: str, link: int | None = None, widget: bool = False) -> dict:
    entry: dict[str, Any] = {"name": name, "type": type_, "link": link}
    if widget:
        entry["widget"] = {"name": name}
    return entry


def out(name: str, type_: str, links: list[int] | None = None, slot: int = 0) -> dict:
    return {"name": name, "type": type_, "links": links or [], "slot_index": slot}


def workflow(nodes: list[dict], links: list[Any]) -> dict:
    return {
        "last_node_id": max((n["id"] for n in nodes), default=0),
        "last_link_id": len(links),
        "nodes": nodes,
        "links": links,
        "groups": [],
        "config": {},
        "extra": {},
        "version": 0.4,
    }


def loader(node_id: int = 1, links: list[int] | None = None) -> dict:
    return node(node_id, "FakeLoader", ["a.png", "image"], outputs=[out("IMAGE", "IMAGE", links), out("MASK", "MASK")])


def save(node_id: int, link: int | None) -> dict:
    return node(node_id, "FakeSave", ["clip"], inputs=[socket("images", "IMAGE", link)])


def test_widget_values_follow_spec_order_and_trailing_values_are_ignored(registry: NodeRegistry) -> None:
    op = node(2, "FakeImageOp", [0.25, "hello"], inputs=[socket("image", "IMAGE", 1)], title="Blend it")
    api = ui_to_api(workflow([loader(links=[1]), op], [[1, 1, 0, 2, 0, "IMAGE"]]), registry)
    assert api == {
        "1": {"class_type": "FakeLoader", "inputs": {"image": "a.png"}, "_meta": {"title": "FakeLoader"}},
        "2": {
            "class_type": "FakeImageOp",
            "inputs": {"amount": 0.25, "label": "hello", "image": ["1", 0]},
            "_meta": {"title": "Blend it"},
        },
    }
    assert Prompt.parse(api)["2"].inputs["image"] == Link("1", 0)


def test_seed_named_int_skips_its_control_value(registry: NodeRegistry) -> None:
    sampler = node(2, "FakeSampler", [42, "randomize", 20, 7.5, "ddim"], inputs=[socket("image", "IMAGE", 1)])
    api = ui_to_api(workflow([loader(links=[1]), sampler], [[1, 1, 0, 2, 0, "IMAGE"]]), registry)
    assert api["2"]["inputs"] == {"seed": 42, "steps": 20, "cfg": 7.5, "sampler_name": "ddim", "image": ["1", 0]}


def test_flagged_int_skips_its_control_value(registry: NodeRegistry) -> None:
    api = ui_to_api(workflow([node(1, "FakeNoise", [7, "fixed", "gaussian"])], []), registry)
    assert api["1"]["inputs"] == {"noise": 7, "kind": "gaussian"}  # skipped although the next combo offers "fixed"


def test_seed_name_counts_as_flag_even_before_a_combo_offering_the_word(registry: NodeRegistry) -> None:
    api = ui_to_api(workflow([node(1, "FakeSeedThenCombo", [9, "randomize", "keep"])], []), registry)
    assert api["1"]["inputs"] == {"seed": 9, "policy": "keep"}


def test_control_value_after_unflagged_float_is_skipped(registry: NodeRegistry) -> None:
    api = ui_to_api(workflow([node(1, "FakeFloatThenInt", [0.5, "increment", 3])], []), registry)
    assert api["1"]["inputs"] == {"amount": 0.5, "count": 3}


def test_control_word_kept_when_next_combo_offers_it(registry: NodeRegistry) -> None:
    api = ui_to_api(workflow([node(1, "FakeIntThenCombo", [3, "fixed"])], []), registry)
    assert api["1"]["inputs"] == {"value": 3, "policy": "fixed"}


def test_dict_form_widgets_values_keep_only_widget_inputs(registry: NodeRegistry) -> None:
    op = node(2, "FakeImageOp", {"amount": 0.75, "label": "x", "preview": {"a": 1}}, inputs=[socket("image", "IMAGE")])
    api = ui_to_api(workflow([op], []), registry)
    assert api["2"]["inputs"] == {"amount": 0.75, "label": "x"}


def test_converted_widget_takes_its_link_and_unlinked_ones_keep_values(registry: NodeRegistry) -> None:
    steps_source = node(3, "FakeIntThenCombo", [12, "other"], outputs=[out("INT", "INT", [2])])
    sampler = node(
        2,
        "FakeSampler",
        [1, "fixed", 20, 7.5, "euler"],
        inputs=[
            socket("image", "IMAGE", 1),
            socket("steps", "INT", 2, widget=True),
            socket("cfg", "FLOAT", widget=True),
        ],
    )
    links = [[1, 1, 0, 2, 0, "IMAGE"], [2, 3, 0, 2, 1, "INT"]]
    api = ui_to_api(workflow([loader(links=[1]), sampler, steps_source], links), registry)
    assert api["2"]["inputs"] == {"seed": 1, "steps": ["3", 0], "cfg": 7.5, "sampler_name": "euler", "image": ["1", 0]}


def test_muted_nodes_are_left_out_and_links_to_them_dropped(registry: NodeRegistry) -> None:
    muted_loader = node(1, "FakeLoader", ["a.png"], outputs=[out("IMAGE", "IMAGE", [1])], mode=2)
    muted_int = node(3, "FakeIntThenCombo", [12, "other"], outputs=[out("INT", "INT", [2])], mode=2)
    sampler = node(
        2,
        "FakeSampler",
        [5, "fixed", 20, 7.5, "euler"],
        inputs=[socket("image", "IMAGE", 1), socket("steps", "INT", 2, widget=True)],
    )
    links = [[1, 1, 0, 2, 0, "IMAGE"], [2, 3, 0, 2, 1, "INT"]]
    api = ui_to_api(workflow([muted_loader, sampler, muted_int], links), registry)
    assert set(api) == {"2"}
    assert api["2"]["inputs"] == {"seed": 5, "steps": 20, "cfg": 7.5, "sampler_name": "euler"}


def _op(node_id: int, in_link: int | None, out_links: list[int], mode: int = 0) -> dict:
    inputs = [socket("image", "IMAGE", in_link)]
    return node(node_id, "FakeImageOp", [0.5, ""], inputs=inputs, outputs=[out("IMAGE", "IMAGE", out_links)], mode=mode)


def test_bypassed_node_is_skipped_and_consumer_rewired(registry: NodeRegistry) -> None:
    links = [[1, 1, 0, 2, 0, "IMAGE"], [2, 2, 0, 3, 0, "IMAGE"]]
    api = ui_to_api(workflow([loader(links=[1]), _op(2, 1, [2], mode=4), save(3, 2)], links), registry)
    assert set(api) == {"1", "3"}
    assert api["3"]["inputs"]["images"] == ["1", 0]


def test_chain_of_bypassed_nodes_and_reroute_is_followed(registry: NodeRegistry) -> None:
    reroute = node(3, "Reroute", inputs=[socket("", "*", 2)], outputs=[out("", "IMAGE", [3])])
    links = [
        [1, 1, 0, 2, 0, "IMAGE"],
        [2, 2, 0, 3, 0, "IMAGE"],
        [3, 3, 0, 4, 0, "IMAGE"],
        [4, 4, 0, 5, 0, "IMAGE"],
        [5, 5, 0, 6, 0, "IMAGE"],
    ]
    nodes = [
        loader(links=[1]),
        _op(2, 1, [2], mode=4),
        reroute,
        _op(4, 3, [4], mode=4),
        _op(5, 4, [5], mode=4),
        save(6, 5),
    ]
    api = ui_to_api(workflow(nodes, links), registry)
    assert set(api) == {"1", "6"}
    assert api["6"]["inputs"]["images"] == ["1", 0]


def test_bypass_falls_back_to_first_input_of_matching_type(registry: NodeRegistry) -> None:
    bypassed = node(
        3,
        "FakeImageOp",
        [0.5, ""],
        inputs=[socket("mask", "MASK", 2), socket("a", "IMAGE", 3), socket("b", "IMAGE", 4)],
        outputs=[out("IMAGE", "IMAGE", [5]), out("OTHER", "IMAGE", slot=1), out("M", "MASK", [7], slot=2)],
        mode=4,
    )
    second = node(2, "FakeLoader", ["b.png"], outputs=[out("IMAGE", "IMAGE", [4]), out("MASK", "MASK", [2])])
    first = loader(links=[3])
    mask_user = node(6, "FakeImageOp", [0.1, ""], inputs=[socket("image", "IMAGE"), socket("mask", "MASK", 7)])
    links = [
        [2, 2, 1, 3, 0, "MASK"],
        [3, 1, 0, 3, 1, "IMAGE"],
        [4, 2, 0, 3, 2, "IMAGE"],
        [5, 3, 0, 4, 0, "IMAGE"],
        [7, 3, 2, 6, 1, "MASK"],
    ]
    api = ui_to_api(workflow([first, second, bypassed, save(4, 5), mask_user], links), registry)
    assert api["4"]["inputs"]["images"] == ["1", 0]  # input 0 is a MASK: the first IMAGE input stands in
    assert api["6"]["inputs"]["mask"] == ["2", 1]  # input 2 is an IMAGE: the MASK output takes the MASK input


def test_bypass_same_slot_beats_earlier_input(registry: NodeRegistry) -> None:
    bypassed = node(
        3,
        "FakeImageOp",
        [0.5, ""],
        inputs=[socket("a", "IMAGE", 3), socket("b", "IMAGE", 4)],
        outputs=[out("X", "IMAGE"), out("Y", "IMAGE", [5], slot=1)],
        mode=4,
    )
    second = node(2, "FakeLoader", ["b.png"], outputs=[out("IMAGE", "IMAGE", [4])])
    links = [[3, 1, 0, 3, 0, "IMAGE"], [4, 2, 0, 3, 1, "IMAGE"], [5, 3, 1, 4, 0, "IMAGE"]]
    api = ui_to_api(workflow([loader(links=[3]), second, bypassed, save(4, 5)], links), registry)
    assert api["4"]["inputs"]["images"] == ["2", 0]


def test_bypass_without_matching_input_drops_link_and_any_type_matches(registry: NodeRegistry) -> None:
    no_match = node(
        2, "FakeImageOp", [0.5, ""], inputs=[socket("mask", "MASK", 1)], outputs=[out("IMAGE", "IMAGE", [2])], mode=4
    )
    wildcard = node(
        5, "FakeImageOp", [0.5, ""], inputs=[socket("any", "*", 3)], outputs=[out("IMAGE", "IMAGE", [4])], mode=4
    )
    mask_loader = node(1, "FakeLoader", ["a.png"], outputs=[out("IMAGE", "IMAGE", [3]), out("MASK", "MASK", [1])])
    links = [[1, 1, 1, 2, 0, "MASK"], [2, 2, 0, 3, 0, "IMAGE"], [3, 1, 0, 5, 0, "IMAGE"], [4, 5, 0, 6, 0, "IMAGE"]]
    api = ui_to_api(workflow([mask_loader, no_match, save(3, 2), wildcard, save(6, 4)], links), registry)
    assert "images" not in api["3"]["inputs"]
    assert api["6"]["inputs"]["images"] == ["1", 0]


def test_primitive_node_value_becomes_constant_of_each_target(registry: NodeRegistry) -> None:
    primitive = node(1, "PrimitiveNode", [123, "fixed"], outputs=[out("INT", "INT", [1, 2])])
    first = node(2, "FakeIntThenCombo", [0, "other"], inputs=[socket("value", "INT", 1, widget=True)])
    second = node(3, "FakeFloatThenInt", [0.5, 1], inputs=[socket("count", "INT", 2, widget=True)])
    links = [[1, 1, 0, 2, 0, "INT"], [2, 1, 0, 3, 0, "INT"]]
    api = ui_to_api(workflow([primitive, first, second], links), registry)
    assert set(api) == {"2", "3"}
    assert api["2"]["inputs"] == {"value": 123, "policy": "other"}
    assert api["3"]["inputs"] == {"amount": 0.5, "count": 123}


def test_reroute_passes_through_and_unlinked_reroute_drops(registry: NodeRegistry) -> None:
    reroute = node(2, "Reroute", inputs=[socket("", "*", 1)], outputs=[out("", "IMAGE", [2])])
    dangling = node(4, "Reroute", inputs=[socket("", "*")], outputs=[out("", "IMAGE", [3])])
    links = [[1, 1, 0, 2, 0, "IMAGE"], [2, 2, 0, 3, 0, "IMAGE"], [3, 4, 0, 5, 0, "IMAGE"]]
    api = ui_to_api(workflow([loader(links=[1]), reroute, save(3, 2), dangling, save(5, 3)], links), registry)
    assert set(api) == {"1", "3", "5"}
    assert api["3"]["inputs"]["images"] == ["1", 0]
    assert api["5"]["inputs"] == {"filename_prefix": "clip"}


def test_reroute_cycle_raises(registry: NodeRegistry) -> None:
    first = node(1, "Reroute", inputs=[socket("", "*", 2)], outputs=[out("", "*", [1, 3])])
    second = node(2, "Reroute", inputs=[socket("", "*", 1)], outputs=[out("", "*", [2])])
    links = [[1, 1, 0, 2, 0, "*"], [2, 2, 0, 1, 0, "*"], [3, 1, 0, 3, 0, "IMAGE"]]
    with pytest.raises(WorkflowFormatError, match="cycle"):
        ui_to_api(workflow([first, second, save(3, 3)], links), registry)


def test_notes_are_ignored(registry: NodeRegistry) -> None:
    notes = [node(1, "Note", ["remember"]), node(2, "MarkdownNote", ["# hi"])]
    api = ui_to_api(workflow([*notes, node(3, "FakeNoise", [1, "fixed", "gaussian"])], []), registry)
    assert list(api) == ["3"]


def test_unknown_node_type_is_emitted_with_links_only(registry: NodeRegistry) -> None:
    mystery = node(
        2, "MysteryNode", [1, 2, "x"], inputs=[socket("pixels", "IMAGE", 1)], outputs=[out("IMAGE", "IMAGE", [2])]
    )
    links = [[1, 1, 0, 2, 0, "IMAGE"], [2, 2, 0, 3, 0, "IMAGE"]]
    api = ui_to_api(workflow([loader(links=[1]), mystery, save(3, 2)], links), registry)
    assert api["2"] == {"class_type": "MysteryNode", "inputs": {"pixels": ["1", 0]}, "_meta": {"title": "MysteryNode"}}
    assert api["3"]["inputs"]["images"] == ["2", 0]


def test_object_form_links(registry: NodeRegistry) -> None:
    link = {"id": 9, "origin_id": 1, "origin_slot": 1, "target_id": 2, "target_slot": 1, "type": "MASK"}
    op = node(2, "FakeImageOp", [0.5, ""], inputs=[socket("image", "IMAGE"), socket("mask", "MASK", 9)])
    api = ui_to_api(workflow([loader(), op], [link]), registry)
    assert api["2"]["inputs"]["mask"] == ["1", 1]


def test_link_to_missing_node_is_kept_for_validation(registry: NodeRegistry) -> None:
    api = ui_to_api(workflow([save(3, 7)], [[7, 99, 0, 3, 0, "IMAGE"]]), registry)
    assert api["3"]["inputs"]["images"] == ["99", 0]


def test_stale_link_id_leaves_input_unlinked(registry: NodeRegistry) -> None:
    api = ui_to_api(workflow([save(3, 42)], []), registry)
    assert api["3"]["inputs"] == {"filename_prefix": "clip"}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"nodes": {"1": {}}, "links": []}, "'nodes' must be a list"),
        ({"nodes": [], "links": {}}, "'links' must be a list"),
        ({"nodes": ["x"], "links": []}, r"nodes\[0\] must be an object"),
        ({"nodes": [{"id": 4}], "links": []}, "node 4: type"),
        ({"nodes": [{"id": True, "type": "FakeSave"}], "links": []}, r"nodes\[0\] \(FakeSave\): id"),
        ({"nodes": [{"id": 4, "type": "FakeSave", "inputs": {}}], "links": []}, r"node 4 \(FakeSave\): inputs"),
        ({"nodes": [{"id": 4, "type": "FakeSave", "widgets_values": 3}], "links": []}, r"node 4 \(FakeSave\): widgets"),
        ({"nodes": [{"id": 4, "type": "FakeSave", "mode": "off"}], "links": []}, r"node 4 \(FakeSave\): mode"),
        ({"nodes": [{"id": 4, "type": "A"}, {"id": 4, "type": "B"}], "links": []}, r"node 4 \(B\): id 4 is used"),
        ({"nodes": [], "links": [[1, 2]]}, r"links\[0\] must be"),
        ({"nodes": [], "links": [[1, None, 0, 2, 0, "IMAGE"]]}, "link 1 .*malformed"),
        (
            {"nodes": [{"id": 4, "type": "FakeSave", "inputs": [{"link": 1}]}], "links": [[1, 2, 0, 4, 0, "IMAGE"]]},
            r"node 4 \(FakeSave\): inputs\[0\] has no name",
        ),
        ([], "must be a JSON object"),
    ],
)
def test_bad_shapes_raise_naming_the_culprit(registry: NodeRegistry, data: Any, message: str) -> None:
    with pytest.raises(WorkflowFormatError, match=message):
        ui_to_api(data, registry)
