"""torchao post-training quantization of a loaded diffusers network's ``nn.Linear`` layers, the bytes it then holds,
and its safetensors file (read back without quantizing again).

Methods (torchao 0.18 configs, applied in place by ``quantize_``; weights per output row):

- ``int8_weight_only``: int8 weights and a float scale per row; activations stay in the compute dtype.
- ``int8_dynamic``: int8 weights, and activations quantized to int8 per token at run time (int8 matmul).
- ``fp8_weight_only``: float8 e4m3 weights and a scale per row; activations stay in the compute dtype.

Only ``nn.Linear`` layers change (they hold nearly all of a transformer's weights); norms, embeddings, convolutions
and the layers a skip pattern names keep full precision.

The file is plain safetensors: torchao's safetensors support splits each quantized weight into its inner tensors
(``network.<layer>._weight_qdata``, ``..._weight_scale``) and describes it in the header as JSON that names only
allow-listed torchao classes; ``QUANTIZED_METADATA_KEY`` adds the diffusers class and config, the method and the
compute dtype. Nothing is unpickled when it loads.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch.utils._python_dispatch import is_traceable_wrapper_subclass

from models.errors import CorruptModelFileError
from models.families.base import FamilyAdapter
from models.families.catalog import family_of_network_class
from models.model_handle import module_nbytes

__all__ = [
    "FP8_DTYPES",
    "METHODS",
    "QUANTIZED_METADATA_KEY",
    "QuantizeResult",
    "QuantizedFileInfo",
    "check_savable",
    "layer_matches",
    "load_quantized_network",
    "method_of_network",
    "parse_skip_patterns",
    "quantize_network",
    "quantized_adapter",
    "quantized_weights",
    "read_quantized_info",
    "save_quantized_network",
]

METHODS = ("int8_weight_only", "int8_dynamic", "fp8_weight_only")
QUANTIZED_METADATA_KEY = "reelgraph_quantized"
FORMAT_VERSION = 1
FP8_DTYPES = frozenset({torch.float8_e4m3fn, torch.float8_e5m2})
MAX_LISTED = 8
KEY_PREFIX = "network."
"""Before every name in the file: torchao's safetensors support needs a dot in each (``scale_shift_table`` has none)."""


@dataclass(frozen=True)
class QuantizeResult:
    """What ``quantize_network`` changed: how many Linear layers, and the network's stored bytes before and after."""

    layers: int
    bytes_before: int
    bytes_after: int


@dataclass(frozen=True)
class QuantizedFileInfo:
    """The header entry of a quantized file: what to build and how it was quantized.

    Args:
        class_name: the diffusers class of the network (one a model family lists).
        config: the network's diffusers config, as JSON.
        method: one of ``METHODS`` (what ``method_of_network`` finds), for messages.
        compute_dtype: the dtype the network computes in (``"float32"``, ``"bfloat16"``, ...).
        source: the name of the model it was made from, for messages.
    """

    class_name: str
    config: str
    method: str
    compute_dtype: str
    source: str

    def to_json(self) -> str:
        return json.dumps({"format_version": FORMAT_VERSION, **asdict(self)})

    @classmethod
    def from_json(cls, text: str) -> QuantizedFileInfo:
        """The entry written by ``to_json``; ``ValueError`` for another version or missing fields."""
        fields = json.loads(text)
        if not isinstance(fields, dict) or fields.pop("format_version", None) != FORMAT_VERSION:
            raise ValueError(f"{QUANTIZED_METADATA_KEY} is not format version {FORMAT_VERSION}")
        info = cls(**fields)
        if info.method not in METHODS:
            raise ValueError(f"method {info.method!r} is not one of {', '.join(METHODS)}")
        _floating_dtype(info.compute_dtype)
        return info

    @property
    def dtype(self) -> torch.dtype:
        return _floating_dtype(self.compute_dtype)


def parse_skip_patterns(text: str) -> tuple[str, ...]:
    """The comma-separated patterns of ``text``, stripped, blanks dropped; ``ValueError`` for one with a space."""
    patterns = tuple(part.strip() for part in text.split(",") if part.strip())
    for pattern in patterns:
        if any(character.isspace() for character in pattern):
            raise ValueError(f"skip_layers: {pattern!r} has a space; separate patterns with commas")
    return patterns


def layer_matches(name: str, pattern: str) -> bool:
    """Whether ``pattern`` names layer ``name``: a run of its dotted parts (``proj_out``, ``attn1``, ``blocks.0``
    names ``blocks.0.attn1.to_q``'s parents too) or a glob over the whole name (``blocks.*.ffn.*``)."""
    return f".{pattern}." in f".{name}." or fnmatchcase(name, pattern)


def quantize_network(network: torch.nn.Module, method: str, skip_layers: Iterable[str]) -> QuantizeResult:
    """Quantize ``network``'s ``nn.Linear`` layers with ``method`` in place, except those a skip pattern names.

    Raises ``ValueError`` (naming the input at fault) for an unknown method, a pattern that names no layer of the
    network (a typo would otherwise quantize what it meant to keep), weights stored in fp8 or already quantized,
    or nothing left to quantize.
    """
    config = _torchao_config(method)
    patterns = tuple(skip_layers)
    _check_patterns(network, patterns)
    linears = dict(_linear_layers(network))
    _check_plain_weights(linears)
    chosen = {name for name in linears if not any(layer_matches(name, pattern) for pattern in patterns)}
    if not chosen:
        raise ValueError(f"skip_layers: the patterns skip all {len(linears)} Linear layers; nothing to quantize")
    before = module_nbytes(network)
    from torchao.quantization import quantize_

    quantize_(network, config, filter_fn=lambda module, name: name in chosen and isinstance(module, torch.nn.Linear))
    return QuantizeResult(len(chosen), before, module_nbytes(network))


def quantized_weights(network: torch.nn.Module) -> int:
    """How many of ``network``'s parameters are torchao quantized tensors."""
    return sum(1 for tensor in network.parameters() if _is_quantized(tensor))


def check_savable(network: torch.nn.Module) -> None:
    """``ValueError`` naming the ``model`` input unless ``load_quantized_network`` can build ``network``'s class
    again: a diffusers class a family lists (custom classes such as Wan camera control's are not)."""
    if _diffusers_class(type(network).__name__) is not type(network):
        raise ValueError(f"model: {type(network).__name__} networks cannot be saved quantized yet")


def method_of_network(network: torch.nn.Module) -> str:
    """The ``METHODS`` entry that made ``network``'s quantized weights (read from the first one's torchao class)."""
    for tensor in network.parameters():
        if _is_quantized(tensor):
            return _method_of_tensor(tensor)
    raise ValueError("model: it is not quantized; quantize it with QuantizeModel first")


def save_quantized_network(network: torch.nn.Module, path: Path, info: QuantizedFileInfo) -> None:
    """Write ``network``'s state (quantized tensors split into their inner tensors) and ``info`` to ``path``."""
    from torchao.prototype.safetensors.safetensors_support import flatten_tensor_state_dict

    tensors, metadata = flatten_tensor_state_dict(
        {KEY_PREFIX + name: tensor.detach() for name, tensor in network.state_dict().items()}
    )
    metadata[QUANTIZED_METADATA_KEY] = info.to_json()
    save_file({name: tensor.contiguous().cpu() for name, tensor in tensors.items()}, str(path), metadata=metadata)


def read_quantized_info(path: Path) -> QuantizedFileInfo:
    """The header entry of a file ``save_quantized_network`` wrote; ``CorruptModelFileError`` for any other file."""
    try:
        with safe_open(str(path), "pt") as file:
            metadata = file.metadata() or {}
    except (OSError, SafetensorError) as exc:
        raise CorruptModelFileError(path, f"not a readable safetensors file: {exc}") from exc
    if QUANTIZED_METADATA_KEY not in metadata:
        raise CorruptModelFileError(
            path, "not a quantized model written by SaveQuantizedModel (load other models with UNETLoader)"
        )
    try:
        info = QuantizedFileInfo.from_json(metadata[QUANTIZED_METADATA_KEY])
    except (TypeError, ValueError) as exc:
        raise CorruptModelFileError(path, f"{QUANTIZED_METADATA_KEY}: {exc}") from exc
    if _diffusers_class(info.class_name) is None:
        raise CorruptModelFileError(path, f"its network class {info.class_name!r} is not one Reelgraph builds")
    return info


def load_quantized_network(path: Path, info: QuantizedFileInfo) -> torch.nn.Module:
    """The network of ``path`` (``info`` from ``read_quantized_info``), its quantized weights as saved, in eval
    mode; built without allocating weights of its own. ``CorruptModelFileError`` when the tensors do not fit."""
    from accelerate import init_empty_weights
    from torchao.prototype.safetensors.safetensors_support import unflatten_tensor_state_dict

    model_class = _diffusers_class(info.class_name)
    with safe_open(str(path), "pt") as file:
        metadata = file.metadata()
        tensors = {name: file.get_tensor(name) for name in file.keys()}
    try:
        prefixed, leftover = unflatten_tensor_state_dict(tensors, metadata)
        if leftover:
            raise ValueError(f"tensors no weight claims: {_listed(leftover)}")
        state = {name.removeprefix(KEY_PREFIX): tensor for name, tensor in prefixed.items()}
        with init_empty_weights():
            network = model_class.from_config(json.loads(info.config))
        network.load_state_dict(state, strict=True, assign=True)
    except (ValueError, RuntimeError, KeyError, TypeError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CorruptModelFileError(path, f"does not load as {info.class_name}: {reason}") from exc
    return network.eval().requires_grad_(False)


def quantized_adapter(path: Path, info: QuantizedFileInfo) -> FamilyAdapter:
    """The family adapter of the network ``info`` (from ``read_quantized_info(path)``) describes, from its config;
    ``CorruptModelFileError`` when the config does not fit its family."""
    family = family_of_network_class(info.class_name)
    assert family is not None  # read_quantized_info checked the class
    try:
        return family.adapter_from_config(json.loads(info.config))
    except (TypeError, ValueError, KeyError) as exc:
        raise CorruptModelFileError(path, f"{QUANTIZED_METADATA_KEY}: its {info.class_name} config: {exc}") from exc


def _floating_dtype(name: str) -> torch.dtype:
    dtype = getattr(torch, name, None)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"compute dtype {name!r} is not a floating-point torch dtype")
    return dtype


def _torchao_config(method: str) -> Any:
    """The torchao config of ``method``; it leaves torch's global inductor settings alone."""
    from torchao.quantization import Float8WeightOnlyConfig, Int8DynamicActivationInt8WeightConfig, Int8WeightOnlyConfig

    configs = {
        "int8_weight_only": Int8WeightOnlyConfig,
        "int8_dynamic": Int8DynamicActivationInt8WeightConfig,
        "fp8_weight_only": Float8WeightOnlyConfig,
    }
    if method not in configs:
        raise ValueError(f"method: {method!r} is not one of {', '.join(METHODS)}")
    return configs[method](set_inductor_config=False)


def _linear_layers(network: torch.nn.Module) -> Iterable[tuple[str, torch.nn.Linear]]:
    return ((name, module) for name, module in network.named_modules() if isinstance(module, torch.nn.Linear))


def _check_patterns(network: torch.nn.Module, patterns: tuple[str, ...]) -> None:
    names = [name for name, _module in network.named_modules() if name]
    for pattern in patterns:
        if not any(layer_matches(name, pattern) for name in names):
            top = sorted({name.split(".")[0] for name in names})
            raise ValueError(
                f"skip_layers: {pattern!r} names no layer of the network (its top-level layers: {_listed(top)})"
            )


def _check_plain_weights(linears: Mapping[str, torch.nn.Linear]) -> None:
    for name, layer in linears.items():
        if _is_quantized(layer.weight):
            raise ValueError(f"model: {name} is already quantized; quantize the model it was made from")
        if layer.weight.dtype in FP8_DTYPES:
            raise ValueError(
                f"model: its weights are stored in {str(layer.weight.dtype).removeprefix('torch.')} ({name}); load "
                "it with weight_dtype default to quantize it"
            )


def _is_quantized(tensor: torch.Tensor) -> bool:
    return is_traceable_wrapper_subclass(tensor)


def _method_of_tensor(tensor: torch.Tensor) -> str:
    kind = type(tensor).__name__
    if kind == "Float8Tensor":
        return "fp8_weight_only"
    if kind == "Int8Tensor":
        return "int8_weight_only" if getattr(tensor, "act_quant_kwargs", None) is None else "int8_dynamic"
    raise ValueError(f"model: its weights are quantized as {kind}, which QuantizeModel does not make")


def _diffusers_class(class_name: str) -> type | None:
    """The diffusers class ``class_name`` if a family lists it (only those are ever built from a file's header)."""
    if family_of_network_class(class_name) is None:
        return None
    import diffusers

    return getattr(diffusers, class_name, None)


def _listed(names: Iterable[str]) -> str:
    names = list(names)
    return ", ".join(names[:MAX_LISTED]) + (", ..." if len(names) > MAX_LISTED else "")
