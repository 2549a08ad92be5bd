"""The fake-node base, loader and saver shared by the UI <-> API conversion tests, and a registry builder."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from graph.registry import NodeRegistry


class FakeNode:
    """A node that declares sockets and does nothing: conversion tests only read its interface."""

    FUNCTION = "run"
    CATEGORY = "test"
    OUTPUT_NODE = False
    RETURN_TYPES: tuple[str, ...] = ()

    def run(self, **kwargs: Any) -> tuple[Any, ...]:
        return ()


class FakeLoader(FakeNode):
    """A LoadImage-like node: a choice widget, IMAGE and MASK out."""

    RETURN_TYPES = ("IMAGE", "MASK")

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"image": (["a.png", "b.png"],)}}


class FakeSave(FakeNode):
    """A SaveImage-like output node."""

    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"images": ("IMAGE",), "filename_prefix": ("STRING", {"default": "out"})}}


def registry_of(classes: Mapping[str, type]) -> NodeRegistry:
    registry = NodeRegistry()
    for name, cls in classes.items():
        registry.register(name, cls)
    return registry
