"""``main.py extract-workflow FILE``: print the workflow a saved image or video carries."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TextIO

from nodes.media.errors import MediaError
from nodes.media.provenance import read_embedded_workflow


def extract_workflow(path: Path, api: bool = False, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Write the embedded editor workflow (or, with ``api``, the API prompt) as JSON; 0 on success, 1 with a reason."""
    out = out or sys.stdout
    err = err or sys.stderr
    if not path.is_file():
        print(f"error: {path}: no such file", file=err)
        return 1
    try:
        found = read_embedded_workflow(path)
    except MediaError as exc:
        print(f"error: {path}: {exc.reason}", file=err)
        return 1
    wanted, other = ("prompt", "workflow") if api else ("workflow", "prompt")
    value = getattr(found, wanted)
    if value is None:
        hint = f" (it has the {other}: run {'without' if api else 'with'} --api)" if getattr(found, other) else ""
        print(f"error: {path}: no {wanted} is embedded in this file{hint}", file=err)
        return 1
    try:
        out.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")
        out.flush()
    except BrokenPipeError:  # the reader went away (``| head``): not an error of ours
        _silence_stdout()
    return 0


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not raise on the closed pipe again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
