"""Test-only nodes that take their time, report progress with previews, or fail: queue, interrupt and restart tests.

``python -m tests.server.slow_nodes ARGS...`` starts a real server (``main.py serve`` arguments) with these nodes
registered, for the tests that need a separate process (kill -9, restart).
"""

from __future__ import annotations

import sys
import time
from typing import Any

from graph.context import ProgressBar
from graph.registry import NodeRegistry


class SlowPass:
    """Passes ``image`` through after ``steps`` steps of ``seconds`` each, reporting progress with a preview."""

    CATEGORY = "testing"
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "image": ("IMAGE",),
                "steps": ("INT", {"default": 3, "min": 1, "max": 100000}),
                "seconds": ("FLOAT", {"default": 0.01, "min": 0.0, "max": 60.0, "step": 0.001}),
            }
        }

    def run(self, image: Any, steps: int, seconds: float) -> tuple[Any]:
        bar = ProgressBar(steps)
        for _ in range(steps):
            time.sleep(seconds)
            bar.update_absolute(bar.current + 1, preview=image[:1])
        return (image,)


class FailWith:
    """Raises ``ValueError(message)`` when run."""

    CATEGORY = "testing"
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"image": ("IMAGE",), "message": ("STRING", {"default": "boom"})}}

    def run(self, image: Any, message: str) -> tuple[Any]:
        raise ValueError(message)


NODE_CLASS_MAPPINGS = {"SlowPass": SlowPass, "FailWith": FailWith}


def register(registry: NodeRegistry) -> None:
    registry.register_mappings(NODE_CLASS_MAPPINGS, python_module="tests.server.slow_nodes")


def _serve(argv: list[str]) -> int:
    import main
    from app.engine import build_engine
    from server.app import serve

    args = main.build_parser().parse_args(["serve", *argv])
    config = main.app_config_from_args(args)
    engine = build_engine(config)
    register(engine.registry)
    return serve(config, main.server_config_from_args(args, main.build_parser()), engine)


if __name__ == "__main__":
    sys.exit(_serve(sys.argv[1:]))
