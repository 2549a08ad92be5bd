"""The Stable Diffusion 1.5 family adapter: how ``UNet2DConditionModel`` is called on a video latent, one image per
frame, as an SD1.5 pipeline calls it on a batch of images.

Conditioning: CLIP-L's last hidden state ``[1, 77, 768]`` (``CLIPLoader`` type ``stable_diffusion``, or the CLIP of
an SD1.5 checkpoint). Sampling: DDPM-discrete epsilon prediction on the ``scaled_linear`` betas 0.00085..0.012
(``EpsSampling``'s defaults); the network gets the fractional training timestep and the state scaled by
``1 / sqrt(sigma^2 + 1)`` (the generic guider does that), as diffusers' Euler-style schedulers give it.
"""

from __future__ import annotations

import torch

from models.families.base import (
    ConditioningEntry,
    FamilyAdapter,
    LatentFormat,
    LatentShapeError,
    NetworkCall,
    batched,
    check_text_embeddings,
)
from models.families.sd15.latents import SD15_LATENT
from models.families.sd15.unet_checkpoint import Sd15UnetSpec
from models.memory_types import WorkEstimate
from models.offload_policy import estimate_activation_bytes
from models.sampling.model_sampling import EpsSampling

__all__ = ["Sd15Adapter", "frames_as_batch"]

ACTIVATION_WIDTH_FACTOR = 4  # the widest level's channels over the first's, for the activation estimate


def frames_as_batch(x: torch.Tensor) -> torch.Tensor:
    """``[B, C, T, H, W]`` -> ``[B * T, C, H, W]`` (frame-major within each batch item)."""
    return x.permute(0, 2, 1, 3, 4).reshape(-1, x.shape[1], *x.shape[3:])


class Sd15Adapter(FamilyAdapter):
    """One SD1.5 UNet (from ``detect_sd15_unet`` or a diffusers config); frames are denoised independently."""

    family = "sd15"

    def __init__(self, spec: Sd15UnetSpec) -> None:
        self.spec = spec
        self.latent_format: LatentFormat = SD15_LATENT
        self.text_dim = spec.text_dim
        self.downscale = 2 ** (len(spec.config["block_out_channels"]) - 1)
        if int(spec.config["in_channels"]) != SD15_LATENT.channels:
            raise LatentShapeError(
                f"{spec.describe()}: {spec.config['in_channels']} input channels do not match the SD1.5 latent "
                f"({SD15_LATENT.channels}); inpainting and other variants are not supported"
            )

    def describe(self) -> str:
        return self.spec.describe()

    def default_sampling(self) -> EpsSampling:
        return EpsSampling()

    def check_conditioning(self, entry: ConditioningEntry, samples: torch.Tensor) -> None:
        check_text_embeddings(
            entry[0],
            samples,
            self.text_dim,
            self.describe(),
            "CLIP-L embeddings: encode with the checkpoint's CLIP, or CLIPLoader type stable_diffusion",
        )
        height, width = samples.shape[-2:]
        if height % self.downscale or width % self.downscale:
            raise LatentShapeError(
                f"the latent is {height}x{width}; this UNet halves it {len(self.spec.config['block_out_channels']) - 1}"
                f" times, so its height and width must be multiples of {self.downscale} (images multiples of "
                f"{self.downscale * SD15_LATENT.spatial_ratio} pixels)"
            )

    def network_call(
        self,
        x: torch.Tensor,
        timestep: torch.Tensor,
        entry: ConditioningEntry,
        dtype: torch.dtype,
        denoise_mask: torch.Tensor | None = None,
    ) -> NetworkCall:
        frames = x.shape[2]
        embeds = batched(entry[0], x).to(x.device, dtype)
        per_sample = {
            "sample": frames_as_batch(x).to(dtype),
            "timestep": timestep.to(x.device, torch.float32).repeat_interleave(frames),
            "encoder_hidden_states": embeds.repeat_interleave(frames, dim=0),
        }
        return NetworkCall(per_sample, {})

    def network_output(self, output: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``[B * T, C, H, W]`` (frames as batch) -> ``[B, C, T, H, W]``."""
        batch, _, frames = x.shape[:3]
        return output.float().reshape(batch, frames, *output.shape[1:]).permute(0, 2, 1, 3, 4)

    def work_estimate(self, samples: torch.Tensor, streams: int) -> WorkEstimate:
        batch, _, frames, height, width = samples.shape
        fmt = self.latent_format
        activation = estimate_activation_bytes(
            "transformer",
            width * fmt.spatial_ratio,
            height * fmt.spatial_ratio,
            frames,
            batch=batch * streams,
            hidden_size=self.spec.base_width * ACTIVATION_WIDTH_FACTOR,
            patch_size=(1, 1, 1),
            spatial_ratio=fmt.spatial_ratio,
            temporal_ratio=1,
        )
        return WorkEstimate(activation)
