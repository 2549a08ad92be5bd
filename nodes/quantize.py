"""Quantized diffusion models (torchao): ``QuantizeModel`` makes one, ``SaveQuantizedModel`` writes it to the
diffusion_models folder and ``LoadQuantizedModel`` reads it back without quantizing again.

A quantized model is a new entry in the memory manager derived from the input's (``ModelManager.derive``, as a LoRA
merge): its key adds the method and skip patterns, and the input MODEL stays usable, unchanged. The saved file goes
into the models folder, not the output folder, so that ``LoadQuantizedModel`` lists it at once; numbered names never
overwrite a file.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import torch

from graph.context import current_context
from models.diffusion_model import DiffusionModel
from models.folders import ModelFolders
from models.memory import MODELS_SERVICE, ModelManager, file_key
from models.memory_types import format_bytes
from models.model_handle import ModelHandle, module_nbytes
from models.model_loaders import OFFLOAD_CHOICES
from models.quantize.torchao_quant import (
    METHODS,
    QuantizedFileInfo,
    QuantizeResult,
    check_savable,
    load_quantized_network,
    method_of_network,
    parse_skip_patterns,
    quantize_network,
    quantized_adapter,
    quantized_weights,
    read_quantized_info,
    save_quantized_network,
)
from nodes.errors import named_errors, named_model_errors
from nodes.io import claim_numbered_file, resolve_save_path
from nodes.model_files import MODEL_FOLDERS_SERVICE, ModelFolderBound, resolve_model_file

logger = logging.getLogger(__name__)

CATEGORY = "advanced/model/quantize"
MODELS_KEY = "diffusion_models"
EXTENSION = "safetensors"


def _manager() -> ModelManager:
    return current_context().service(MODELS_SERVICE)


class QuantizeModel:
    """The diffusion model with its Linear layers quantized by torchao (the input MODEL stays as it was)."""

    FUNCTION = "quantize"
    CATEGORY = CATEGORY
    RETURN_TYPES = ("MODEL",)
    OUTPUT_TOOLTIPS = ("The quantized diffusion model.",)
    DESCRIPTION = (
        "Quantizes the diffusion model's Linear layers with torchao to save memory: int8_weight_only (int8 weights, "
        "full-precision activations), int8_dynamic (int8 weights and activations) or fp8_weight_only. Layers named "
        "in skip_layers keep full precision. Shows the model's bytes before and after."
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "model": ("MODEL", {"tooltip": "The diffusion model to quantize."}),
                "method": (list(METHODS), {"tooltip": "How weights (and, for int8_dynamic, activations) are stored."}),
                "skip_layers": (
                    "STRING",
                    {
                        "default": "",
                        "tooltip": "Comma-separated layers to keep in full precision: a name or dotted run of names "
                        "(proj_out, condition_embedder, blocks.0) or a glob (blocks.*.ffn.*).",
                    },
                ),
            }
        }

    def quantize(self, model: DiffusionModel, method: str, skip_layers: str) -> dict[str, Any]:
        with named_errors("QuantizeModel"):
            if method not in METHODS:
                raise ValueError(f"method: {method!r} is not one of {', '.join(METHODS)}")
            patterns = parse_skip_patterns(skip_layers)
            handle, result = _quantized_handle(_manager(), model.handle, method, patterns)
        text = (
            f"{method}: {result.layers} Linear layers quantized; "
            f"{format_bytes(result.bytes_before)} -> {format_bytes(result.bytes_after)}"
        )
        logger.info("QuantizeModel: %s: %s", model.name, text)
        return {"ui": {"text": [text]}, "result": (dataclasses.replace(model, handle=handle),)}


class SaveQuantizedModel:
    """Writes a quantized diffusion model to the diffusion_models folder, for ``LoadQuantizedModel``."""

    FUNCTION = "save"
    CATEGORY = CATEGORY
    RETURN_TYPES = ()
    OUTPUT_NODE = True
    DESCRIPTION = (
        "Saves a model quantized by QuantizeModel as a numbered .safetensors file in the diffusion_models folder; "
        "Load Quantized Model reads it back without quantizing again."
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "model": ("MODEL", {"tooltip": "A model from QuantizeModel."}),
                "filename_prefix": (
                    "STRING",
                    {
                        "default": "quantized/model",
                        "tooltip": "The start of the file name in the diffusion_models folder; may include a "
                        "subfolder.",
                    },
                ),
            }
        }

    def save(self, model: DiffusionModel, filename_prefix: str) -> dict[str, Any]:
        folders: ModelFolders = current_context().service(MODEL_FOLDERS_SERVICE)
        with named_errors("SaveQuantizedModel"), model.handle.use() as network:
            check_savable(network)
            info = QuantizedFileInfo(
                class_name=type(network).__name__,
                config=network.to_json_string(),
                method=method_of_network(network),
                compute_dtype=str(model.compute_dtype).removeprefix("torch."),
                source=model.name,
            )
            target = resolve_save_path(filename_prefix, folders.folder(MODELS_KEY))
            path, _counter = claim_numbered_file(target, target.counter, EXTENSION)
            _write_or_remove(network, path, info)
        name = path.name if not target.subfolder else f"{target.subfolder}/{path.name}"
        logger.info("SaveQuantizedModel: %s (%s) saved as %s/%s", model.name, info.method, MODELS_KEY, name)
        return {"ui": {"text": [f"saved {MODELS_KEY}/{name} ({info.method})"]}, "result": ()}


class LoadQuantizedModel(ModelFolderBound):
    """A diffusion model file written by ``SaveQuantizedModel``, quantized as it was saved."""

    FUNCTION = "load"
    CATEGORY = CATEGORY
    RETURN_TYPES = ("MODEL",)
    OUTPUT_TOOLTIPS = ("The quantized diffusion model.",)
    DESCRIPTION = "Loads a model saved by Save Quantized Model from the diffusion_models folder, without quantizing."

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {"model_name": cls.model_input(MODELS_KEY, "A file written by Save Quantized Model.")},
            "optional": {
                "offload": (
                    list(OFFLOAD_CHOICES),
                    {"default": "auto", "tooltip": "Where the weights live while sampling (auto chooses)."},
                ),
            },
        }

    def load(self, model_name: str, offload: str = "auto") -> tuple[DiffusionModel]:
        with named_errors("LoadQuantizedModel"):
            if offload not in OFFLOAD_CHOICES:
                raise ValueError(f"offload: {offload!r} is not one of {', '.join(OFFLOAD_CHOICES)}")
            path = resolve_model_file(MODELS_KEY, model_name, "model_name")
        with named_model_errors("LoadQuantizedModel: model_name"):
            info = read_quantized_info(path)
            adapter = quantized_adapter(path, info)
            handle = _manager().load(
                file_key("quantized_model", path),
                lambda: load_quantized_network(path, info),
                size_hint=path.stat().st_size,
            )
        return (DiffusionModel(path.name, handle, adapter, adapter.default_sampling(), info.dtype, offload),)


def _quantized_handle(
    manager: ModelManager, base: ModelHandle, method: str, patterns: tuple[str, ...]
) -> tuple[ModelHandle, QuantizeResult]:
    """The manager's handle of ``base``'s network quantized with ``method`` (quantized now unless that handle is
    loaded already), and what quantizing changed."""
    results: list[QuantizeResult] = []

    def quantize(network: torch.nn.Module) -> torch.nn.Module:
        results.append(quantize_network(network, method, patterns))
        return network

    handle = manager.derive(base, f"+quantize:{method}:skip={','.join(patterns)}", quantize)
    if results:
        return handle, results[-1]
    with handle.use() as network:  # loaded by an earlier run: measure what it holds
        return handle, QuantizeResult(quantized_weights(network), base.nbytes, module_nbytes(network))


def _write_or_remove(network: torch.nn.Module, path: Path, info: QuantizedFileInfo) -> None:
    """Write the file claimed at ``path``; a failed write leaves no empty or partial file behind."""
    try:
        save_quantized_network(network, path, info)
    except BaseException:
        path.unlink(missing_ok=True)
        raise


NODE_CLASS_MAPPINGS = {
    "QuantizeModel": QuantizeModel,
    "SaveQuantizedModel": SaveQuantizedModel,
    "LoadQuantizedModel": LoadQuantizedModel,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "QuantizeModel": "Quantize Model",
    "SaveQuantizedModel": "Save Quantized Model",
    "LoadQuantizedModel": "Load Quantized Model",
}
