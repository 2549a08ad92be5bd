"""Wan transformers of diffusers folders: the ``WanTransformerSpec`` a component's ``config.json`` describes, so a
model loaded from a pipeline folder gets the adapter and sampling its single file gets."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from models.families.wan.checkpoint import WanTransformerSpec, variant_of_config

__all__ = ["wan_spec_from_config"]


def wan_spec_from_config(config: Mapping[str, Any]) -> WanTransformerSpec:
    """The spec of a ``WanTransformer3DModel`` config (a diffusers ``transformer/config.json``): its constructor
    arguments, with diffusers' defaults for those the file leaves out (as ``from_pretrained`` builds it) and
    bookkeeping keys (``_class_name``, ``_diffusers_version``) dropped."""
    from diffusers import WanTransformer3DModel

    parameters = inspect.signature(WanTransformer3DModel.__init__).parameters
    kwargs = {
        name: config.get(name, parameter.default)
        for name, parameter in parameters.items()
        if parameter.default is not inspect.Parameter.empty
    }
    kwargs["patch_size"] = tuple(kwargs["patch_size"])  # JSON keeps a list; detection from shapes gives a tuple
    return WanTransformerSpec(variant_of_config(kwargs), MappingProxyType(kwargs))
