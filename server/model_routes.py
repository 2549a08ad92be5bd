"""Model requirement routes: ``POST /models/missing`` says which models a workflow needs that the folders lack."""

from __future__ import annotations

import asyncio

from aiohttp import web

from models.requirements import ModelRequirementsError, partition_models, required_models
from server.errors import bad_request, read_json_object
from server.keys import MODEL_FOLDERS

routes = web.RouteTableDef()


@routes.post("/models/missing")
async def missing_models(request: web.Request) -> web.Response:
    """``{"workflow": <editor workflow>}`` -> ``{"missing": [...], "present": [...]}``; nothing is downloaded."""
    body = await read_json_object(request)
    if "workflow" not in body:
        raise bad_request('send the editor workflow as {"workflow": {...}}', "missing_workflow")
    workflow = body["workflow"]
    if not isinstance(workflow, dict):
        raise bad_request(
            f"'workflow' must be the editor's workflow object, got {type(workflow).__name__}", "invalid_workflow"
        )
    try:
        requirements = required_models(workflow)
    except ModelRequirementsError as exc:
        raise bad_request(str(exc), "invalid_workflow") from None
    missing, present = await asyncio.to_thread(partition_models, requirements, request.app[MODEL_FOLDERS])
    return web.json_response(
        {"missing": [item.to_json() for item in missing], "present": [item.to_json() for item in present]}
    )
