"""Primitive nodes: a typed constant typed into a widget, passed on unchanged (ComfyUI's ``Primitive*`` nodes)."""

from __future__ import annotations

from typing import Any, ClassVar

from models.noise import SEED_MAX

CATEGORY = "utils/primitive"
INT_MIN = -(2**63)
INT_MAX = 2**63 - 1


class _Primitive:
    """Shared shape of the primitive nodes: one required ``value`` widget returned as the only output."""

    FUNCTION = "execute"
    CATEGORY = CATEGORY
    OUTPUT_NODE = False
    VALUE_TYPE = ""
    VALUE_OPTIONS: ClassVar[dict[str, Any]] = {}

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"value": (cls.VALUE_TYPE, dict(cls.VALUE_OPTIONS))}}

    def execute(self, value: Any) -> tuple[Any]:
        return (value,)


class PrimitiveInt(_Primitive):
    """A whole number; the editor can change it after each run (fixed, increment, decrement, randomize)."""

    VALUE_TYPE = "INT"
    VALUE_OPTIONS: ClassVar[dict[str, Any]] = {
        "default": 0,
        "min": INT_MIN,
        "max": INT_MAX,
        "control_after_generate": True,
        "tooltip": "The integer to pass on.",
    }
    RETURN_TYPES = ("INT",)
    DESCRIPTION = "Outputs a constant integer."


class PrimitiveFloat(_Primitive):
    """A floating-point number."""

    VALUE_TYPE = "FLOAT"
    VALUE_OPTIONS: ClassVar[dict[str, Any]] = {
        "default": 0.0,
        "min": float(INT_MIN),
        "max": float(INT_MAX),
        "tooltip": "The number to pass on.",
    }
    RETURN_TYPES = ("FLOAT",)
    DESCRIPTION = "Outputs a constant floating-point number."


class PrimitiveString(_Primitive):
    """A single-line string."""

    VALUE_TYPE = "STRING"
    VALUE_OPTIONS: ClassVar[dict[str, Any]] = {"default": "", "tooltip": "The text to pass on."}
    RETURN_TYPES = ("STRING",)
    DESCRIPTION = "Outputs a constant single-line string."


class PrimitiveStringMultiline(_Primitive):
    """A string edited in a multi-line text box (prompts)."""

    VALUE_TYPE = "STRING"
    VALUE_OPTIONS: ClassVar[dict[str, Any]] = {"default": "", "multiline": True, "tooltip": "The text to pass on."}
    RETURN_TYPES = ("STRING",)
    DESCRIPTION = "Outputs a constant multi-line string."


class PrimitiveBoolean(_Primitive):
    """A true/false toggle."""

    VALUE_TYPE = "BOOLEAN"
    VALUE_OPTIONS: ClassVar[dict[str, Any]] = {"default": False, "tooltip": "The value to pass on."}
    RETURN_TYPES = ("BOOLEAN",)
    DESCRIPTION = "Outputs a constant boolean."


class PrimitiveSeed:
    """A random seed in the full unsigned 64-bit range, with the editor's after-run control."""

    FUNCTION = "execute"
    CATEGORY = CATEGORY
    OUTPUT_NODE = False
    RETURN_TYPES = ("INT",)
    RETURN_NAMES = ("seed",)
    DESCRIPTION = "Outputs a seed to share between samplers and other random nodes."

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "seed": (
                    "INT",
                    {
                        "default": 0,
                        "min": 0,
                        "max": SEED_MAX,
                        "control_after_generate": True,
                        "tooltip": "The seed; set 'control after generate' to randomize or step it after each run.",
                    },
                )
            }
        }

    def execute(self, seed: int) -> tuple[int]:
        return (seed,)


NODE_CLASS_MAPPINGS = {
    "PrimitiveInt": PrimitiveInt,
    "PrimitiveFloat": PrimitiveFloat,
    "PrimitiveString": PrimitiveString,
    "PrimitiveStringMultiline": PrimitiveStringMultiline,
    "PrimitiveBoolean": PrimitiveBoolean,
    "PrimitiveSeed": PrimitiveSeed,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "PrimitiveInt": "Int",
    "PrimitiveFloat": "Float",
    "PrimitiveString": "String",
    "PrimitiveStringMultiline": "String (Multiline)",
    "PrimitiveBoolean": "Boolean",
    "PrimitiveSeed": "Seed",
}
