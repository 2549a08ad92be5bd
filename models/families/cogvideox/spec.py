"""A CogVideoX transformer's configuration, read from a diffusers ``transformer/config.json``."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

__all__ = ["CogVideoXTransformerSpec", "cogvideox_spec_from_config"]


@dataclass(frozen=True)
class CogVideoXTransformerSpec:
    """A ``CogVideoXTransformer3DModel``'s constructor arguments (diffusers' defaults filled in)."""

    config: Mapping[str, Any]

    @property
    def hidden_size(self) -> int:
        return int(self.config["num_attention_heads"]) * int(self.config["attention_head_dim"])

    @property
    def patch_size(self) -> int:
        return int(self.config["patch_size"])

    @property
    def patch_size_t(self) -> int | None:
        """The temporal patch of CogVideoX 1.5 (2); ``None`` for 1.0, which patches frames one by one."""
        value = self.config["patch_size_t"]
        return None if value is None else int(value)

    @property
    def latent_channels(self) -> int:
        """Channels of the noise latent: all input channels, or half of them for image-to-video."""
        channels = int(self.config["in_channels"])
        return channels // 2 if self.image_to_video else channels

    @property
    def image_to_video(self) -> bool:
        """Whether the network takes image latents beside the noise (input channels twice the output's)."""
        return int(self.config["in_channels"]) == 2 * int(self.config["out_channels"])

    @property
    def adds_position_embeddings(self) -> bool:
        """Whether the patch embedding adds (sin-cos or learned) position embeddings, which fix the text length."""
        return not self.config["use_rotary_positional_embeddings"] or self.config["use_learned_positional_embeddings"]

    def describe(self) -> str:
        """E.g. ``"CogVideoX 1.5 i2v, dim 3072, 42 layers"``."""
        version = "1.0" if self.patch_size_t is None else "1.5"
        kind = "i2v" if self.image_to_video else "t2v"
        return f"CogVideoX {version} {kind}, dim {self.hidden_size}, {self.config['num_layers']} layers"


def cogvideox_spec_from_config(config: Mapping[str, Any]) -> CogVideoXTransformerSpec:
    """The spec of a ``CogVideoXTransformer3DModel`` config: its constructor arguments, with diffusers' defaults for
    those the file leaves out and bookkeeping keys dropped."""
    from diffusers import CogVideoXTransformer3DModel

    parameters = inspect.signature(CogVideoXTransformer3DModel.__init__).parameters
    kwargs = {
        name: config.get(name, parameter.default)
        for name, parameter in parameters.items()
        if parameter.default is not inspect.Parameter.empty
    }
    if kwargs["out_channels"] is None:
        kwargs["out_channels"] = kwargs["in_channels"]
    return CogVideoXTransformerSpec(MappingProxyType(kwargs))
