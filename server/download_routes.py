"""Model downloads for a workflow: ``POST /models/download`` starts them on a thread, ``GET /models/download/{job_id}``
reports progress.

Progress is also pushed to every WebSocket client as ``reelgraph.model_download`` messages.
"""

from __future__ import annotations

from aiohttp import web

from server.check_routes import report_of_body
from server.downloads import DownloadBusyError
from server.errors import ApiError
from server.keys import DOWNLOADS

routes = web.RouteTableDef()


@routes.post("/models/download")
async def start_downloads(request: web.Request) -> web.Response:
    """``{"workflow": ...}`` -> 202 and the job's status: each missing model with a Hugging Face URL is fetched into
    its folder; the others are listed under ``by_hand``. 409 while another job runs."""
    report = await report_of_body(request)
    try:
        status = request.app[DOWNLOADS].start(report)
    except DownloadBusyError as exc:
        raise ApiError(409, "download_running", str(exc), job_id=exc.job_id) from None
    return web.json_response(status, status=202)


@routes.get("/models/download/{job_id}")
async def download_status(request: web.Request) -> web.Response:
    """One job (``latest``: the newest): ``state`` (running, done, failed) and each model's ``status``, size, paths
    and error. (``GET /models/download`` alone would be ``GET /models/{folder}``.)"""
    job_id = request.match_info["job_id"]
    status = request.app[DOWNLOADS].status(job_id)
    if status is None:
        raise ApiError(404, "download_not_found", f"no download job {job_id!r}")
    return web.json_response(status)
