"""SkyReels-V2 transformers of diffusers folders: the spec a ``SkyReelsV2Transformer3DModel`` config describes, so a
model loaded from a pipeline folder gets the adapter its single file gets."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from models.families.wan.checkpoint import WanTransformerSpec, variant_of_config

__all__ = ["skyreels_spec_from_config"]


def skyreels_spec_from_config(config: Mapping[str, Any]) -> WanTransformerSpec:
    """The spec of a ``SkyReelsV2Transformer3DModel`` config: its constructor arguments, with diffusers' defaults for
    those the file leaves out and bookkeeping keys dropped."""
    from diffusers import SkyReelsV2Transformer3DModel

    parameters = inspect.signature(SkyReelsV2Transformer3DModel.__init__).parameters
    kwargs = {
        name: config.get(name, parameter.default)
        for name, parameter in parameters.items()
        if parameter.default is not inspect.Parameter.empty
    }
    kwargs["patch_size"] = tuple(kwargs["patch_size"])
    return WanTransformerSpec(variant_of_config(kwargs), MappingProxyType(kwargs))
