"""The fake-node base and loader shared by the UI <-> API conversion tests, and a registry builder."""

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


def registry_of(classes: Mapping[str, type]) -> NodeRegistry:
    registry = NodeRegistry()
    for name, cls in classes.items():
        registry.register(name, cls)
    return registry
