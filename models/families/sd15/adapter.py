"""The Stable Diffusion 1.5 family adapter: how ``UNet2DConditionModel`` is called on a video latent, one image per
frame, as an SD1.5 pipeline calls it on a batch of images.

Conditioning: CLIP-L's last hidden state ``[1, 77, 768]`` (``CLIPLoader`` type ``stable_diffusion``, or the CLIP of
an SD1.5 checkpoint). Sampling: DDPM-discrete epsilon prediction on the ``scaled_linear`` betas 0.00085..0.012
(``EpsSampling``'s defaults); the network gets the fractional training timestep and the state scaled by
``1 / sqrt(sigma^2 + 1)`` (the generic guider does that), as diffusers' Euler-style schedulers give it.
"""

from __future__ import annotations

from typing import Any

import torch

from models.controlnet.application import CONTROL_RESIDUALS
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

__all__ = ["Sd15Adapter", "frames_as_batch", "with_control_residuals"]

ACTIVATION_WIDTH_FACTOR = 4  # the widest level's channels over the first's, for the activation estimate


def with_control_residuals(per_sample: dict[str, Any], entry: ConditioningEntry) -> dict[str, Any]:
    """The UNet arguments ``per_sample`` with the ControlNet residuals of ``entry`` (``CONTROL_RESIDUALS``, set by
    the sampling step while a control acts) added, cast to the sample's dtype."""
    residuals = entry[1].get(CONTROL_RESIDUALS)
    if residuals is None:
        return per_sample
    dtype = per_sample["sample"].dtype
    return {
        **per_sample,
        "down_block_additional_residuals": tuple(tensor.to(dtype) for tensor in residuals.down),
        "mid_block_additional_residual": residuals.middle.to(dtype),
    }


def frames_as_batch(x: torch.Tensor) -> torch.Tensor:
    """``[B, C, T, H, W]`` -> ``[B * T, C, H, W]`` (frame-major within each batch item)."""
    return x.permute(0, 2, 1, 3, 4).reshape(-1, x.shape[1], *x.shape[3:])


class Sd15Adapter(FamilyAdapter):
    """One SD1.5 UNet (from ``detect_sd15_unet`` or a diffusers config); frames are denoised independently."""

    family = "sd15"
    has_motion_modules = False

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
        return NetworkCall(with_control_residuals(self.controlnet_arguments(x, timestep, entry, dtype), entry), {})

    def controlnet_mismatch(self, widths: tuple[int, ...], text_dim: int, sparse: bool) -> str | None:
        if sparse and not self.has_motion_modules:
            return f"a SparseCtrl drives AnimateDiff, not {self.describe()}: apply an AnimateDiff motion module first"
        unet_widths = tuple(int(width) for width in self.spec.config["block_out_channels"])
        if widths != unet_widths or text_dim != self.text_dim:
            return (
                f"made for a UNet of widths {'/'.join(map(str, widths))} attending to text {text_dim} wide, but "
                f"{self.describe()} has widths {'/'.join(map(str, unet_widths))} and text {self.text_dim} wide"
            )
        return None

    def controlnet_arguments(
        self,
        x: torch.Tensor,
        timestep: torch.Tensor,
        entry: ConditioningEntry,
        dtype: torch.dtype,
        *,
        whole_video: bool = False,
    ) -> dict[str, torch.Tensor]:
        """The UNet's own arguments: frames as batch (or the video whole), the text embeddings repeated per frame."""
        frames = x.shape[2]
        embeds = batched(entry[0], x).to(x.device, dtype)
        timestep = timestep.to(x.device, torch.float32)
        return {
            "sample": x.to(dtype) if whole_video else frames_as_batch(x).to(dtype),
            "timestep": timestep if whole_video else timestep.repeat_interleave(frames),
            "encoder_hidden_states": embeds.repeat_interleave(frames, dim=0),
        }

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
