"""``POST /workflow/check``: whether a shared workflow runs here, and what stops it (``app.workflow_check``)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from app.workflow_check import check_workflow
from app.workflow_report import WorkflowReport
from graph.errors import WorkflowFormatError
from graph.registry import NodeRegistry
from graph.workflow_file import load_workflow
from models.folders import ModelFolders
from server.errors import bad_request, read_json_object
from server.keys import ENGINE, MODEL_FOLDERS

routes = web.RouteTableDef()


async def report_of_body(request: web.Request) -> WorkflowReport:
    """The report for the body's ``workflow`` (UI or API format), computed off the loop; 400 when unreadable."""
    body = await read_json_object(request)
    if "workflow" not in body:
        raise bad_request('send the workflow (UI or API format) as {"workflow": {...}}', "missing_workflow")
    workflow = body["workflow"]
    if not isinstance(workflow, dict):
        raise bad_request(f"'workflow' must be a JSON object, got {type(workflow).__name__}", "invalid_workflow")
    registry = request.app[ENGINE].registry
    try:
        return await asyncio.to_thread(_check, workflow, registry, request.app[MODEL_FOLDERS])
    except WorkflowFormatError as exc:
        raise bad_request(f"invalid workflow: {exc}", "invalid_workflow") from None


@routes.post("/workflow/check")
async def check(request: web.Request) -> web.Response:
    """``{"workflow": ...}`` -> the report: ``ready``, missing node types (with their packs), input issues, missing
    models (with their URLs) and workflow problems."""
    return web.json_response((await report_of_body(request)).to_json())


def _check(workflow: dict[str, Any], registry: NodeRegistry, folders: ModelFolders) -> WorkflowReport:
    return check_workflow(load_workflow(workflow, registry), registry, folders)
