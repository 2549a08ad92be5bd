"""Validation of a prompt before anything runs, with ComfyUI's error shapes.

Every error names the node, its class, the input and the reason. Outputs whose ancestry fails are dropped;
the valid outputs still run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from graph.coercion import coerce_constant, types_match
from graph.errors import NodeDefinitionError
from graph.node_call import call_with_known_arguments
from graph.prompt import BadLink, Link, Prompt, PromptNode
from graph.registry import NodeRegistry
from graph.spec import InputSpec, NodeSpec


@dataclass
class ValidationResult:
    """The outcome: the prompt with coerced values, the outputs that may run, and ComfyUI-shaped errors."""

    prompt: Prompt
    outputs: list[str]
    error: dict[str, Any] | None = None
    node_errors: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None


def node_error(kind: str, message: str, details: str = "", **extra: Any) -> dict[str, Any]:
    """One error of a node's ``node_errors`` entry, in ComfyUI's shape."""
    return {"type": kind, "message": message, "details": details, "extra_info": extra}


class _NodeChecker:
    """Checks one node's inputs against its spec; collects errors and coerced inputs."""

    def __init__(self, prompt: Prompt, specs: dict[str, NodeSpec]) -> None:
        self.prompt = prompt
        self.specs = specs

    def check(self, node: PromptNode, spec: NodeSpec) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        errors: list[dict[str, Any]] = []
        inputs = dict(node.inputs)
        wants_types = "input_types" in spec.validate_inputs_names
        for input_spec in spec.inputs.values():
            if input_spec.section == "hidden":
                continue  # the executor fills these in
            if input_spec.name not in inputs:
                if input_spec.required:
                    errors.append(
                        node_error(
                            "required_input_missing",
                            "Required input is missing",
                            input_spec.name,
                            input_name=input_spec.name,
                        )
                    )
                continue
            value = inputs[input_spec.name]
            if isinstance(value, (Link, BadLink)):
                problem = self._check_link(input_spec, value, skip_type=wants_types)
                if problem is not None:
                    errors.append(problem)
                continue
            # an input the node's own VALIDATE_INPUTS names is range- and choice-checked by it, not here
            check_options = spec.validate_inputs_takes_all or input_spec.name not in spec.validate_inputs_names
            coerced, problem = coerce_constant(input_spec, value, check_options=check_options)
            if problem is not None:
                errors.append(
                    node_error(
                        problem.type,
                        problem.message,
                        problem.details,
                        input_name=input_spec.name,
                        input_config=input_spec.raw(),
                        received_value=value,
                    )
                )
            else:
                inputs[input_spec.name] = coerced
        if spec.has_validate_inputs and not errors:
            errors.extend(self._custom_validation(node, spec, inputs, wants_types))
        return inputs, errors

    def _check_link(self, input_spec: InputSpec, value: Link | BadLink, *, skip_type: bool) -> dict[str, Any] | None:
        name = input_spec.name
        if isinstance(value, BadLink):
            return node_error(
                "bad_linked_input",
                "Bad linked input, must be a length-2 list of [string, int]",
                f"{name}, {value.raw!r}",
                input_name=name,
                input_config=input_spec.raw(),
                received_value=value.raw,
            )
        source = self.prompt.nodes.get(value.source)
        if source is None:
            return node_error(
                "bad_linked_input",
                f"Input '{name}' is linked to node {value.source}, which is not in the prompt",
                name,
                input_name=name,
                linked_node=[value.source, value.slot],
            )
        source_spec = self.specs.get(source.class_type)
        if source_spec is None:
            return None  # the source itself reports missing_node_type; this node fails through it
        if not 0 <= value.slot < len(source_spec.output_types):
            return node_error(
                "bad_linked_input",
                f"Input '{name}' is linked to output {value.slot} of {source.label()}, "
                f"which has {len(source_spec.output_types)} output(s)",
                name,
                input_name=name,
                linked_node=[value.source, value.slot],
            )
        received = source_spec.output_types[value.slot]
        if not skip_type and not types_match(received, input_spec.type):
            return node_error(
                "return_type_mismatch",
                "Return type mismatch between linked nodes",
                f"{name}, received_type({received}) mismatch input_type({input_spec.type})",
                input_name=name,
                input_config=input_spec.raw(),
                received_type=received,
                linked_node=[value.source, value.slot],
            )
        return None

    def _custom_validation(
        self,
        node: PromptNode,
        spec: NodeSpec,
        inputs: dict[str, Any],
        wants_types: bool,
    ) -> list[dict[str, Any]]:
        arguments = {k: v for k, v in inputs.items() if not isinstance(v, (Link, BadLink))}
        if wants_types:
            arguments["input_types"] = {name: self._received_type(link) for name, link in node.links()}
        try:
            verdict = call_with_known_arguments(spec.node_class.VALIDATE_INPUTS, arguments)
        except Exception as exc:  # a pack's validator can fail in any way; report it on the node
            return [
                node_error(
                    "exception_during_validation", "Exception when validating node", f"{type(exc).__name__}: {exc}"
                )
            ]
        if verdict is True:
            return []
        return [node_error("custom_validation_failed", "Custom validation failed for node", f"{verdict}")]

    def _received_type(self, link: Link) -> str:
        source = self.prompt.nodes.get(link.source)
        spec = self.specs.get(source.class_type) if source is not None else None
        if spec is None or not 0 <= link.slot < len(spec.output_types):
            return "*"
        return spec.output_types[link.slot]


def _cycle_members(prompt: Prompt, node_ids: list[str]) -> dict[str, list[str]]:
    """Each node on a dependency cycle, with the nodes of its cycle (iterative Tarjan over the reachable subgraph)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    members: dict[str, list[str]] = {}
    counter = 0
    for start in node_ids:
        if start in index:
            continue
        work = [(start, iter([link.source for _, link in prompt.nodes[start].links() if link.source in prompt.nodes]))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node_id, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    sources = [link.source for _, link in prompt.nodes[child].links() if link.source in prompt.nodes]
                    work.append((child, iter(sources)))
                elif child in on_stack:
                    low[node_id] = min(low[node_id], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node_id])
            if low[node_id] == index[node_id]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node_id:
                        break
                self_loop = any(link.source == node_id for _, link in prompt.nodes[node_id].links())
                if len(component) > 1 or self_loop:
                    ordered = sorted(component, key=lambda n: (len(n), n))
                    members.update({member: ordered for member in component})
    return members


def _current_specs(prompt: Prompt, registry: NodeRegistry) -> tuple[dict[str, NodeSpec], dict[str, str]]:
    """Specs of the classes the prompt uses, with ``INPUT_TYPES`` read once per class; failures by class."""
    specs: dict[str, NodeSpec] = {}
    failures: dict[str, str] = {}
    for class_type in {node.class_type for node in prompt.nodes.values()}:
        spec = registry.get(class_type)
        if spec is None:
            continue
        try:
            inputs, order = spec.refreshed_inputs()
        except NodeDefinitionError as exc:
            failures[class_type] = exc.reason
            continue
        specs[class_type] = spec if inputs == spec.inputs else _with_inputs(spec, inputs, order)
    return specs, failures


def _with_inputs(spec: NodeSpec, inputs: dict[str, InputSpec], order: dict[str, tuple[str, ...]]) -> NodeSpec:
    return dataclasses.replace(spec, inputs=inputs, input_order=order)


def dependency_cycles(prompt: Prompt) -> list[list[str]]:
    """Every dependency cycle among all the nodes of ``prompt`` (output-reachable or not), each as its sorted ids."""
    cycles: list[list[str]] = []
    for cycle in _cycle_members(prompt, list(prompt.nodes)).values():
        if cycle not in cycles:
            cycles.append(cycle)
    return cycles


def describe_cycle(cycle: list[str]) -> str:
    """``node 3 feeds itself`` or ``nodes 3, 4 feed each other, so none of them can run first``."""
    if len(cycle) == 1:
        return f"node {cycle[0]} feeds itself"
    return f"nodes {', '.join(cycle)} feed each other, so none of them can run first"


def check_node_inputs(prompt: Prompt, registry: NodeRegistry) -> dict[str, list[dict[str, Any]]]:
    """The per-input errors of every node of a known class, reachable from an output or not (ComfyUI's shapes).

    Nodes of unknown classes are left out; a class whose ``INPUT_TYPES()`` fails gets one
    ``exception_during_validation`` error.
    """
    specs, spec_failures = _current_specs(prompt, registry)
    checker = _NodeChecker(prompt, specs)
    found: dict[str, list[dict[str, Any]]] = {}
    for node_id, node in prompt.nodes.items():
        if node.class_type in spec_failures:
            reason = spec_failures[node.class_type]
            found[node_id] = [node_error("exception_during_validation", "Exception when reading node inputs", reason)]
        elif node.class_type in specs:
            errors = checker.check(node, specs[node.class_type])[1]
            if errors:
                found[node_id] = errors
    return found


def validate_prompt(prompt: Prompt, registry: NodeRegistry, targets: Iterable[str] | None = None) -> ValidationResult:
    """Validate ``prompt`` for its output nodes (or only ``targets``) and return what may run.

    Args:
        prompt: the parsed API prompt.
        registry: the node classes known to this host.
        targets: ComfyUI's ``partial_execution_targets``; None runs every output node.
    """
    specs, spec_failures = _current_specs(prompt, registry)
    node_errors: dict[str, dict[str, Any]] = {}
    first_missing: dict[str, Any] | None = None
    for node in prompt.nodes.values():
        if registry.get(node.class_type) is None:
            error = node_error(
                "missing_node_type",
                f"Node '{node.class_type}' not found. The custom node may not be installed.",
                f"Node ID '#{node.id}'",
                node_id=node.id,
                class_type=node.class_type,
                node_title=node.title or node.class_type,
            )
            first_missing = first_missing or error
            node_errors[node.id] = {"errors": [error], "dependent_outputs": [], "class_type": node.class_type}
        elif node.class_type in spec_failures:
            error = node_error(
                "exception_during_validation", "Exception when reading node inputs", spec_failures[node.class_type]
            )
            node_errors[node.id] = {"errors": [error], "dependent_outputs": [], "class_type": node.class_type}

    wanted = list(prompt.nodes) if targets is None else [str(t) for t in targets]
    outputs = [n for n in wanted if _is_output(prompt, specs, n)]
    if not outputs:
        if first_missing is not None:
            return ValidationResult(prompt, [], first_missing, node_errors)
        return ValidationResult(prompt, [], node_error("prompt_no_outputs", "Prompt has no outputs"), node_errors)

    reachable = prompt.needed_by(outputs)
    checker = _NodeChecker(prompt, specs)
    coerced_nodes = dict(prompt.nodes)
    for node_id in reachable:
        node = prompt.nodes[node_id]
        spec = specs.get(node.class_type)
        if spec is None:
            continue
        inputs, errors = checker.check(node, spec)
        if errors:
            node_errors[node_id] = {"errors": errors, "dependent_outputs": [], "class_type": node.class_type}
        elif any(inputs[name] is not value for name, value in node.inputs.items()):
            # compare by identity: 3.0 == 3 and True == 1, yet the coerced value must replace the submitted one
            coerced_nodes[node_id] = PromptNode(node.id, node.class_type, inputs, node.title)
    for node_id, cycle in _cycle_members(prompt, reachable).items():
        entry = node_errors.setdefault(
            node_id, {"errors": [], "dependent_outputs": [], "class_type": prompt.nodes[node_id].class_type}
        )
        entry["errors"].append(node_error("dependency_cycle", "Dependency cycle detected", describe_cycle(cycle)))

    good_outputs: list[str] = []
    for output_id in outputs:
        failing = [n for n in prompt.needed_by([output_id]) if n in node_errors] if node_errors else []
        for node_id in failing:
            if node_id in node_errors:
                node_errors[node_id]["dependent_outputs"].append(output_id)
        if not failing:
            good_outputs.append(output_id)
    coerced = Prompt(nodes=coerced_nodes, raw=prompt.raw)
    if good_outputs:
        return ValidationResult(coerced, good_outputs, None, node_errors)
    if first_missing is not None:
        return ValidationResult(coerced, [], first_missing, node_errors)
    details = "\n".join(format_node_error(prompt, node_id, entry) for node_id, entry in node_errors.items())
    return ValidationResult(
        coerced,
        [],
        node_error("prompt_outputs_failed_validation", "Prompt outputs failed validation", details),
        node_errors,
    )


def _is_output(prompt: Prompt, specs: dict[str, NodeSpec], node_id: str) -> bool:
    node = prompt.nodes.get(node_id)
    spec = specs.get(node.class_type) if node is not None else None
    return spec is not None and spec.output_node


def format_node_error(prompt: Prompt, node_id: str, entry: dict[str, Any]) -> str:
    """One readable line per error: ``#5 ImageScale: input 'width': Value 20000 bigger than max of 16384``."""
    node = prompt.nodes.get(node_id)
    label = node.label() if node is not None else f"#{node_id} {entry.get('class_type', '?')}"
    lines = []
    for error in entry["errors"]:
        input_name = error.get("extra_info", {}).get("input_name")
        where = f"input '{input_name}': " if input_name else ""
        details = f" ({error['details']})" if error.get("details") and error["details"] != input_name else ""
        lines.append(f"{label}: {where}{error['message']}{details}")
    return "\n".join(lines)
