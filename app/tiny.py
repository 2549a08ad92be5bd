"""``main.py make-tiny-models DIR``: write the tiny stand-in models and print where they went."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO


def make_tiny_models(models_dir: Path, seed: int = 0, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Write the stand-ins below ``models_dir``, keeping any real model file already there; 0 on success, 1 with a
    one-line reason."""
    out = out or sys.stdout
    err = err or sys.stderr
    if models_dir.exists() and not models_dir.is_dir():
        print(f"error: {models_dir}: not a folder", file=err)
        return 1
    from app.first_run import install_tiny_models

    try:
        result = install_tiny_models(models_dir, seed=seed)
    except OSError as exc:
        print(f"error: {models_dir}: {exc.strerror or exc}", file=err)
        return 1
    for path in result.written:
        print(path, file=out)
    for path in result.kept:
        print(f"kept {path}: not a tiny stand-in, left as it is", file=err)
    return 0
