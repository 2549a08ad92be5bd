"""Queue routes: ``/prompt``, ``/queue``, ``/interrupt``, ``/history``, ``/free`` with ComfyUI's shapes."""

from __future__ import annotations

import asyncio
import copy
import uuid
from collections.abc import Callable
from typing import Any

from aiohttp import web

from app.workflow_check import check_workflow
from graph.errors import WorkflowFormatError
from graph.prompt import Prompt
from graph.registry import NodeRegistry
from graph.validation import ValidationResult, validate_prompt
from graph.workflow_file import LoadedWorkflow, detect_format, load_workflow
from models.folders import ModelFolders
from server.errors import ApiError, bad_request, error_body, read_json_object
from server.keys import MODEL_FOLDERS, RUNTIME
from server.report_errors import missing_type_extra, node_errors_with_report
from server.store import QueuedPrompt

routes = web.RouteTableDef()

MAX_PROMPT_ID_LENGTH = 200


@routes.get("/prompt")
async def queue_info(request: web.Request) -> web.Response:
    return web.json_response({"exec_info": {"queue_remaining": request.app[RUNTIME].queue.remaining()}})


@routes.post("/prompt")
async def queue_prompt(request: web.Request) -> web.Response:
    """Validate and queue a prompt; 400 with ``node_errors`` when nothing in it can run."""
    body = await read_json_object(request)
    runtime = request.app[RUNTIME]
    raw_prompt = body.get("prompt")
    if raw_prompt is None:
        return _invalid(error_body("no_prompt", "No prompt provided", "No prompt provided"))
    extra_data = _optional(body, "extra_data", dict) or {}
    client_id = _optional(body, "client_id", str)
    if client_id is not None:
        extra_data = {**extra_data, "client_id": client_id}
    targets = _optional(body, "partial_execution_targets", list)
    if targets is not None and not all(isinstance(target, str) for target in targets):
        raise bad_request("partial_execution_targets must be a list of node ids")
    loaded = _api_prompt(runtime.engine.registry, raw_prompt, extra_data)
    api, extra_data = loaded.api, _with_workflow(extra_data, loaded)
    validated = await asyncio.to_thread(_validate, api, runtime.engine.registry, targets)
    if not validated.ok:
        folders = request.app[MODEL_FOLDERS]
        refusal = await asyncio.to_thread(_refusal, validated, loaded, runtime.engine.registry, folders)
        return web.json_response(refusal, status=400)
    prompt_id = _new_prompt_id(runtime.store, runtime.queue, _optional(body, "prompt_id", str))
    number = _number(body, runtime.queue.take_number(front=bool(body.get("front"))))
    item = QueuedPrompt(number, prompt_id, api, extra_data, validated.outputs, validated=validated)
    runtime.queue.put(item)
    return web.json_response({"prompt_id": prompt_id, "number": number, "node_errors": validated.node_errors})


@routes.get("/queue")
async def get_queue(request: web.Request) -> web.Response:
    return web.Response(body=request.app[RUNTIME].queue.wire_json(), content_type="application/json")


@routes.post("/queue")
async def edit_queue(request: web.Request) -> web.Response:
    """``{"clear": true}`` empties the pending queue, ``{"delete": [ids]}`` removes pending prompts."""
    _clear_or_delete(await read_json_object(request), request.app[RUNTIME].queue.delete)
    return web.json_response({})


@routes.post("/interrupt")
async def interrupt(request: web.Request) -> web.Response:
    """Stop the running prompt at its next node boundary or progress call (only ``prompt_id`` when given)."""
    body = await read_json_object(request, allow_empty=True)
    request.app[RUNTIME].worker.interrupt(_optional(body, "prompt_id", str))
    return web.json_response({})


@routes.get("/history")
async def get_history(request: web.Request) -> web.Response:
    max_items = _query_int(request, "max_items")
    offset = _query_int(request, "offset")
    history = await asyncio.to_thread(
        request.app[RUNTIME].store.history, max_items, offset if offset is not None else -1
    )
    return web.json_response(history)


@routes.get("/history/{prompt_id}")
async def get_history_entry(request: web.Request) -> web.Response:
    prompt_id = request.match_info["prompt_id"]
    entry = await asyncio.to_thread(request.app[RUNTIME].store.history_entry, prompt_id)
    return web.json_response({prompt_id: entry} if entry is not None else {})


@routes.post("/history")
async def edit_history(request: web.Request) -> web.Response:
    """``{"clear": true}`` or ``{"delete": [ids]}``; output files stay on disk."""
    _clear_or_delete(await read_json_object(request), request.app[RUNTIME].store.delete_history)
    return web.json_response({})


@routes.post("/history/{prompt_id}/requeue")
async def requeue(request: web.Request) -> web.Response:
    """Queue a finished (or failed) prompt again under a new id; answers like ``POST /prompt``."""
    runtime = request.app[RUNTIME]
    original = runtime.store.finished_prompt(request.match_info["prompt_id"])
    if original is None:
        raise ApiError(404, "prompt_not_found", f"no finished prompt {request.match_info['prompt_id']!r} in history")
    validated = await asyncio.to_thread(_validate, original.prompt, runtime.engine.registry, original.outputs)
    if not validated.ok:
        return _invalid({"error": validated.error}, validated.node_errors)
    prompt_id = str(uuid.uuid4())
    item = QueuedPrompt(runtime.queue.take_number(), prompt_id, original.prompt, original.extra_data, validated.outputs)
    runtime.queue.put(item)
    return web.json_response({"prompt_id": prompt_id, "number": item.number, "node_errors": validated.node_errors})


@routes.post("/free")
async def free(request: web.Request) -> web.Response:
    """Release cached outputs (``free_memory``) and models (``unload_models``) once no prompt is running."""
    body = await read_json_object(request, allow_empty=True)
    unload, free_memory = bool(body.get("unload_models")), bool(body.get("free_memory"))
    if unload or free_memory:
        request.app[RUNTIME].worker.request_free(unload_models=unload, free_memory=free_memory)
    return web.json_response({})


# ----- helpers --------------------------------------------------------------------------------------------------


def _validate(api: dict[str, Any], registry: Any, targets: list[str] | None) -> ValidationResult:
    return validate_prompt(Prompt.parse(api), registry, targets)


def _api_prompt(registry: Any, raw: Any, extra_data: dict[str, Any]) -> LoadedWorkflow:
    """The API prompt to queue, with the UI workflow that came with it: a UI-format prompt is converted; an API
    prompt may carry the editor's workflow in ``extra_data.extra_pnginfo.workflow``."""
    try:
        if _is_ui_workflow(raw):
            return load_workflow(raw, registry)
        Prompt.parse(raw)
    except WorkflowFormatError as exc:
        raise ApiError(400, "invalid_prompt", f"invalid prompt: {exc}", node_errors={}) from None
    pnginfo = extra_data.get("extra_pnginfo")
    ui = pnginfo.get("workflow") if isinstance(pnginfo, dict) else None
    return LoadedWorkflow(api=dict(raw), ui=ui if _is_ui_workflow(ui) else None, source_format="api")


def _with_workflow(extra_data: dict[str, Any], loaded: LoadedWorkflow) -> dict[str, Any]:
    """``extra_data`` with a converted UI prompt's workflow under ``extra_pnginfo``, as outputs embed it."""
    if loaded.source_format != "ui":
        return extra_data
    pnginfo = dict(extra_data.get("extra_pnginfo") or {})
    pnginfo.setdefault("workflow", loaded.ui)
    return {**extra_data, "extra_pnginfo": pnginfo}


def _refusal(
    validated: ValidationResult, loaded: LoadedWorkflow, registry: NodeRegistry, folders: ModelFolders
) -> dict[str, Any]:
    """The 400 body: ComfyUI's ``error`` and ``node_errors``, with the workflow check's items on their nodes and the
    whole ``report``."""
    error = copy.deepcopy(validated.error)
    try:
        report = check_workflow(loaded, registry, folders)
    except WorkflowFormatError:
        return {"error": error, "node_errors": validated.node_errors}
    if error is not None and error.get("type") == "missing_node_type":
        node_id = error.get("extra_info", {}).get("node_id")
        missing = next((item for item in report.missing_node_types if item.node_id == node_id), None)
        if missing is not None:
            error["extra_info"].update(missing_type_extra(missing))
    class_types = {node_id: node.class_type for node_id, node in validated.prompt.nodes.items()}
    node_errors = node_errors_with_report(validated.node_errors, report, class_types)
    return {"error": error, "node_errors": node_errors, "report": report.to_json()}


def _is_ui_workflow(raw: Any) -> bool:
    try:
        return detect_format(raw) == "ui"
    except WorkflowFormatError:
        return False


def _invalid(error: dict[str, Any], node_errors: dict[str, Any] | None = None) -> web.Response:
    return web.json_response({**error, "node_errors": node_errors or {}}, status=400)


def _optional(body: dict[str, Any], key: str, kind: type) -> Any:
    value = body.get(key)
    if value is not None and not isinstance(value, kind):
        raise bad_request(f"{key} must be a {kind.__name__}, got {type(value).__name__}")
    return value


def _clear_or_delete(body: dict[str, Any], delete: Callable[[list[str] | None], int]) -> None:
    """ComfyUI's ``{"clear": true}`` (``delete(None)``) and ``{"delete": [ids]}`` bodies."""
    ids = body.get("delete")
    if ids is not None and (not isinstance(ids, list) or not all(isinstance(item, str) for item in ids)):
        raise bad_request("delete must be a list of prompt ids")
    if body.get("clear"):
        delete(None)
    if ids:
        delete(ids)


def _new_prompt_id(store: Any, queue: Any, wanted: str | None) -> str:
    if wanted is None:
        return str(uuid.uuid4())
    if not wanted or len(wanted) > MAX_PROMPT_ID_LENGTH or not wanted.isprintable():
        raise bad_request(f"prompt_id must be 1 to {MAX_PROMPT_ID_LENGTH} printable characters")
    if queue.contains(wanted) or store.exists(wanted):
        raise ApiError(400, "prompt_id_in_use", f"prompt_id {wanted!r} is already queued or in history", node_errors={})
    return wanted


def _number(body: dict[str, Any], default: int) -> float:
    value = body.get("number")
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad_request(f"number must be a number, got {type(value).__name__}")
    return value


def _query_int(request: web.Request, name: str) -> int | None:
    text = request.query.get(name)
    if text is None or text == "":
        return None
    try:
        return int(text)
    except ValueError:
        raise bad_request(f"{name} must be an integer, got {text!r}") from None
