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
        """Channels of the noise latent: all input channels, or half of them when latents go beside the noise."""
        channels = int(self.config["in_channels"])
        return channels // 2 if self.takes_latents_beside_noise else channels

    @property
    def takes_latents_beside_noise(self) -> bool:
        """Whether the network takes conditioning latents concatenated to the noise (input channels twice the
        output's): a start image's (image-to-video) or a control video's (CogVideoX-Fun control)."""
        return int(self.config["in_channels"]) == 2 * int(self.config["out_channels"])

    @property
    def image_to_video(self) -> bool:
        """THUDM's image-to-video releases: latents beside the noise, and learned positions (CogVideoX-5B-I2V) or
        the ``ofs`` embedding (CogVideoX1.5-5B-I2V), which no text-to-video model has."""
        marked = bool(self.config["use_learned_positional_embeddings"]) or self.config["ofs_embed_dim"] is not None
        return self.takes_latents_beside_noise and marked

    @property
    def control(self) -> bool:
        """CogVideoX-Fun control releases (alibaba-pai's ``CogVideoX-Fun-V1.1-*-Control`` / ``-Pose``): latents
        beside the noise without the image-to-video marks, as they are fine-tuned from the text-to-video models
        (their ``model_index.json`` may name ``CogVideoXPipeline``, so the config decides)."""
        return self.takes_latents_beside_noise and not self.image_to_video

    @property
    def kind(self) -> str:
        """``"t2v"``, ``"i2v"`` or ``"control"``."""
        return "i2v" if self.image_to_video else "control" if self.control else "t2v"

    @property
    def adds_position_embeddings(self) -> bool:
        """Whether the patch embedding adds (sin-cos or learned) position embeddings, which fix the text length."""
        return not self.config["use_rotary_positional_embeddings"] or self.config["use_learned_positional_embeddings"]

    def describe(self) -> str:
        """E.g. ``"CogVideoX 1.5 i2v, dim 3072, 42 layers"``."""
        version = "1.0" if self.patch_size_t is None else "1.5"
        return f"CogVideoX {version} {self.kind}, dim {self.hidden_size}, {self.config['num_layers']} layers"


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
