"""The prompt worker: runs queued prompts one at a time on its own thread, so the API never waits on a node."""

from __future__ import annotations

import asyncio
import logging
import threading
import traceback
from typing import Any

from app.engine import Engine
from graph import events
from graph.errors import WorkflowFormatError
from graph.executor import RunResult
from graph.prompt import Prompt
from graph.validation import format_node_error, validate_prompt
from server.hub import WebSocketHub
from server.previews import preview_frame
from server.prompt_queue import PromptQueue
from server.store import HistoryRecord, QueuedPrompt

logger = logging.getLogger(__name__)

IDLE_POLL_SECONDS = 0.5
HISTORY_EVENTS = (
    events.ExecutionStart,
    events.ExecutionCached,
    events.ExecutionSuccess,
    events.ExecutionFailed,
    events.ExecutionInterrupted,
)


class _RunSink:
    """Forwards one prompt's events to its client and keeps the ones its history entry lists."""

    def __init__(self, hub: WebSocketHub, client_id: str | None) -> None:
        self._hub = hub
        self._client_id = client_id
        self.messages: list[list[Any]] = []

    def emit(self, event: events.Event) -> None:
        if isinstance(event, events.NodeFinished):
            return  # internal bookkeeping, not part of ComfyUI's protocol
        if isinstance(event, HISTORY_EVENTS):
            self.messages.append([event.TYPE, event.message()])
        if isinstance(event, events.Progress) and event.preview is not None:
            try:
                self._hub.publish_preview(preview_frame(event.preview), self._client_id)
            except (ValueError, TypeError, OSError) as exc:
                logger.warning("node %s sent a preview that cannot be shown: %s", event.node_id, exc)
        self._hub.publish(event.TYPE, event.message(), self._client_id)


class PromptWorker:
    """Takes prompts from the queue and runs them with the engine's executor on a dedicated thread.

    The thread owns the executor and its cache; the API thread only sets the interrupt flag and requests a
    memory release, which the worker applies between prompts.
    """

    def __init__(self, engine: Engine, queue: PromptQueue, hub: WebSocketHub) -> None:
        self._engine = engine
        self._queue = queue
        self._hub = hub
        self._stopping = threading.Event()
        self._run_lock = threading.Lock()  # makes "which prompt runs" and the interrupt flag change together
        self._current: str | None = None
        self._free_lock = threading.Lock()
        self._free_request: tuple[bool, bool] | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="reelgraph-prompt-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop after interrupting the running prompt, which goes back to the queue to run after a restart."""
        with self._run_lock:
            self._stopping.set()
            if self._current is not None:
                self._engine.executor.interrupt.set()
        self._queue.wake()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                logger.warning("a node ignored the interrupt for %.0f s; its prompt will be marked failed", timeout)

    def interrupt(self, prompt_id: str | None = None) -> bool:
        """Stop the running prompt (only if it is ``prompt_id`` when given); True when one was asked to stop."""
        with self._run_lock:
            if self._current is None or (prompt_id is not None and self._current != prompt_id):
                return False
            self._engine.executor.interrupt.set()
            return True

    def request_free(self, unload_models: bool, free_memory: bool) -> None:
        """Ask for cached outputs (and models) to be released as soon as no prompt runs."""
        with self._free_lock:
            previous = self._free_request or (False, False)
            self._free_request = (previous[0] or unload_models, previous[1] or free_memory)
        self._queue.wake()

    # ----- the worker thread --------------------------------------------------------------------------------------

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        try:
            while not self._stopping.is_set():
                self._apply_free_request()
                item = self._queue.take(IDLE_POLL_SECONDS)
                if item is not None:
                    self._execute(loop, item)
        finally:
            loop.close()

    def _apply_free_request(self) -> None:
        with self._free_lock:
            request, self._free_request = self._free_request, None
        if request is not None:
            self._engine.free(unload_models=request[0], free_memory=request[1])

    def _begin(self, item: QueuedPrompt) -> bool:
        """Make ``item`` the running prompt with a clear interrupt flag; False when the worker is stopping."""
        with self._run_lock:
            if self._stopping.is_set():
                return False
            self._current = item.prompt_id
            self._engine.executor.interrupt.clear()
            return True

    def _end(self) -> None:
        with self._run_lock:
            self._current = None

    def _execute(self, loop: asyncio.AbstractEventLoop, item: QueuedPrompt) -> None:
        if not self._begin(item):
            self._queue.release(item)
            return
        sink = _RunSink(self._hub, item.client_id)
        try:
            record = self._run_prompt(loop, item, sink)
        except Exception as exc:  # a bug outside any node: record it, keep serving
            logger.exception("prompt %s failed outside its nodes", item.prompt_id)
            record = self._fail(item, exc)
        finally:
            self._end()
        if record is None:  # stopped by shutdown: it runs again after the restart
            self._queue.release(item)
            return
        self._queue.finish(item, record)
        done = {"node": None, "display_node": None, "prompt_id": item.prompt_id}
        self._hub.publish("executing", done, item.client_id)

    def _run_prompt(self, loop: asyncio.AbstractEventLoop, item: QueuedPrompt, sink: _RunSink) -> HistoryRecord | None:
        """Run ``item`` and build its history record; a prompt reloaded after a restart is validated again first."""
        validated = item.validated
        if validated is None:
            try:
                prompt = Prompt.parse(item.prompt)
            except WorkflowFormatError as exc:
                return self._fail(item, exc)
            validated = validate_prompt(prompt, self._engine.registry, targets=item.outputs)
        if not validated.ok:
            lines = [validated.error["message"] if validated.error else "the prompt is no longer valid"]
            lines += [
                format_node_error(validated.prompt, node_id, entry) for node_id, entry in validated.node_errors.items()
            ]
            return self._fail(item, ValueError("\n".join(lines)))
        executor = self._engine.executor
        executor.sink = sink
        result = loop.run_until_complete(
            executor.execute(validated.prompt, validated.outputs, prompt_id=item.prompt_id, extra_data=item.extra_data)
        )
        if result.status == "interrupted" and self._stopping.is_set():
            return None
        return _history_record(result, sink.messages)

    def _fail(self, item: QueuedPrompt, exc: BaseException) -> HistoryRecord:
        """A prompt that could not run: tell its client as an ``execution_error`` and record it."""
        message = execution_error(item.prompt_id, type(exc).__name__, str(exc), traceback.format_exception(exc))
        self._hub.publish("execution_error", message, item.client_id)
        return HistoryRecord.failed("execution_error", message)


def _history_record(result: RunResult, messages: list[list[Any]]) -> HistoryRecord:
    success = result.status == "success"
    meta = {
        node_id: {"node_id": node_id, "display_node": node_id, "parent_node": None, "real_node_id": node_id}
        for node_id in result.ui_outputs
    }
    status = {"status_str": "success" if success else "error", "completed": success, "messages": messages}
    return HistoryRecord(outputs=result.ui_outputs, status=status, meta=meta)


def execution_error(
    prompt_id: str, exception_type: str, message: str, trace: list[str] | None = None
) -> dict[str, Any]:
    """ComfyUI's ``execution_error`` data for a failure that belongs to no node (invalid, abandoned, internal)."""
    return {
        "prompt_id": prompt_id,
        "node_id": None,
        "node_type": None,
        "executed": [],
        "exception_message": message,
        "exception_type": exception_type,
        "traceback": trace or [],
        "current_inputs": {},
        "current_outputs": {},
    }
