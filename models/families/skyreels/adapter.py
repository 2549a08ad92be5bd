"""The SkyReels-V2 family adapter: a Wan 2.1-architecture network (``SkyReelsV2Transformer3DModel``), called as
diffusers' SkyReels-V2 pipelines call it.

Text-to-video and image-to-video read the same conditioning as Wan 2.1 (``WanImageToVideo``'s
``concat_latent_image`` / ``concat_mask`` and ``clip_vision_output``; ``SkyReelsV2ImageToVideoPipeline`` builds its
input exactly as ``WanImageToVideoPipeline``), so this adapter extends ``WanAdapter``. What it adds: the fps
embedding of the models trained with one (the conditioning's ``fps`` extra, 24 without one), and the per-frame
timesteps ``[B, F]`` of diffusion forcing.
"""

from __future__ import annotations

from types import MappingProxyType

import torch

from models.families.base import ConditioningEntry, NetworkCall, batched
from models.families.wan.adapter import WanAdapter
from models.families.wan.checkpoint import WanTransformerSpec
from models.sampling.model_sampling import FlowSampling

__all__ = ["DEFAULT_FPS", "SkyReelsAdapter", "fps_index"]

DEFAULT_FPS = 24
"""The frame rate the pipelines default to."""
SHIFT_BY_VARIANT = MappingProxyType({"t2v": 8.0, "i2v": 5.0})
"""The flow shift of SkyReels-V2's published settings (text-to-video and diffusion forcing 8, image-to-video 5)."""
FPS_16 = 16


def fps_index(fps: int) -> int:
    """The fps embedding row of a frame rate: 0 for 16 fps, 1 for any other (as the SkyReels-V2 pipelines choose)."""
    return 0 if fps == FPS_16 else 1


class SkyReelsAdapter(WanAdapter):
    """One SkyReels-V2 transformer variant (``t2v``, which diffusion forcing samples, or ``i2v``)."""

    family = "skyreels"

    def __init__(self, spec: WanTransformerSpec) -> None:
        super().__init__(spec)
        self.inject_sample_info = bool(spec.config.get("inject_sample_info"))

    def describe(self) -> str:
        described = "SkyReels-V2 " + self.spec.describe().removeprefix("Wan ")
        return described + (", fps embedding" if self.inject_sample_info else "")

    def default_sampling(self) -> FlowSampling:
        return FlowSampling(shift=SHIFT_BY_VARIANT.get(self.spec.variant, SHIFT_BY_VARIANT["t2v"]))

    def network_call(
        self,
        x: torch.Tensor,
        timestep: torch.Tensor,
        entry: ConditioningEntry,
        dtype: torch.dtype,
        denoise_mask: torch.Tensor | None = None,
    ) -> NetworkCall:
        """As Wan's, with the conditioning's ``fps`` extra for the fps embedding; ``timestep`` ``[B, F]`` (one per
        latent frame) calls the network as the diffusion-forcing pipelines do."""
        forcing = timestep.dim() == 2
        if forcing and timestep.shape != (x.shape[0], x.shape[2]):
            raise ValueError(
                f"frame timesteps have shape {tuple(timestep.shape)}; the latent needs [{x.shape[0]}, {x.shape[2]}] "
                "(batch, frames)"
            )
        embeds, extras = entry
        fps = int(extras.get("fps", DEFAULT_FPS))
        hidden = x
        if self.needs_image:
            hidden = torch.cat([x, self._image_condition(extras, x)], dim=1)
        image_embeds = None
        if self.image_dim is not None:
            image_embeds = batched(extras["clip_vision_output"].penultimate_hidden_states, x).to(x.device, dtype)
        per_sample = {
            "hidden_states": hidden.to(dtype),
            "timestep": timestep,
            "encoder_hidden_states": batched(embeds, x).to(x.device, dtype),
            "encoder_hidden_states_image": image_embeds,
        }
        return NetworkCall(per_sample, {"enable_diffusion_forcing": forcing, "fps": fps_index(fps)})

    def run_network(self, network: torch.nn.Module, call: NetworkCall) -> torch.Tensor:
        """The network with the call's fps index for every sample (one fps per call: diffusers repeats the fps
        embedding over the frames batch-minor, so diffusion forcing mixes up samples of different rates). Diffusion
        forcing with the fps embedding runs one sample at a time: diffusers adds that embedding to the per-frame time
        projections of a batch of one only (the pipelines call the network per sample)."""
        batch = call.per_sample["hidden_states"].shape[0]
        if self.inject_sample_info and call.shared["enable_diffusion_forcing"] and batch > 1:
            return torch.cat([self.run_network(network, _one_sample(call, index)) for index in range(batch)])
        fps = [call.shared["fps"]] * batch if self.inject_sample_info else None
        return super().run_network(network, NetworkCall(call.per_sample, {**call.shared, "fps": fps}))


def _one_sample(call: NetworkCall, index: int) -> NetworkCall:
    """The call for sample ``index`` of a batched call."""
    per_sample = {name: None if value is None else value[index : index + 1] for name, value in call.per_sample.items()}
    return NetworkCall(per_sample, call.shared)
