"""A workflow check's items written into a refused prompt's ``node_errors``, keeping ComfyUI's shape.

``{node_id: {"errors": [{type, message, details, extra_info}], "dependent_outputs", "class_type"}}``: clients (and
ComfyUI's editor) mark the nodes and show the messages; our details go into ``extra_info``: ``pack`` on validation's
own ``missing_node_type`` error, ``missing_model`` with its URL, ``unsupported`` for a choice or input we lack. Nodes
no output needs, which validation skipped, get entries too.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from app.workflow_report import InputIssue, MissingModel, MissingNodeType, WorkflowReport
from graph.validation import node_error

MISSING_NODE_TYPE = "missing_node_type"
VALUE_NOT_IN_LIST = "value_not_in_list"


def node_errors_with_report(
    node_errors: Mapping[str, dict[str, Any]], report: WorkflowReport, class_types: Mapping[str, str]
) -> dict[str, dict[str, Any]]:
    """A copy of ``node_errors`` with every item of ``report`` on its node (``class_types``: the prompt's classes)."""
    merged = copy.deepcopy(dict(node_errors))

    def entry(node_id: str) -> dict[str, Any]:
        return merged.setdefault(
            node_id, {"errors": [], "dependent_outputs": [], "class_type": class_types.get(node_id, "")}
        )

    for missing in report.missing_node_types:
        _add_missing_type(entry(missing.node_id)["errors"], missing)
    for issue in report.input_issues:
        _add_issue(entry(issue.node_id)["errors"], issue)
    for model in report.missing_models:
        for node_id, input_name in model.inputs:
            _add_model(entry(node_id)["errors"], model, input_name)
    return merged


def missing_type_extra(missing: MissingNodeType) -> dict[str, Any]:
    """What a ``missing_node_type`` error's ``extra_info`` gains: the pack to install, or the missing subgraph."""
    return {
        "pack": missing.pack.to_json() if missing.pack is not None else None,
        "subgraph_missing": missing.subgraph_missing,
        "reason": missing.reason,
    }


def _add_missing_type(errors: list[dict[str, Any]], missing: MissingNodeType) -> None:
    """Add the pack to validation's ``missing_node_type`` error (validation names every node of a missing type)."""
    found = _find(errors, MISSING_NODE_TYPE, None)
    if found is not None:
        found["extra_info"].update(missing_type_extra(missing))


def _add_issue(errors: list[dict[str, Any]], issue: InputIssue) -> None:
    # an issue without an input (a left-over widget value) is never merged with another
    found = _find(errors, issue.type, issue.input_name) if issue.input_name is not None else None
    if found is None:
        found = node_error(issue.type, issue.message, issue.input_name or "", input_name=issue.input_name)
        if issue.value is not None:
            found["extra_info"]["received_value"] = issue.value
        errors.append(found)
    found["extra_info"]["unsupported"] = issue.message


def _add_model(errors: list[dict[str, Any]], model: MissingModel, input_name: str) -> None:
    details = f"{input_name}: model file {model.name!r} is not in the {model.folder} folder" + (
        f"; download it from {model.url}" if model.url else ""
    )
    found = _find(errors, VALUE_NOT_IN_LIST, input_name)
    if found is None:
        found = node_error(
            VALUE_NOT_IN_LIST, "Value not in list", details, input_name=input_name, received_value=model.name
        )
        errors.append(found)
    found["details"] = details
    found["extra_info"]["missing_model"] = model.to_json()


def _find(errors: list[dict[str, Any]], kind: str, input_name: str | None) -> dict[str, Any] | None:
    for error in errors:
        extra = error.setdefault("extra_info", {})
        if error.get("type") == kind and (input_name is None or extra.get("input_name") == input_name):
            return error
    return None
