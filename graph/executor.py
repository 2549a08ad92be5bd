"""The executor: runs what the requested outputs need, in dependency order, reusing cached outputs.

Demand-driven: a node whose cache key is already cached is not run and its ancestors are not even visited.
Lazy inputs, node expansion (a node returning a subgraph to run in its place) and async node functions are
scheduled by the same loop; sync nodes run inline, async nodes run as tasks so they overlap.
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback as traceback_module
import uuid
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from graph import events
from graph.cache import CacheEntry, OutputCache, estimate_nbytes
from graph.cache_keys import CacheKeys
from graph.context import InterruptFlag, NodeContext, node_context
from graph.errors import DependencyCycleError, ExecutionInterrupted, GraphError, NodeExecutionError
from graph.node_call import (
    CallResult,
    LinkedItems,
    call_arguments,
    describe_value,
    map_node,
    merge_outputs,
    raise_output_blockers,
)
from graph.prompt import DynamicPrompt, Link, Prompt, PromptNode, parse_input_value
from graph.registry import NodeRegistry
from graph.spec import NodeSpec

logger = logging.getLogger(__name__)

_POLL_S = 0.05


class _NullSink:
    def emit(self, event: events.Event) -> None:
        return None


@dataclass
class RunResult:
    """How a prompt ended, the UI outputs of its output nodes, and which nodes ran or came from the cache."""

    prompt_id: str
    status: Literal["success", "error", "interrupted"]
    ui_outputs: dict[str, dict[str, Any]]
    executed: list[str]
    cached: list[str]
    error: events.ExecutionFailed | None = None


@dataclass
class _Run:
    """The state of one prompt's execution."""

    prompt_id: str
    dyn: DynamicPrompt
    keys: CacheKeys
    extra_data: Mapping[str, Any]
    values: dict[str, tuple[list[Any], ...]] = field(default_factory=dict)
    ui: dict[str, dict[str, Any]] = field(default_factory=dict)
    pending: set[str] = field(default_factory=set)
    blockers: dict[str, set[str]] = field(default_factory=dict)
    dependents: defaultdict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    users: defaultdict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    sources: defaultdict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    requested_lazy: defaultdict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    expansions: dict[str, list[CallResult]] = field(default_factory=dict)
    ready: list[str] = field(default_factory=list)
    running: dict[asyncio.Task[None], str] = field(default_factory=dict)
    executed: dict[str, None] = field(default_factory=dict)
    cached: dict[str, None] = field(default_factory=dict)
    instances: dict[str, Any] = field(default_factory=dict)
    active: set[str] = field(default_factory=set)
    consumers: dict[str, list[str]] | None = None
    current: str | None = None
    held_events: list[events.Event] | None = field(default_factory=list)  # until execution_cached is sent


class Executor:
    """Runs validated prompts; keeps its output cache between prompts.

    Args:
        registry: node classes.
        cache: the output cache strategy (LRU with budget, or null).
        sink: where events go.
        services: what nodes may ask their context for (folders, model manager, ...).
        interrupt: the flag ``/interrupt`` or Ctrl-C sets; the host clears it before a run (a set flag stops
            the next run at once, so an interrupt is never lost between "which prompt runs" and its start).
        cache_all_outputs: cache every node's output, not only those a later edit can reuse.
    """

    def __init__(
        self,
        registry: NodeRegistry,
        cache: OutputCache,
        sink: events.EventSink | None = None,
        services: Mapping[str, Any] | None = None,
        interrupt: InterruptFlag | None = None,
        cache_all_outputs: bool = False,
    ) -> None:
        self.registry = registry
        self.cache = cache
        self.sink: events.EventSink = sink or _NullSink()
        self.services = dict(services or {})
        self.interrupt = interrupt or InterruptFlag()
        self.cache_all_outputs = cache_all_outputs

    async def execute(
        self,
        prompt: Prompt,
        outputs: list[str],
        *,
        prompt_id: str | None = None,
        extra_data: Mapping[str, Any] | None = None,
    ) -> RunResult:
        """Run the nodes ``outputs`` need; never raises for a node failure (it becomes an error event)."""
        prompt_id = prompt_id or str(uuid.uuid4())
        dyn = DynamicPrompt(prompt)
        run = _Run(prompt_id, dyn, CacheKeys(dyn, self.registry.get, run_nonce=prompt_id), extra_data or {})
        self.sink.emit(events.ExecutionStart(prompt_id))
        try:
            for output_id in outputs:
                self._require(run, output_id)
            self.sink.emit(events.ExecutionCached(prompt_id, self._cached_in_prompt(run)))
            for held in run.held_events or ():
                self.sink.emit(held)
            run.held_events = None
            await self._loop(run)
        except ExecutionInterrupted:
            await self._cancel_running(run)
            node = run.dyn.get(run.current) if run.current else None
            self.sink.emit(
                events.ExecutionInterrupted(
                    prompt_id, run.current, node.class_type if node else None, list(run.executed)
                )
            )
            return self._result(run, "interrupted")
        except NodeExecutionError as failure:
            await self._cancel_running(run)
            error = self._error_event(run, failure)
            self.sink.emit(error)
            return self._result(run, "error", error)
        self.sink.emit(events.ExecutionSuccess(prompt_id))
        return self._result(run, "success")

    # ----- planning -------------------------------------------------------------------------------------------

    def _cached_in_prompt(self, run: _Run) -> list[str]:
        return [node_id for node_id in run.cached if node_id in run.dyn.prompt.nodes]

    def _require(self, run: _Run, node_id: str) -> None:
        """Plan ``node_id`` and whatever it needs that is neither computed nor cached."""
        stack = [node_id]
        while stack:
            current = stack.pop()
            if current in run.pending or current in run.values:
                continue
            if self._load_cached(run, current):
                self._mark_available(run, current)
                continue
            node = self._node(run, current)
            run.pending.add(current)
            run.blockers[current] = set()
            waiting_lazy = _unrequested_lazy(run, node, self._spec(node))
            for name, link in node.links():
                if name not in waiting_lazy:
                    self._link(run, current, link.source, stack)
            if not run.blockers[current]:
                run.ready.append(current)

    def _link(self, run: _Run, consumer: str, source: str, stack: list[str]) -> None:
        run.users[source].add(consumer)
        run.sources[consumer].add(source)
        if source in run.values:
            return
        run.blockers[consumer].add(source)
        run.dependents[source].add(consumer)
        if source not in run.pending:
            stack.append(source)

    def _load_cached(self, run: _Run, node_id: str) -> bool:
        node = self._node(run, node_id)
        try:
            key = run.keys.key(node_id)
        except GraphError as exc:
            raise NodeExecutionError(node_id, node.class_type, exc) from exc
        entry = self.cache.get(key)
        if entry is None:
            return False
        run.values[node_id] = entry.outputs
        run.cached[node_id] = None
        if entry.ui is not None:
            run.ui[node_id] = entry.ui
            replay = events.Executed(run.prompt_id, node_id, run.dyn.display_id(node_id), entry.ui, cached=True)
            if run.held_events is not None:
                run.held_events.append(replay)  # ComfyUI clients expect these after execution_cached
            else:
                self.sink.emit(replay)
        return True

    def _node(self, run: _Run, node_id: str) -> PromptNode:
        node = run.dyn.get(node_id)
        if node is None:
            raise NodeExecutionError(node_id, "?", GraphError(f"node {node_id} is linked to but does not exist"))
        return node

    def _spec(self, node: PromptNode) -> NodeSpec:
        spec = self.registry.get(node.class_type)
        if spec is None:
            raise NodeExecutionError(node.id, node.class_type, GraphError(f"unknown node class {node.class_type!r}"))
        return spec

    # ----- the scheduling loop --------------------------------------------------------------------------------

    async def _loop(self, run: _Run) -> None:
        while run.pending:
            if self.interrupt.is_set():
                raise ExecutionInterrupted("interrupted")
            if run.ready:
                node_id = run.ready.pop()
                if node_id not in run.pending or node_id in run.active or run.blockers.get(node_id):
                    continue  # queued twice, or already being advanced
                spec = self._spec(self._node(run, node_id))
                if spec.runs_async:
                    run.active.add(node_id)
                    task = asyncio.ensure_future(self._step(run, node_id))
                    run.running[task] = node_id
                else:
                    run.active.add(node_id)
                    await self._step(run, node_id)
                continue
            if not run.running:
                stuck = sorted(run.pending)
                raise NodeExecutionError(
                    stuck[0],
                    self._node(run, stuck[0]).class_type,
                    DependencyCycleError(f"nodes {', '.join(stuck[:10])} wait on each other (a dependency cycle)"),
                )
            done, _ = await asyncio.wait(run.running, timeout=_POLL_S, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                run.running.pop(task)
                task.result()  # re-raises the node's failure

    async def _cancel_running(self, run: _Run) -> None:
        for task in run.running:
            task.cancel()
        if run.running:
            await asyncio.gather(*run.running, return_exceptions=True)
        run.running.clear()

    async def _step(self, run: _Run, node_id: str) -> None:
        """Advance one ready node: resolve an expansion, ask for lazy inputs, or run it."""
        node = self._node(run, node_id)
        spec = self._spec(node)
        run.current = node_id
        started = time.perf_counter()
        context = self._context(run, node)
        inputs: dict[str, list[Any]] = {}
        try:
            with node_context(context):
                if node_id in run.expansions:
                    outputs, ui = self._resolve_expansion(run, spec, run.expansions.pop(node_id))
                else:
                    self.sink.emit(events.Executing(run.prompt_id, node_id, context.display_node_id))
                    inputs = self._gather(run, node, spec)
                    if spec.has_lazy_check:
                        if await self._ask_lazy(run, node, spec, inputs):
                            return
                        inputs = self._gather(run, node, spec)  # lazy inputs served from the cache meanwhile
                    mapped = await map_node(spec, self._function(run, node, spec), inputs, context.check_interrupt)
                    if spec.output_node:
                        raise_output_blockers(mapped)
                    if mapped.expands:
                        self._expand(run, node, spec, mapped.calls)
                        return
                    outputs, ui = merge_outputs(spec, mapped.calls)
            self._finish(run, node, spec, outputs, ui, time.perf_counter() - started)
        except (ExecutionInterrupted, NodeExecutionError, asyncio.CancelledError, KeyboardInterrupt):
            raise
        except BaseException as exc:  # any failure inside a node, sys.exit() too, becomes that node's error event
            raise NodeExecutionError(node_id, node.class_type, exc, inputs) from exc
        finally:
            run.active.discard(node_id)

    def _context(self, run: _Run, node: PromptNode) -> NodeContext:
        def on_progress(node_id: str, value: float, max_value: float, preview: Any) -> None:
            self.sink.emit(events.Progress(run.prompt_id, node_id, value, max_value, preview))

        return NodeContext(
            node_id=node.id,
            display_node_id=run.dyn.display_id(node.id),
            class_type=node.class_type,
            prompt_id=run.prompt_id,
            interrupt=self.interrupt,
            services=self.services,
            on_progress=on_progress,
            expansion_prefix=f"{node.id}.",
        )

    def _function(self, run: _Run, node: PromptNode, spec: NodeSpec) -> Any:
        instance = run.instances.get(node.id)
        if instance is None:
            instance = run.instances[node.id] = spec.node_class()
        return getattr(instance, spec.function)

    def _gather(self, run: _Run, node: PromptNode, spec: NodeSpec) -> dict[str, list[Any]]:
        """Every input as a list of items; unrequested lazy inputs are ``[None]``, hidden inputs filled in."""
        inputs: dict[str, list[Any]] = {}
        for name, value in node.inputs.items():
            input_spec = spec.inputs.get(name)
            if input_spec is None:
                continue
            if isinstance(value, Link):
                produced = run.values.get(value.source)
                if produced is None:
                    inputs[name] = [None]  # a lazy input nobody asked for yet
                elif not 0 <= value.slot < len(produced):
                    raise GraphError(
                        f"input {name!r} is linked to output {value.slot} of node {value.source}, "
                        f"which has {len(produced)}"
                    )
                else:
                    inputs[name] = produced[value.slot]
            else:
                inputs[name] = [value]
        for input_spec in spec.hidden_inputs:
            inputs[input_spec.name] = [self._hidden_value(run, node, input_spec.type)]
        return inputs

    def _hidden_value(self, run: _Run, node: PromptNode, kind: str) -> Any:
        if kind == "PROMPT":
            return run.dyn.prompt.raw
        if kind == "EXTRA_PNGINFO":
            return run.extra_data.get("extra_pnginfo")
        if kind == "UNIQUE_ID":
            return node.id
        if kind == "DYNPROMPT":
            return run.dyn
        return None

    async def _ask_lazy(self, run: _Run, node: PromptNode, spec: NodeSpec, inputs: dict[str, list[Any]]) -> bool:
        """Ask ``check_lazy_status`` which lazy inputs it needs; True if the node must wait for them."""
        lazy_links = _unrequested_lazy(run, node, spec)
        if not lazy_links:
            return False
        check = self._function(run, node, spec).__self__.check_lazy_status
        wanted: set[str] = set()
        hidden = {input_spec.name for input_spec in spec.hidden_inputs}
        arguments = {k: v for k, v in inputs.items() if k not in hidden}
        for call in call_arguments(spec, arguments) or [{}]:
            names = check(**call)
            if asyncio.iscoroutine(names):
                names = await names
            wanted.update(names or ())
        newly = [name for name in wanted if name in lazy_links]
        if not newly:
            return False
        stack: list[str] = []
        for name in newly:
            run.requested_lazy[node.id].add(name)
            self._link(run, node.id, lazy_links[name].source, stack)
        for source in stack:
            self._require(run, source)
        if run.blockers[node.id]:
            return True
        return await self._ask_lazy(run, node, spec, self._gather(run, node, spec))

    def _expand(self, run: _Run, node: PromptNode, spec: NodeSpec, calls: list[CallResult]) -> None:
        """Add the subgraphs a node returned; the node waits for the outputs they produce."""
        stack: list[str] = []
        for call in calls:
            if call.expand is None:
                continue
            for raw_id, body in call.expand.items():
                child_id = str(raw_id)
                if child_id in run.dyn:
                    raise GraphError(
                        f"expansion adds node {child_id}, which already exists; use GraphBuilder for unique ids"
                    )
                child = Prompt.parse({child_id: body}).nodes[child_id]
                display = body.get("override_display_id") or run.dyn.display_id(node.id)
                run.dyn.add_ephemeral(child, node.id, str(display))
                _add_consumers(run.consumers, child)
                child_spec = self.registry.get(child.class_type)
                if child_spec is None:
                    raise GraphError(f"expansion adds node {child_id} of unknown class {child.class_type!r}")
                if child_spec.output_node:
                    self._require(run, child_id)
            call.values = tuple(parse_input_value(v) for v in (call.values or ()))
            for value in call.values:
                if isinstance(value, Link):
                    self._link(run, node.id, value.source, stack)
        run.expansions[node.id] = calls
        for source in stack:
            self._require(run, source)
        if not run.blockers[node.id]:
            run.ready.append(node.id)

    def _resolve_expansion(
        self, run: _Run, spec: NodeSpec, calls: list[CallResult]
    ) -> tuple[tuple[list[Any], ...], dict[str, Any] | None]:
        resolved: list[CallResult] = []
        for call in calls:
            if call.expand is None:
                resolved.append(call)
                continue
            values = tuple(
                LinkedItems(run.values[v.source][v.slot]) if isinstance(v, Link) else v for v in (call.values or ())
            )
            resolved.append(CallResult(values=values, ui=call.ui))
        return merge_outputs(spec, resolved)

    def _finish(
        self,
        run: _Run,
        node: PromptNode,
        spec: NodeSpec,
        outputs: tuple[list[Any], ...],
        ui: dict[str, Any] | None,
        seconds: float,
    ) -> None:
        node_id = node.id
        run.values[node_id] = outputs
        run.executed[node_id] = None
        if ui is not None:
            run.ui[node_id] = ui
            self.sink.emit(events.Executed(run.prompt_id, node_id, run.dyn.display_id(node_id), ui))
        if self._reusable(run, node_id, spec):
            self.cache.put(run.keys.key(node_id), CacheEntry(outputs, ui, estimate_nbytes(outputs)))
        self.sink.emit(events.NodeFinished(run.prompt_id, node_id, node.class_type, seconds, cached=False))
        run.pending.discard(node_id)
        run.blockers.pop(node_id, None)
        self._mark_available(run, node_id)
        for source in run.sources.pop(node_id, ()):
            users = run.users[source]
            users.discard(node_id)
            if not users and source not in run.pending:
                run.values.pop(source, None)  # nobody in this run needs it any more; the cache may keep it

    def _reusable(self, run: _Run, node_id: str, spec: NodeSpec) -> bool:
        """Whether a later prompt can reuse this output: it is shown (an output node) or feeds a node that can
        re-run while this node's inputs stay the same (one with another input, ``IS_CHANGED`` or ``NOT_IDEMPOTENT``).

        An output whose only consumers take nothing else is recomputed whenever they are, so keeping it would only
        hold memory (ComfyUI keeps every intermediate and runs out of RAM on long chains).
        """
        if spec.output_node or self.cache_all_outputs:
            return True
        if run.consumers is None:
            run.consumers = _consumers_of(run.dyn)
        for consumer_id in run.consumers.get(node_id, ()):
            consumer = run.dyn.get(consumer_id)
            consumer_spec = self.registry.get(consumer.class_type) if consumer is not None else None
            if consumer is None or consumer_spec is None or len(consumer.inputs) > 1:
                return True
            if consumer_spec.has_is_changed or consumer_spec.not_idempotent:
                return True
        return False

    def _mark_available(self, run: _Run, node_id: str) -> None:
        """``node_id``'s outputs exist now: unblock the nodes waiting on it."""
        for dependent in run.dependents.pop(node_id, ()):
            waiting = run.blockers.get(dependent)
            if waiting is not None:
                waiting.discard(node_id)
                if not waiting and dependent not in run.active:
                    run.ready.append(dependent)

    # ----- results ----------------------------------------------------------------------------------------------

    def _result(
        self, run: _Run, status: Literal["success", "error", "interrupted"], error: events.ExecutionFailed | None = None
    ) -> RunResult:
        return RunResult(run.prompt_id, status, dict(run.ui), list(run.executed), list(run.cached), error)

    def _error_event(self, run: _Run, failure: NodeExecutionError) -> events.ExecutionFailed:
        cause = failure.cause
        inputs = failure.inputs
        return events.ExecutionFailed(
            prompt_id=run.prompt_id,
            node_id=failure.node_id,
            node_type=failure.class_type,
            executed=list(run.executed),
            exception_message=str(cause),
            exception_type=f"{type(cause).__module__}.{type(cause).__name__}",
            traceback=traceback_module.format_exception(cause),
            current_inputs={name: [describe_value(v) for v in items[:8]] for name, items in inputs.items()},
            current_outputs={node_id: list(run.ui.get(node_id, {}).keys()) for node_id in run.ui},
        )


def _unrequested_lazy(run: _Run, node: PromptNode, spec: NodeSpec) -> dict[str, Link]:
    """The node's linked lazy inputs that ``check_lazy_status`` has not asked for yet."""
    requested = run.requested_lazy[node.id]
    return {
        name: link
        for name, link in node.links()
        if name in spec.inputs and spec.inputs[name].lazy and name not in requested
    }


def _consumers_of(dyn: DynamicPrompt) -> dict[str, list[str]]:
    """For every node, the nodes that link to it (submitted and ephemeral)."""
    consumers: dict[str, list[str]] = {}
    for node_id in [*dyn.prompt.nodes, *dyn.ephemeral_ids()]:
        node = dyn.get(node_id)
        if node is not None:
            _add_consumers(consumers, node)
    return consumers


def _add_consumers(consumers: dict[str, list[str]] | None, node: PromptNode) -> None:
    if consumers is None:
        return
    for _, link in node.links():
        consumers.setdefault(link.source, []).append(node.id)
