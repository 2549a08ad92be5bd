"""The SVD family adapter: how ``UNetSpatioTemporalConditionModel`` is called, exactly as
``StableVideoDiffusionPipeline`` calls it.

Conditioning (what ``SVD_img2vid_Conditioning`` makes): the CLIP image embedding ``[1, 1, dim]`` and the extras
``concat_latent_image`` (the raw VAE latent of the start image, ``[1, 4, 1, h, w]``, repeated over the frames and
concatenated to the state on the channels, unscaled, as the pipeline's ``image_latents``), ``fps``,
``motion_bucket_id`` and ``augmentation_level``: the added time ids are ``[fps - 1, motion_bucket_id,
augmentation_level]`` (SVD was trained on ``fps - 1``; ``fps`` means what it means in ComfyUI and in the pipeline's
argument). Without a concat latent the network sees zeros (the pipeline's unconditional half).

Sampling is continuous EDM with ``v`` prediction (``EdmSampling``); the network works on ``[B, T, C, H, W]``, our
latents are ``[B, C, T, H, W]``.
"""

from __future__ import annotations

import math
from numbers import Real

import torch

from models.families.base import (
    ConditioningEntry,
    FamilyAdapter,
    LatentFormat,
    LatentShapeError,
    NetworkCall,
    batched,
    check_batch,
)
from models.families.svd.latents import SVD_LATENT
from models.families.svd.unet_checkpoint import SvdUnetSpec
from models.memory_types import WorkEstimate
from models.offload_policy import estimate_activation_bytes
from models.sampling.model_sampling import EdmSampling

__all__ = ["DEFAULT_FPS", "DEFAULT_MOTION_BUCKET_ID", "SvdAdapter"]

DEFAULT_FPS = 6
DEFAULT_MOTION_BUCKET_ID = 127
TIME_IDS = ("fps", "motion_bucket_id", "augmentation_level")


class SvdAdapter(FamilyAdapter):
    """One SVD UNet (from ``detect_svd_unet`` or a diffusers config)."""

    family = "svd"

    def __init__(self, spec: SvdUnetSpec) -> None:
        self.spec = spec
        config = spec.config
        self.latent_format: LatentFormat = SVD_LATENT
        self.image_dim = int(config["cross_attention_dim"])
        self.first_width = int(config["block_out_channels"][0])
        self.size_multiple = 2 ** (len(config["block_out_channels"]) - 1)
        if int(config["in_channels"]) != 2 * SVD_LATENT.channels:
            raise LatentShapeError(
                f"{spec.describe()}: {config['in_channels']} input channels; SVD takes the latent and the start "
                f"image's latent ({2 * SVD_LATENT.channels})"
            )
        ids = int(config["projection_class_embeddings_input_dim"]) // int(config["addition_time_embed_dim"])
        if ids != len(TIME_IDS):
            raise LatentShapeError(f"{spec.describe()}: takes {ids} added time ids; SVD's are {', '.join(TIME_IDS)}")

    def describe(self) -> str:
        return self.spec.describe()

    def default_sampling(self) -> EdmSampling:
        return EdmSampling()

    def check_conditioning(self, entry: ConditioningEntry, samples: torch.Tensor) -> None:
        embeds, extras = entry
        if embeds.dim() != 3 or embeds.shape[-1] != self.image_dim:
            raise LatentShapeError(
                f"the conditioning has shape {tuple(embeds.shape)}; {self.describe()} takes CLIP image embeddings "
                f"[batch, 1, {self.image_dim}] (make it with SVD_img2vid_Conditioning and the checkpoint's "
                "CLIP_VISION)"
            )
        frames, height, width = samples.shape[2:]
        concat = extras.get("concat_latent_image")
        if concat is not None:
            if concat.dim() != 5 or concat.shape[1] != SVD_LATENT.channels or concat.shape[3:] != (height, width):
                raise LatentShapeError(
                    f"concat_latent_image has shape {tuple(concat.shape)}; for this {height}x{width} latent it must "
                    f"be [batch, {SVD_LATENT.channels}, 1 or {frames}, {height}, {width}] (encode the start image "
                    "at the video's size)"
                )
            if concat.shape[2] not in (1, frames):
                raise LatentShapeError(f"concat_latent_image has {concat.shape[2]} frames; the latent has {frames}")
        check_batch(embeds, samples, "the conditioning")
        check_batch(concat, samples, "concat_latent_image")
        for name in TIME_IDS:
            value = extras.get(name, 0)
            if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        if height % self.size_multiple or width % self.size_multiple:
            raise LatentShapeError(
                f"the latent is {height}x{width}; this UNet halves it {int(math.log2(self.size_multiple))} times, so "
                f"its height and width must be multiples of {self.size_multiple} (images multiples of "
                f"{self.size_multiple * SVD_LATENT.spatial_ratio} pixels)"
            )

    def network_call(
        self,
        x: torch.Tensor,
        timestep: torch.Tensor,
        entry: ConditioningEntry,
        dtype: torch.dtype,
        denoise_mask: torch.Tensor | None = None,
    ) -> NetworkCall:
        embeds, extras = entry
        frames = x.shape[2]
        concat = extras.get("concat_latent_image")
        if concat is None:
            concat = torch.zeros_like(x)
        concat = batched(concat.to(x.device, x.dtype), x).expand(-1, -1, frames, -1, -1)
        sample = torch.cat([x, concat], dim=1).transpose(1, 2)  # [B, T, 2C, H, W]
        ids = (
            float(extras.get("fps", DEFAULT_FPS)) - 1.0,
            float(extras.get("motion_bucket_id", DEFAULT_MOTION_BUCKET_ID)),
            float(extras.get("augmentation_level", 0.0)),
        )
        time_ids = torch.tensor([ids], dtype=dtype, device=x.device).expand(x.shape[0], -1)
        per_sample = {
            "sample": sample.to(dtype),
            "timestep": timestep.to(x.device),
            "encoder_hidden_states": batched(embeds, x).to(x.device, dtype),
            "added_time_ids": time_ids,
        }
        return NetworkCall(per_sample, {})

    def network_output(self, output: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return output.transpose(1, 2).float()

    def work_estimate(self, samples: torch.Tensor, streams: int) -> WorkEstimate:
        batch, _, frames, height, width = samples.shape
        activation = estimate_activation_bytes(
            "transformer",
            width * SVD_LATENT.spatial_ratio,
            height * SVD_LATENT.spatial_ratio,
            frames,
            batch=batch * streams,
            hidden_size=self.first_width,
            patch_size=(1, 1, 1),
            spatial_ratio=SVD_LATENT.spatial_ratio,
            temporal_ratio=1,
        )
        return WorkEstimate(activation)
