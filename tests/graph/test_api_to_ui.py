"""API prompts convert to editable UI workflows, and ``ui_to_api`` turns those back into the same prompt."""

from __future__ import annotations

import copy
import itertools
import json
from typing import Any

import pytest

from graph.api_to_ui import api_to_ui
from graph.errors import WorkflowFormatError
from graph.registry import NodeRegistry
from graph.ui_format import ui_to_api
from tests.graph.ui_fake_nodes import FakeLoader, FakeNode, FakeSave, registry_of


class IntSource(FakeNode):
    RETURN_TYPES = ("INT",)

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"value": ("INT", {"default": 3, "min": 1, "max": 100})}}


class Sampler(FakeNode):
    RETURN_TYPES = ("IMAGE",)

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "image": ("IMAGE",),
                "seed": ("INT", {"default": 42}),
                "steps": ("INT", {"default": 20, "min": 1, "max": 100}),
                "cfg": ("FLOAT", {"default": 7.5}),
                "sampler_name": (["euler", "ddim"],),
                "note": ("STRING", {"default": "hi", "multiline": True}),
            },
            "optional": {"mask": ("MASK",), "strength": ("FLOAT", {"default": 1.0})},
        }


class Noise(FakeNode):
    RETURN_TYPES = ("NOISE", "INT")
    RETURN_NAMES = ("noise", "seed_out")

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"noise": ("INT", {"default": 0, "control_after_generate": True}), "on": ("BOOLEAN",)}}


class Invert(FakeNode):
    RETURN_TYPES = ("IMAGE",)

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"image": ("IMAGE",)}}


class Blend(FakeNode):
    RETURN_TYPES = ("IMAGE",)

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"image1": ("IMAGE",), "image2": ("IMAGE",), "factor": ("FLOAT", {"default": 0.5})}}


@pytest.fixture
def registry() -> NodeRegistry:
    return registry_of(
        {
            "Loader": FakeLoader,
            "IntSource": IntSource,
            "Sampler": Sampler,
            "Noise": Noise,
            "Invert": Invert,
            "Blend": Blend,
            "Save": FakeSave,
        }
    )


def n(class_type: str, title: str | None = None, **inputs: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"class_type": class_type, "inputs": inputs}
    if title is not None:
        body["_meta"] = {"title": title}
    return body


def normalized(api: dict[str, Any]) -> dict[str, Any]:
    """Class type, inputs (links as ``[str, int]``) and title (defaulting to the class type) per node."""
    result = {}
    for key, body in api.items():
        inputs = {
            name: [str(value[0]), value[1]] if isinstance(value, list) and len(value) == 2 else value
            for name, value in body["inputs"].items()
        }
        title = (body.get("_meta") or {}).get("title") or body["class_type"]
        result[str(key)] = {"class_type": body["class_type"], "inputs": inputs, "title": title}
    return result


def round_trip(api: dict[str, Any], registry: NodeRegistry) -> tuple[dict[str, Any], dict[str, Any]]:
    ui = api_to_ui(api, registry)
    json.dumps(ui)  # must be embeddable as-is
    return ui, ui_to_api(json.loads(json.dumps(ui)), registry)


def by_id(ui: dict[str, Any]) -> dict[Any, dict[str, Any]]:
    return {node["id"]: node for node in ui["nodes"]}


FULL = {
    "1": n("Loader", image="b.png"),
    "2": n("IntSource", "Step count", value=12),
    "3": n(
        "Sampler",
        "My sampler",
        image=["1", 0],
        seed=123,
        steps=["2", 0],
        cfg=3.5,
        sampler_name="ddim",
        note="x",
        mask=["1", 1],
        strength=0.25,
    ),
    "4": n("Save", images=["3", 0], filename_prefix="final"),
}

PROMPTS = {
    "full": FULL,
    "single": {"7": n("Loader", image="a.png")},
    "fan_out_in": {
        "1": n("Loader", image="a.png"),
        "2": n("Invert", image=["1", 0]),
        "3": n("Blend", image1=["1", 0], image2=["2", 0], factor=0.1),
        "4": n("Save", "Left", images=["3", 0], filename_prefix="a"),
        "5": n("Save", "Right", images=["2", 0], filename_prefix="b"),
    },
    "control_widgets": {
        "10": n("Noise", noise=99, on=True),
        "11": n(
            "Sampler", image=["12", 0], seed=["10", 1], steps=5, cfg=1.0, sampler_name="euler", note="", strength=2.0
        ),
        "12": n("Loader", image="a.png"),
    },
    "int_link_ids": {
        "1": n("Loader", image="a.png"),
        "2": {"class_type": "Invert", "inputs": {"image": [1, 0]}},
    },
}


@pytest.mark.parametrize("name", sorted(PROMPTS))
def test_round_trip_gives_back_the_prompt(name: str, registry: NodeRegistry) -> None:
    api = PROMPTS[name]
    original = copy.deepcopy(api)
    _, back = round_trip(api, registry)
    assert normalized(back) == normalized(api)
    assert api == original  # the input is not modified


def test_node_shape_titles_and_widget_values(registry: NodeRegistry) -> None:
    ui = api_to_ui(FULL, registry)
    assert {key: ui[key] for key in ("groups", "config", "extra", "version")} == {
        "groups": [],
        "config": {},
        "extra": {},
        "version": 0.4,
    }
    nodes = by_id(ui)
    assert sorted(nodes) == [1, 2, 3, 4]
    assert ui["last_node_id"] == 4
    sampler = nodes[3]
    assert sampler["type"] == "Sampler" and sampler["title"] == "My sampler"
    assert "title" not in nodes[1] and "title" not in nodes[4]
    assert sampler["mode"] == 0 and sampler["flags"] == {}
    assert sampler["properties"] == {"Node name for S&R": "Sampler"}
    # seed carries a "fixed" control value; linked steps keeps its default in place
    assert sampler["widgets_values"] == [123, "fixed", 20, 3.5, "ddim", "x", 0.25]
    inputs = [(slot["name"], slot["type"], slot.get("widget")) for slot in sampler["inputs"]]
    assert inputs == [("image", "IMAGE", None), ("mask", "MASK", None), ("steps", "INT", {"name": "steps"})]
    assert all(slot["link"] is not None for slot in sampler["inputs"])
    assert nodes[1]["outputs"] == [
        {"name": "IMAGE", "type": "IMAGE", "links": [1], "slot_index": 0},
        {"name": "MASK", "type": "MASK", "links": [2], "slot_index": 1},
    ]
    assert nodes[4]["outputs"] == []
    assert nodes[2]["widgets_values"] == [12]


def test_missing_widget_values_take_defaults(registry: NodeRegistry) -> None:
    api = {
        "1": n("Loader"),
        "2": n("Sampler", image=["1", 0], cfg=2.0),
        "3": n("Noise"),
        "4": n("Save", images=["2", 0]),
    }
    ui, back = round_trip(api, registry)
    nodes = by_id(ui)
    assert nodes[1]["widgets_values"] == ["a.png"]  # first combo choice
    assert nodes[2]["widgets_values"] == [42, "fixed", 20, 2.0, "euler", "hi", 1.0]
    assert nodes[3]["widgets_values"] == [0, "fixed", False]
    assert nodes[2]["inputs"] == [
        {"name": "image", "type": "IMAGE", "link": 1},
        {"name": "mask", "type": "MASK", "link": None},
    ]
    expected = copy.deepcopy(api)
    expected["1"]["inputs"]["image"] = "a.png"
    expected["2"]["inputs"].update(seed=42, steps=20, sampler_name="euler", note="hi", strength=1.0)
    expected["3"]["inputs"].update(noise=0, on=False)
    expected["4"]["inputs"]["filename_prefix"] = "out"
    assert normalized(back) == normalized(expected)


@pytest.mark.parametrize("name", sorted(PROMPTS))
def test_link_table_matches_node_slots(name: str, registry: NodeRegistry) -> None:
    ui = api_to_ui(PROMPTS[name], registry)
    nodes = by_id(ui)
    ids = [link[0] for link in ui["links"]]
    assert ids == list(range(1, len(ids) + 1)) and ui["last_link_id"] == len(ids)
    for link_id, origin, from_slot, target, to_slot, link_type in ui["links"]:
        output = nodes[origin]["outputs"][from_slot]
        assert output["slot_index"] == from_slot and link_id in output["links"]
        assert output["type"] == link_type
        assert nodes[target]["inputs"][to_slot]["link"] == link_id
    input_links = sorted(s["link"] for node in ui["nodes"] for s in node["inputs"] if s["link"] is not None)
    output_links = sorted(i for node in ui["nodes"] for out in node["outputs"] for i in out["links"])
    assert input_links == output_links == ids
    api_links = sum(isinstance(v, list) for body in PROMPTS[name].values() for v in body["inputs"].values())
    assert len(ids) == api_links


@pytest.mark.parametrize("name", sorted(PROMPTS))
def test_sources_sit_left_of_and_before_their_consumers(name: str, registry: NodeRegistry) -> None:
    ui = api_to_ui(PROMPTS[name], registry)
    nodes = by_id(ui)
    assert sorted(node["order"] for node in ui["nodes"]) == list(range(len(nodes)))
    for _, origin, _, target, _, _ in ui["links"]:
        assert nodes[origin]["pos"][0] < nodes[target]["pos"][0]
        assert nodes[origin]["order"] < nodes[target]["order"]


def test_nodes_in_one_column_do_not_overlap(registry: NodeRegistry) -> None:
    api = {str(i): n("Loader", image="a.png") for i in range(1, 6)}
    api["6"] = n("Blend", image1=["1", 0], image2=["5", 0])
    ui = api_to_ui(api, registry)
    column = sorted((node for node in ui["nodes"] if node["pos"][0] == 60), key=lambda node: node["pos"][1])
    assert len(column) == 5
    for upper, lower in itertools.pairwise(column):
        assert upper["pos"][1] + upper["size"][1] < lower["pos"][1]
    blend = by_id(ui)[6]
    assert blend["pos"][0] == 60 + 380


def test_ids_that_are_not_plain_integers_stay_strings(registry: NodeRegistry) -> None:
    api = {
        "007": n("Loader", image="a.png"),
        "a:b": n("Invert", image=["007", 0]),
        "12": n("Save", images=["a:b", 0], filename_prefix="p"),
    }
    ui, back = round_trip(api, registry)
    assert sorted(map(str, by_id(ui))) == ["007", "12", "a:b"]
    assert 12 in by_id(ui) and "007" in by_id(ui)
    assert ui["last_node_id"] == 12
    assert normalized(back) == normalized(api)


def test_unknown_class_keeps_links_typed_any_and_no_widgets(registry: NodeRegistry) -> None:
    api = {
        "1": n("Loader", image="a.png"),
        "2": n("Mystery", "Odd one", image=["1", 0], strength=0.5, other=["1", 1]),
        "3": n("Save", images=["2", 2], filename_prefix="x"),
    }
    ui, back = round_trip(api, registry)
    mystery = by_id(ui)[2]
    assert mystery["title"] == "Odd one" and mystery["widgets_values"] == []
    assert [(s["name"], s["type"]) for s in mystery["inputs"]] == [("image", "*"), ("other", "*")]
    assert [(o["type"], o["links"]) for o in mystery["outputs"]] == [("*", []), ("*", []), ("*", [3])]
    assert ui["links"][2] == [3, 2, 2, 3, 0, "IMAGE"]  # the consumer's socket type names the link
    expected = copy.deepcopy(api)
    del expected["2"]["inputs"]["strength"]  # a constant of an unknown class has nowhere to go
    assert normalized(back) == normalized(expected)


def test_undeclared_linked_input_of_a_known_class_is_kept(registry: NodeRegistry) -> None:
    api = {"1": n("Loader", image="a.png"), "2": n("Invert", image=["1", 0], extra_image=["1", 0])}
    ui, back = round_trip(api, registry)
    assert [(s["name"], s["type"]) for s in by_id(ui)[2]["inputs"]] == [("image", "IMAGE"), ("extra_image", "*")]
    assert normalized(back) == normalized(api)


def test_dangling_links_are_dropped(registry: NodeRegistry) -> None:
    api = {
        "1": n("Loader", image="a.png"),
        "2": n("Blend", image1=["9", 0], image2=["1", 5], factor=0.3),
    }
    ui = api_to_ui(api, registry)
    assert ui["links"] == []
    assert [s["link"] for s in by_id(ui)[2]["inputs"]] == [None, None]


def test_a_cycle_still_converts(registry: NodeRegistry) -> None:
    api = {
        "1": n("Invert", image=["2", 0]),
        "2": n("Invert", image=["1", 0]),
        "3": n("Save", images=["2", 0], filename_prefix="x"),
    }
    ui, back = round_trip(api, registry)
    assert sorted(node["order"] for node in ui["nodes"]) == [0, 1, 2]
    assert normalized(back) == normalized(api)


def test_output_is_deterministic(registry: NodeRegistry) -> None:
    first = json.dumps(api_to_ui(PROMPTS["fan_out_in"], registry))
    assert json.dumps(api_to_ui(copy.deepcopy(PROMPTS["fan_out_in"]), registry)) == first


def test_long_chain_converts_without_recursion(registry: NodeRegistry) -> None:
    length = 2000
    api: dict[str, Any] = {"1": n("Loader", image="a.png")}
    for i in range(2, length + 1):
        api[str(i)] = n("Invert", image=[str(i - 1), 0])
    api[str(length + 1)] = n("Save", images=[str(length), 0], filename_prefix="chain")
    ui = api_to_ui(api, registry)
    nodes = by_id(ui)
    assert nodes[length + 1]["pos"][0] == 60 + 380 * length
    assert nodes[length + 1]["order"] == length
    heights = {node["pos"][1] for node in ui["nodes"]}
    assert max(heights) - min(heights) < 100  # a chain stays on one line
    assert normalized(ui_to_api(ui, registry)) == normalized(api)


def test_not_a_prompt_is_rejected(registry: NodeRegistry) -> None:
    with pytest.raises(WorkflowFormatError):
        api_to_ui([], registry)  # type: ignore[arg-type]
    with pytest.raises(WorkflowFormatError):
        api_to_ui({"1": {"inputs": {}}}, registry)


class VideoFrameLoader(FakeNode):
    """A LoadVideoFrames-like node: an upload combo followed by more widgets."""

    RETURN_TYPES = ("IMAGE",)

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "video": (["a.mp4", "b.mp4"], {"video_upload": True}),
                "skip_first_frames": ("INT", {"default": 0}),
                "frame_load_cap": ("INT", {"default": 0}),
            }
        }


def test_upload_buttons_keep_their_slot_in_widget_values() -> None:
    """ComfyUI's editor saves the upload button's "image" right after the combo; both directions keep that slot."""
    upload_registry = registry_of({"VideoFrameLoader": VideoFrameLoader})
    prompt = {"1": {"class_type": "VideoFrameLoader", "inputs": {"video": "b.mp4", "skip_first_frames": 4}}}
    workflow = api_to_ui(prompt, upload_registry)
    assert workflow["nodes"][0]["widgets_values"] == ["b.mp4", "image", 4, 0]
    assert ui_to_api(workflow, upload_registry)["1"]["inputs"] == {
        "video": "b.mp4",
        "skip_first_frames": 4,
        "frame_load_cap": 0,
    }
    without_button = copy.deepcopy(workflow)  # saved before the button existed
    without_button["nodes"][0]["widgets_values"] = ["b.mp4", 4, 0]
    assert ui_to_api(without_button, upload_registry)["1"]["inputs"]["skip_first_frames"] == 4
