"""The internal typed schema of a node class, built once from its ComfyUI-style class attributes.

Node classes declare themselves the way ComfyUI custom node packs do (``INPUT_TYPES``, ``RETURN_TYPES``,
``FUNCTION``, ...). ``NodeSpec.from_class`` checks that declaration and turns it into the typed schema that
validation, the executor and ``object_info`` use.
"""

from __future__ import annotations

import functools
import inspect
import math
from dataclasses import dataclass, field
from typing import Any

from graph.errors import NodeDefinitionError

ANY_TYPE = "*"
COMBO_TYPE = "COMBO"
WIDGET_TYPES = frozenset({"INT", "FLOAT", "STRING", "BOOLEAN", COMBO_TYPE})
UPLOAD_BUTTON_FLAGS = ("image_upload", "video_upload")
UPLOAD_BUTTON_VALUE = "image"  # what ComfyUI's editor saves for an upload button, whatever it uploads
HIDDEN_INPUTS = frozenset(
    {"PROMPT", "EXTRA_PNGINFO", "UNIQUE_ID", "DYNPROMPT", "AUTH_TOKEN_COMFY_ORG", "API_KEY_COMFY_ORG"}
)
SECTIONS = ("required", "optional", "hidden")
MODEL_FOLDER_OPTION = "model_folder"  # a combo of model files names its model folder key in this option


@dataclass(frozen=True)
class InputSpec:
    """One declared input: its socket type (or combo choices) and its options."""

    name: str
    type: str
    section: str
    options: dict[str, Any] = field(default_factory=dict)
    choices: tuple[Any, ...] | None = None

    @property
    def required(self) -> bool:
        return self.section == "required"

    @property
    def lazy(self) -> bool:
        return bool(self.options.get("lazy", False))

    @property
    def is_widget(self) -> bool:
        """Whether the editor shows this input as a widget (a value typed in) rather than a socket."""
        return self.type in WIDGET_TYPES and not self.options.get("forceInput", False)

    @property
    def has_control_after_generate(self) -> bool:
        """INT widgets with a seed control carry one extra value (fixed/increment/...) in UI workflows."""
        if self.type != "INT":
            return False
        flag = self.options.get("control_after_generate")
        return bool(flag) if flag is not None else self.name in ("seed", "noise_seed")

    @property
    def has_upload_button(self) -> bool:
        """Combos with ``image_upload`` / ``video_upload`` get an upload button whose value (``"image"``) UI
        workflows save right after the combo's."""
        return self.type == COMBO_TYPE and any(self.options.get(flag) for flag in UPLOAD_BUTTON_FLAGS)

    @property
    def model_folder(self) -> str | None:
        """The model folder key whose files this combo lists (``"vae"``, ``"loras"``, ...), None for other inputs."""
        folder = self.options.get(MODEL_FOLDER_OPTION)
        return folder if isinstance(folder, str) and folder else None

    def raw(self) -> list[Any]:
        """The ``object_info`` form: ``[TYPE, options]``, with legacy combos as ``[[choices...], options]``."""
        legacy_combo = self.choices is not None and "options" not in self.options
        head: Any = list(self.choices or ()) if legacy_combo else self.type
        return [head, dict(self.options)] if self.options else [head]


@dataclass(frozen=True)
class NodeSpec:
    """Everything the engine needs to know about a node class."""

    class_type: str
    node_class: type
    inputs: dict[str, InputSpec]
    input_order: dict[str, tuple[str, ...]]
    output_types: tuple[str, ...]
    output_names: tuple[str, ...]
    output_is_list: tuple[bool, ...]
    input_is_list: bool
    function: str
    category: str
    output_node: bool
    not_idempotent: bool
    description: str
    display_name: str
    python_module: str
    runs_async: bool
    has_is_changed: bool
    has_validate_inputs: bool
    has_lazy_check: bool
    validate_inputs_names: frozenset[str]
    validate_inputs_takes_all: bool
    deprecated: bool = False
    experimental: bool = False
    cache_version: str = "0"

    @classmethod
    def from_class(
        cls, class_type: str, node_class: type, *, display_name: str | None = None, python_module: str | None = None
    ) -> NodeSpec:
        """Check a node class's declaration and build its spec; raises ``NodeDefinitionError``."""
        return _build_spec(class_type, node_class, display_name, python_module)

    def refreshed_inputs(self) -> tuple[dict[str, InputSpec], dict[str, tuple[str, ...]]]:
        """Re-read ``INPUT_TYPES()`` (choices such as file lists change while the app runs)."""
        return _parse_input_types(self.class_type, self.node_class)

    @functools.cached_property
    def hidden_inputs(self) -> tuple[InputSpec, ...]:
        """Inputs the executor fills in itself (PROMPT, EXTRA_PNGINFO, UNIQUE_ID, ...)."""
        return tuple(spec for spec in self.inputs.values() if spec.section == "hidden")

    @property
    def widget_inputs(self) -> list[InputSpec]:
        """Widget inputs in the order the editor stores their values (required, then optional)."""
        names = self.input_order.get("required", ()) + self.input_order.get("optional", ())
        return [self.inputs[name] for name in names if self.inputs[name].is_widget]

    def object_info(self) -> dict[str, Any]:
        """This node's entry in ``GET /object_info``."""
        sections: dict[str, dict[str, Any]] = {section: {} for section in SECTIONS}
        for spec in self.inputs.values():
            sections[spec.section][spec.name] = spec.raw()
        info: dict[str, Any] = {
            "input": {section: entries for section, entries in sections.items() if entries or section == "required"},
            "input_order": {section: list(names) for section, names in self.input_order.items() if names},
            "output": list(self.output_types),
            "output_is_list": list(self.output_is_list),
            "output_name": list(self.output_names),
            "name": self.class_type,
            "display_name": self.display_name,
            "description": self.description,
            "python_module": self.python_module,
            "category": self.category,
            "output_node": self.output_node,
        }
        tooltips = getattr(self.node_class, "OUTPUT_TOOLTIPS", None)
        if tooltips:
            info["output_tooltips"] = list(tooltips)
        if self.deprecated:
            info["deprecated"] = True
        if self.experimental:
            info["experimental"] = True
        return info


def _build_spec(class_type: str, node_class: type, display_name: str | None, python_module: str | None) -> NodeSpec:
    if not isinstance(node_class, type):
        raise NodeDefinitionError(class_type, "is not a class")
    inputs, order = _parse_input_types(class_type, node_class)
    function = getattr(node_class, "FUNCTION", None)
    if not isinstance(function, str) or not callable(getattr(node_class, function, None)):
        raise NodeDefinitionError(class_type, f"FUNCTION {function!r} does not name a method of the class")
    output_types = _parse_return_types(class_type, node_class)
    declared_names = _optional_sequence(class_type, node_class, "RETURN_NAMES")
    output_names = tuple(declared_names or output_types)
    if len(output_names) != len(output_types):
        raise NodeDefinitionError(class_type, "RETURN_NAMES and RETURN_TYPES differ in length")
    output_is_list = tuple(bool(flag) for flag in (_optional_sequence(class_type, node_class, "OUTPUT_IS_LIST") or ()))
    if not output_is_list:
        output_is_list = (False,) * len(output_types)
    if len(output_is_list) != len(output_types):
        raise NodeDefinitionError(class_type, "OUTPUT_IS_LIST and RETURN_TYPES differ in length")
    return NodeSpec(
        class_type=class_type,
        node_class=node_class,
        inputs=inputs,
        input_order=order,
        output_types=output_types,
        output_names=tuple(str(name) for name in output_names),
        output_is_list=output_is_list,
        input_is_list=bool(getattr(node_class, "INPUT_IS_LIST", False)),
        function=function,
        category=str(getattr(node_class, "CATEGORY", "") or ""),
        output_node=bool(getattr(node_class, "OUTPUT_NODE", False)),
        not_idempotent=bool(getattr(node_class, "NOT_IDEMPOTENT", False)),
        description=str(getattr(node_class, "DESCRIPTION", "") or ""),
        display_name=display_name or class_type,
        python_module=python_module or getattr(node_class, "__module__", "") or "",
        runs_async=any(
            inspect.iscoroutinefunction(getattr(node_class, name, None)) for name in (function, "check_lazy_status")
        ),
        has_is_changed=callable(getattr(node_class, "IS_CHANGED", None)),
        has_validate_inputs=callable(getattr(node_class, "VALIDATE_INPUTS", None)),
        has_lazy_check=callable(getattr(node_class, "check_lazy_status", None)),
        validate_inputs_names=_parameter_names(getattr(node_class, "VALIDATE_INPUTS", None)),
        validate_inputs_takes_all=_takes_keywords(getattr(node_class, "VALIDATE_INPUTS", None)),
        deprecated=bool(getattr(node_class, "DEPRECATED", False)),
        experimental=bool(getattr(node_class, "EXPERIMENTAL", False)),
        cache_version=str(getattr(node_class, "CACHE_VERSION", "0")),
    )


def _parameter_names(function: Any) -> frozenset[str]:
    """The names a hook such as ``VALIDATE_INPUTS`` declares (empty when the class has no such hook)."""
    if not callable(function):
        return frozenset()
    return frozenset(inspect.signature(function).parameters)


def _takes_keywords(function: Any) -> bool:
    """Whether a hook takes ``**kwargs`` (and so every constant input)."""
    if not callable(function):
        return False
    return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in inspect.signature(function).parameters.values())


def _optional_sequence(class_type: str, node_class: type, attribute: str) -> tuple[Any, ...] | list[Any] | None:
    """An optional tuple attribute such as ``RETURN_NAMES``; anything but a tuple or list is a bad declaration."""
    value = getattr(node_class, attribute, None)
    if value is None or isinstance(value, (tuple, list)):
        return value
    raise NodeDefinitionError(class_type, f"{attribute} must be a tuple, got {type(value).__name__}")


def _parse_return_types(class_type: str, node_class: type) -> tuple[str, ...]:
    declared = getattr(node_class, "RETURN_TYPES", ())
    if not isinstance(declared, (tuple, list)):
        raise NodeDefinitionError(class_type, "RETURN_TYPES must be a tuple")
    types: list[str] = []
    for entry in declared:
        if isinstance(entry, (list, tuple)):  # an output that feeds combo inputs
            types.append(COMBO_TYPE)
        elif isinstance(entry, str) and entry:
            types.append(entry)
        else:
            raise NodeDefinitionError(class_type, f"RETURN_TYPES entry {entry!r} is not a type name")
    return tuple(types)


def _parse_input_types(class_type: str, node_class: type) -> tuple[dict[str, InputSpec], dict[str, tuple[str, ...]]]:
    input_types = getattr(node_class, "INPUT_TYPES", None)
    if not callable(input_types):
        raise NodeDefinitionError(class_type, "INPUT_TYPES classmethod is missing")
    try:
        declared = input_types()
    except Exception as exc:  # a pack's INPUT_TYPES can fail (missing folder, bad import)
        raise NodeDefinitionError(class_type, f"INPUT_TYPES() raised {type(exc).__name__}: {exc}") from exc
    if not isinstance(declared, dict):
        raise NodeDefinitionError(class_type, "INPUT_TYPES() must return a dict")
    inputs: dict[str, InputSpec] = {}
    order: dict[str, tuple[str, ...]] = {}
    for section in SECTIONS:
        entries = declared.get(section) or {}
        if not isinstance(entries, dict):
            raise NodeDefinitionError(class_type, f"INPUT_TYPES()[{section!r}] must be a dict")
        for name, raw in entries.items():
            if name in inputs:
                raise NodeDefinitionError(class_type, f"input {name!r} is declared twice")
            inputs[name] = _parse_input(class_type, str(name), section, raw)
        order[section] = tuple(str(name) for name in entries)
    return inputs, order


def _parse_input(class_type: str, name: str, section: str, raw: Any) -> InputSpec:
    if section == "hidden" and isinstance(raw, str):
        return InputSpec(name=name, type=raw, section=section)
    if isinstance(raw, str):
        raw = (raw,)
    if not isinstance(raw, (tuple, list)) or not raw:
        raise NodeDefinitionError(class_type, f"input {name!r}: spec must be (TYPE, options), got {raw!r}")
    head = raw[0]
    options = dict(raw[1]) if len(raw) > 1 and isinstance(raw[1], dict) else {}
    choices: tuple[Any, ...] | None = None
    if isinstance(head, (list, tuple)):
        type_name, choices = COMBO_TYPE, tuple(head)
    elif head == COMBO_TYPE:
        type_name, choices = COMBO_TYPE, tuple(options.get("options", ()))
    elif isinstance(head, str) and head:
        type_name = head
    else:
        raise NodeDefinitionError(class_type, f"input {name!r}: type {head!r} is not a type name")
    _check_numeric_options(class_type, name, type_name, options)
    return InputSpec(name=name, type=type_name, section=section, options=options, choices=choices)


def _check_numeric_options(class_type: str, name: str, type_name: str, options: dict[str, Any]) -> None:
    if type_name not in ("INT", "FLOAT"):
        return
    low, high, default = options.get("min"), options.get("max"), options.get("default")
    for key, bound in (("min", low), ("max", high), ("step", options.get("step")), ("default", default)):
        if bound is not None and (not isinstance(bound, (int, float)) or isinstance(bound, bool) or math.isnan(bound)):
            raise NodeDefinitionError(class_type, f"input {name!r}: {key} {bound!r} is not a number")
    if low is not None and high is not None and low > high:
        raise NodeDefinitionError(class_type, f"input {name!r}: min {low} is above max {high}")
    if default is not None and ((low is not None and default < low) or (high is not None and default > high)):
        raise NodeDefinitionError(class_type, f"input {name!r}: default {default} lies outside [{low}, {high}]")
