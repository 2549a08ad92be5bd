"""``main.py run WORKFLOW``: run a saved workflow without the server, with a progress bar."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from tqdm import tqdm

from app.config import AppConfig
from app.engine import build_engine
from app.first_run import offer_tiny_models
from app.overrides import OverrideError, apply_overrides, parse_override
from graph import events
from graph.api_to_ui import api_to_ui
from graph.context import InterruptFlag
from graph.errors import WorkflowFormatError
from graph.prompt import Prompt
from graph.validation import ValidationResult, format_node_error, validate_prompt
from graph.workflow_file import load_workflow

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INVALID = 2
EXIT_INTERRUPTED = 130


class ProgressSink:
    """Turns executor events into a tqdm bar: one step per node, the running node's own progress as a postfix."""

    def __init__(self, total: int, stream: TextIO, enabled: bool) -> None:
        self._bar = tqdm(total=total, unit="node", file=stream, disable=not enabled, dynamic_ncols=True)
        self._labels: dict[str, str] = {}

    def label_nodes(self, prompt: Prompt) -> None:
        self._labels = {node_id: node.label() for node_id, node in prompt.nodes.items()}

    def emit(self, event: events.Event) -> None:
        if isinstance(event, events.ExecutionCached):
            self._bar.update(len(event.nodes))
        elif isinstance(event, events.Executing) and event.node_id is not None:
            self._bar.set_postfix_str(self._labels.get(event.display_node_id or "", event.node_id), refresh=False)
        elif isinstance(event, events.Progress):
            label = self._labels.get(event.node_id, event.node_id)
            self._bar.set_postfix_str(f"{label} {event.value:g}/{event.max:g}")
        elif isinstance(event, events.NodeFinished) and event.node_id in self._labels:
            self._bar.update(1)

    def close(self, success: bool) -> None:
        if success:
            self._bar.update(self._bar.total - self._bar.n)
        self._bar.close()


def run_workflow(
    config: AppConfig,
    workflow: Path,
    overrides: list[str],
    *,
    out: TextIO | None = None,
    err: TextIO | None = None,
    show_progress: bool = True,
    verbose: bool = False,
    tiny_models: bool = False,
    stdin: TextIO | None = None,
) -> int:
    """Load, validate and run ``workflow``; print where outputs went. Returns the process exit code.

    Missing models the workflow lists are reported first, with the offer of tiny stand-ins (``tiny_models``
    accepts it; otherwise a terminal on ``stdin`` is asked).
    """
    out = out or sys.stdout
    err = err or sys.stderr
    interrupt = InterruptFlag()
    engine = build_engine(config, interrupt=interrupt)
    try:
        loaded = load_workflow(workflow, engine.registry)
        api = apply_overrides(loaded.api, [parse_override(text) for text in overrides], engine.registry)
        prompt = Prompt.parse(api)
    except (WorkflowFormatError, OverrideError) as exc:
        print(f"error: {exc}", file=err)
        return EXIT_INVALID
    offer_tiny_models(
        loaded.ui, config.model_folders, config.models_dir, accept=tiny_models, stdin=stdin or sys.stdin, err=err
    )
    validated = validate_prompt(prompt, engine.registry)
    if validated.node_errors or not validated.ok:
        _print_validation(workflow, validated, err)
        if not validated.ok:
            return EXIT_INVALID
    planned = len(validated.prompt.needed_by(validated.outputs))
    sink = ProgressSink(total=planned, stream=err, enabled=show_progress)
    sink.label_nodes(validated.prompt)
    engine.executor.sink = sink
    workflow_ui = loaded.ui if loaded.ui is not None else api_to_ui(api, engine.registry)  # editable on drop
    extra_data: dict[str, Any] = {"extra_pnginfo": {"workflow": workflow_ui}}
    with _interrupt_on_ctrl_c(interrupt):
        result = asyncio.run(engine.executor.execute(validated.prompt, validated.outputs, extra_data=extra_data))
    sink.close(result.status == "success")
    if result.status == "interrupted":
        print("interrupted", file=err)
        return EXIT_INTERRUPTED
    if result.error is not None:
        _print_failure(validated.prompt, result.error, err, verbose)
        return EXIT_FAILED
    _print_outputs(config, result.ui_outputs, out)
    if validated.node_errors:
        return EXIT_INVALID  # the valid outputs ran, but part of the workflow was dropped
    return EXIT_OK


def _print_validation(workflow: Path, validated: ValidationResult, err: TextIO) -> None:
    if validated.ok:
        print(f"warning: {workflow}: some outputs failed validation and were skipped:", file=err)
    else:
        print(f"error: {workflow}: {validated.error['message'] if validated.error else 'invalid'}", file=err)
    for node_id, entry in validated.node_errors.items():
        for line in format_node_error(validated.prompt, node_id, entry).splitlines():
            print(f"  {line}", file=err)


def _print_failure(prompt: Prompt, error: events.ExecutionFailed, err: TextIO, verbose: bool) -> None:
    node = prompt.nodes.get(error.node_id)
    label = node.label() if node is not None else f"#{error.node_id} {error.node_type}"
    print(f"error: {label} failed: {error.exception_type.rsplit('.', 1)[-1]}: {error.exception_message}", file=err)
    for name, values in error.current_inputs.items():
        print(f"  input {name}: {', '.join(values)}", file=err)
    if verbose:
        print("".join(error.traceback), file=err)


def _print_outputs(config: AppConfig, ui_outputs: dict[str, dict[str, Any]], out: TextIO) -> None:
    roots = {"output": config.folders.output_dir, "temp": config.folders.temp_dir, "input": config.folders.input_dir}
    for node_id, ui in ui_outputs.items():
        for items in ui.values():
            if not isinstance(items, list):
                continue
            for item in items:
                if isinstance(item, dict) and "filename" in item:
                    path = roots.get(item.get("type", "output"), config.folders.output_dir)
                    path = path / item.get("subfolder", "") / item["filename"]
                    kind = "wrote" if item.get("type", "output") == "output" else "preview"
                    print(f"{kind}: {path}  (node {node_id})", file=out)


@contextmanager
def _interrupt_on_ctrl_c(interrupt: InterruptFlag) -> Iterator[None]:
    """First Ctrl-C asks the run to stop cleanly; a second one kills the process."""

    def handler(signum: int, frame: Any) -> None:
        interrupt.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
