"""Content-addressed cache keys: a node's key hashes its class, its constant inputs and its ancestors' keys.

Keys are memoised per node, so the keys of a whole graph cost time linear in its size, and they hash canonical
JSON with ``hashlib`` so they are stable across processes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Callable
from typing import Any

from graph.errors import GraphError
from graph.node_call import call_with_known_arguments
from graph.prompt import BadLink, DynamicPrompt, Link, PromptNode
from graph.spec import NodeSpec

logger = logging.getLogger(__name__)

SpecLookup = Callable[[str], "NodeSpec | None"]


class _Uncacheable(Exception):
    """The node's inputs cannot be hashed faithfully, so its result must never be reused."""


class CacheKeys:
    """Computes and memoises the cache key of every node of one run."""

    def __init__(self, dynprompt: DynamicPrompt, spec_of: SpecLookup, run_nonce: str) -> None:
        self._dynprompt = dynprompt
        self._spec_of = spec_of
        self._nonce = run_nonce
        self._keys: dict[str, str] = {}

    def key(self, node_id: str) -> str:
        """The key of ``node_id``, computing its ancestors' keys first (iteratively: chains may be long)."""
        known = self._keys.get(node_id)
        if known is not None:
            return known
        stack = [node_id]
        waiting: set[str] = set()  # nodes whose sources were pushed and are not computed yet
        while stack:
            current = stack[-1]
            if current in self._keys:
                stack.pop()
                continue
            node = self._node(current)
            missing = [link.source for _, link in node.links() if link.source not in self._keys]
            if missing:
                if any(source in waiting for source in missing):
                    raise GraphError(f"dependency cycle through node {current} ({node.class_type})")
                waiting.add(current)
                stack.extend(missing)
                continue
            waiting.discard(current)
            self._keys[current] = self._compute(node)
            stack.pop()
        return self._keys[node_id]

    def _node(self, node_id: str) -> PromptNode:
        node = self._dynprompt.get(node_id)
        if node is None:
            raise GraphError(f"node {node_id} is linked to but does not exist")
        return node

    def _compute(self, node: PromptNode) -> str:
        spec = self._spec_of(node.class_type)
        if spec is None:
            raise GraphError(f"node {node.id}: unknown class {node.class_type!r}")
        inputs: dict[str, Any] = {}
        for name, value in node.inputs.items():
            if isinstance(value, Link):
                inputs[name] = ["#link", self._keys[value.source], value.slot]
            elif isinstance(value, BadLink):
                inputs[name] = ["#bad", value.raw]
            else:
                inputs[name] = value
        identity: list[Any] = [spec.class_type, spec.cache_version, inputs]
        if spec.not_idempotent:
            identity.append(["#run", self._nonce, node.id])
        elif any(hidden.type == "UNIQUE_ID" for hidden in spec.hidden_inputs):
            identity.append(["#id", node.id])
        try:
            if spec.has_is_changed:
                identity.append(["#changed", _is_changed(spec, node)])
            text = json.dumps(identity, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_refuse)
        except _Uncacheable as reason:
            logger.debug("node %s (%s) is not cacheable: %s", node.id, node.class_type, reason)
            text = json.dumps([spec.class_type, "#uncacheable", self._nonce, node.id])
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _is_changed(spec: NodeSpec, node: PromptNode) -> Any:
    """Call the class's ``IS_CHANGED`` with the node's constant inputs (as ComfyUI does: links are not seen)."""
    constants = {k: v for k, v in node.inputs.items() if not isinstance(v, (Link, BadLink))}
    try:
        verdict = call_with_known_arguments(spec.node_class.IS_CHANGED, constants)
    except Exception as exc:  # a failing IS_CHANGED must not fail the run: treat the node as always changed
        raise _Uncacheable(f"IS_CHANGED raised {type(exc).__name__}: {exc}") from exc
    if isinstance(verdict, float) and math.isnan(verdict):
        raise _Uncacheable("IS_CHANGED returned NaN (always re-run)")
    return verdict


def _refuse(value: Any) -> Any:
    raise _Uncacheable(f"input value of type {type(value).__name__} has no stable JSON form")
