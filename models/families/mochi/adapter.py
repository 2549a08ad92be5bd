"""The Mochi family adapter: how ``MochiTransformer3DModel`` is called, exactly as ``MochiPipeline`` calls it.

Conditioning: T5-XXL embeddings ``[1, tokens, 4096]`` (256 tokens, padded) with the extra ``attention_mask``
``[1, tokens]`` (1 = a real token), which the network takes as ``encoder_attention_mask``; without one every token
counts.

Conventions: Mochi's network is trained on ``tau = 1 - sigma`` (0 at pure noise) and predicts the velocity towards
the data, ``x0 - noise``; the pipeline steps its inverted scheduler (sigmas 0 -> 1) with that prediction at timestep
``tau * 1000``. Our flow samplers walk ``sigma`` from 1 to 0 and take ``noise - x0``, so the adapter calls the network
at ``(1 - sigma) * 1000`` and negates its output. The sampling itself is plain rectified flow without shift
(``FlowSampling(shift=1.0)``); the pipeline's step sizes are ``mochi_sigmas`` (``models.families.mochi.schedule``).
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
    check_attention_mask,
    check_text_embeddings,
)
from models.families.mochi.checkpoint import MochiTransformerSpec
from models.families.mochi.latents import MOCHI_LATENT
from models.memory_types import WorkEstimate
from models.offload_policy import estimate_activation_bytes
from models.sampling.model_sampling import FlowSampling

__all__ = ["DEFAULT_SHIFT", "TIMESTEP_SCALE", "MochiAdapter"]

DEFAULT_SHIFT = 1.0
"""Mochi samples unshifted (``MochiPipeline`` gives its scheduler its own sigmas, and the scheduler's shift is 1)."""
TIMESTEP_SCALE = 1000.0
"""The network's timestep for ``tau = 1``."""


class MochiAdapter(FamilyAdapter):
    """One Mochi transformer (from ``detect_mochi_transformer`` or a diffusers config)."""

    family = "mochi"

    def __init__(self, spec: MochiTransformerSpec) -> None:
        self.spec = spec
        config = spec.config
        self.latent_format: LatentFormat = MOCHI_LATENT
        self.patch_size = int(config["patch_size"])
        self.text_dim = int(config["text_embed_dim"])
        if int(config["in_channels"]) != MOCHI_LATENT.channels:
            raise LatentShapeError(
                f"{spec.describe()}: {config['in_channels']} input channels do not match the Mochi latent "
                f"({MOCHI_LATENT.channels})"
            )

    def describe(self) -> str:
        return self.spec.describe()

    def default_sampling(self) -> FlowSampling:
        return FlowSampling(shift=DEFAULT_SHIFT)

    def check_conditioning(self, entry: ConditioningEntry, samples: torch.Tensor) -> None:
        embeds, extras = entry
        check_text_embeddings(
            embeds,
            samples,
            self.text_dim,
            self.describe(),
            "T5 embeddings: was it encoded by another family's text encoder? load the T5-XXL file with CLIPLoader "
            "type mochi",
        )
        check_attention_mask(extras.get("attention_mask"), embeds, samples)
        height, width = samples.shape[-2:]
        if height % self.patch_size or width % self.patch_size:
            raise LatentShapeError(
                f"the latent is {height}x{width}; Mochi takes {self.patch_size}x{self.patch_size} patches, so its "
                f"height and width must be multiples of {self.patch_size} (images multiples of "
                f"{self.patch_size * MOCHI_LATENT.spatial_ratio} pixels, as EmptyMochiLatentVideo makes them)"
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
        mask = extras.get("attention_mask")
        if mask is None:
            mask = torch.ones(embeds.shape[:2], dtype=torch.bool)
        # tau * 1000 computed as the pipeline's scheduler does, from sigma = timestep / 1000
        sigma = timestep.to(x.device, torch.float32) / TIMESTEP_SCALE
        tau_timestep = (1.0 - sigma) * TIMESTEP_SCALE
        per_sample = {
            "hidden_states": x.to(dtype),
            "encoder_hidden_states": batched(embeds, x).to(x.device, dtype),
            "timestep": tau_timestep,
            "encoder_attention_mask": batched(mask, x).to(x.device).bool(),
        }
        return NetworkCall(per_sample, {})

    def network_output(self, output: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return -output.float()

    def work_estimate(self, samples: torch.Tensor, streams: int) -> WorkEstimate:
        batch, _, frames, height, width = samples.shape
        fmt = self.latent_format
        activation = estimate_activation_bytes(
            "transformer",
            width * fmt.spatial_ratio,
            height * fmt.spatial_ratio,
            (frames - 1) * fmt.temporal_ratio + 1,
            batch=batch * streams,
            hidden_size=self.spec.hidden_size,
            patch_size=(1, self.patch_size, self.patch_size),
            spatial_ratio=fmt.spatial_ratio,
            temporal_ratio=fmt.temporal_ratio,
        )
        return WorkEstimate(activation)
