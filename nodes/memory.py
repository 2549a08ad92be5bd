"""Memory nodes: free model memory at a chosen point of a graph (between sampling and decoding, say)."""

from __future__ import annotations

import logging
from typing import Any

from graph.context import current_context
from models.memory import MODELS_SERVICE, ModelManager
from models.memory_types import format_bytes

logger = logging.getLogger(__name__)


class FreeModelMemory:
    """Passes ``value`` on after freeing idle models: moved off the device, or unloaded entirely.

    Wire it after the node whose result must exist first: the models that node used are idle once it returned, so
    they go; models a running node still holds stay. It always runs (it is never served from the output cache).
    """

    FUNCTION = "free"
    CATEGORY = "utils/memory"
    RETURN_TYPES = ("*",)
    RETURN_NAMES = ("value",)
    OUTPUT_TOOLTIPS = ("The input value, unchanged.",)
    DESCRIPTION = (
        "Frees model memory once `value` exists: idle models leave the GPU (or, with unload_models, are unloaded "
        "from RAM too; they load again when a later node needs them). Passes `value` on unchanged."
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "value": ("*", {"tooltip": "Any output; the models are freed after it is computed."}),
                "unload_models": (
                    "BOOLEAN",
                    {
                        "default": False,
                        "tooltip": "Unload idle models from RAM too, instead of only moving them off the GPU.",
                    },
                ),
            }
        }

    @classmethod
    def IS_CHANGED(cls, **_inputs: Any) -> float:
        return float("nan")

    def free(self, value: Any, unload_models: bool) -> dict[str, Any]:
        manager: ModelManager = current_context().service(MODELS_SERVICE)
        freed = manager.free(unload_all=unload_models)
        action = "unloaded" if unload_models else "moved off the device"
        text = f"{format_bytes(freed)} of idle models {action}"
        logger.info("FreeModelMemory: %s", text)
        return {"ui": {"text": [text]}, "result": (value,)}


NODE_CLASS_MAPPINGS = {"FreeModelMemory": FreeModelMemory}
NODE_DISPLAY_NAME_MAPPINGS = {"FreeModelMemory": "Free Model Memory"}
