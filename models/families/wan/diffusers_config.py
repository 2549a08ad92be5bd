"""Wan transformers of diffusers folders: the ``WanTransformerSpec`` a component's ``config.json`` describes, so a
model loaded from a pipeline folder gets the adapter and sampling its single file gets."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from models.families.wan.checkpoint import WanTransformerSpec, variant_of_config

__all__ = ["VACE_CLASS", "wan_spec_from_config"]

VACE_CLASS = "WanVACETransformer3DModel"


def wan_spec_from_config(config: Mapping[str, Any]) -> WanTransformerSpec:
    """The spec of a ``WanTransformer3DModel`` or ``WanVACETransformer3DModel`` config (a diffusers
    ``transformer/config.json``): its constructor arguments, with diffusers' defaults for those the file leaves out
    (as ``from_pretrained`` builds it) and bookkeeping keys (``_class_name``, ``_diffusers_version``) dropped."""
    from diffusers import WanTransformer3DModel, WanVACETransformer3DModel

    vace = config.get("_class_name") == VACE_CLASS
    model_class = WanVACETransformer3DModel if vace else WanTransformer3DModel
    parameters = inspect.signature(model_class.__init__).parameters
    kwargs = {
        name: config.get(name, parameter.default)
        for name, parameter in parameters.items()
        if parameter.default is not inspect.Parameter.empty
    }
    kwargs["patch_size"] = tuple(kwargs["patch_size"])  # JSON keeps a list; detection from shapes gives a tuple
    return WanTransformerSpec("vace" if vace else variant_of_config(kwargs), MappingProxyType(kwargs))
