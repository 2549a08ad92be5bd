"""The HunyuanVideo family adapter: how ``HunyuanVideoTransformer3DModel`` is called, as diffusers'
``HunyuanVideoPipeline`` and ``HunyuanVideoImageToVideoPipeline`` call it.

Conditioning extras it reads (ComfyUI's names):

- ``attention_mask`` ``[1|B, L]`` (1 = real token) of the Llama prompt tokens (all real when absent);
- ``pooled_output`` ``[1|B, 768]``: CLIP-L's pooled output (``pooled_projections``), required;
- ``guidance`` (``FluxGuidance``; 6.0 when absent): the embedded guidance, passed times 1000 as the pipelines pass
  their ``guidance_scale`` (in the compute dtype, then multiplied, as they do);
- ``concat_latent_image`` ``[1|B, 16, Ti, h, w]`` (raw) and ``concat_mask`` ``[1|B, 1, T, h, w]`` (0 where the image
  is kept), set by ``HunyuanImageToVideo`` "v1 (concat)": the 33-channel model gets ``[x, image latent (scaled,
  zero-padded to T frames), 1 - mask]``, which is the pipeline's ``[latents, image_latents, mask]`` for
  ``latent_concat``;
- ``guiding_frame_index`` (0), set by "v2 (replace)", which also puts the start image's latent into the sampled
  latent's first frame with a noise mask keeping it: the first latent frame's tokens are modulated as at timestep 0
  (diffusers' ``token_replace``; its token-replace embedding has no guidance term, unlike ComfyUI's).

The kept region of a noise mask stays clean (``known_state``), as ComfyUI's HunyuanVideo model keeps it and as the
token-replace pipeline puts the clean image latent back in every step. ``ref_latent`` ("custom") is not supported.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F

from models.families.base import (
    ConditioningEntry,
    FamilyAdapter,
    LatentFormat,
    LatentShapeError,
    NetworkCall,
    batched,
    check_attention_mask,
    check_batch,
    check_text_embeddings,
)
from models.families.hunyuan.checkpoint import LATENT_CONCAT, TOKEN_REPLACE, HunyuanTransformerSpec
from models.families.hunyuan.latents import HUNYUAN_LATENT
from models.memory_types import WorkEstimate
from models.offload_policy import estimate_activation_bytes
from models.sampling.model_sampling import FlowSampling, ModelSampling

__all__ = ["DEFAULT_GUIDANCE", "DEFAULT_SHIFT", "GUIDANCE_MULTIPLIER", "HunyuanAdapter"]

DEFAULT_SHIFT = 7.0
"""The flow shift of HunyuanVideo's scheduler (the diffusers release's ``FlowMatchEulerDiscreteScheduler``,
ComfyUI's HunyuanVideo sampling settings); ``ModelSamplingSD3`` sets another."""
DEFAULT_GUIDANCE = 6.0
"""The embedded guidance without ``FluxGuidance`` (``HunyuanVideoPipeline``'s default ``guidance_scale``)."""
GUIDANCE_MULTIPLIER = 1000.0
GUIDING = "guiding_first_frame"
"""The shared switch of a network call: modulate the first latent frame as at timestep 0 (``guiding_frame_index``)."""
CUSTOM_NOT_SUPPORTED = (
    'ref_latent (HunyuanImageToVideo guidance_type "custom") is not supported: use "v1 (concat)" with the '
    'image-to-video model or "v2 (replace)" with the v2 replace model'
)


class HunyuanAdapter(FamilyAdapter):
    """One HunyuanVideo transformer variant (from ``detect_hunyuan_transformer`` or a diffusers config)."""

    family = "hunyuan_video"

    def __init__(self, spec: HunyuanTransformerSpec) -> None:
        self.spec = spec
        config = spec.config
        self.latent_format: LatentFormat = HUNYUAN_LATENT
        self.concat = config.get("image_condition_type") == LATENT_CONCAT
        self.patch_size = (int(config["patch_size_t"]), int(config["patch_size"]), int(config["patch_size"]))
        self.hidden_size = int(config["num_attention_heads"]) * int(config["attention_head_dim"])
        expected = 2 * HUNYUAN_LATENT.channels + 1 if self.concat else HUNYUAN_LATENT.channels
        if config["in_channels"] != expected or config["out_channels"] != HUNYUAN_LATENT.channels:
            raise LatentShapeError(
                f"{spec.describe()}: {config['in_channels']} channels in and {config['out_channels']} out do not "
                f"fit the {HUNYUAN_LATENT.name} latent ({HUNYUAN_LATENT.channels} channels)"
            )

    def describe(self) -> str:
        return self.spec.describe()

    def default_sampling(self) -> FlowSampling:
        return FlowSampling(shift=DEFAULT_SHIFT)

    def known_state(
        self, sampling: ModelSampling, sigma: torch.Tensor, noise: torch.Tensor, clean: torch.Tensor
    ) -> torch.Tensor:
        return clean

    def check_conditioning(self, entry: ConditioningEntry, samples: torch.Tensor) -> None:
        embeds, extras = entry
        config = self.spec.config
        text_dim = config["text_embed_dim"]
        check_text_embeddings(
            embeds, samples, text_dim, self.describe(), "encode the prompt with DualCLIPLoader type hunyuan_video"
        )
        pooled = extras.get("pooled_output")
        pooled_dim = config["pooled_projection_dim"]
        if pooled is None:
            raise ValueError(
                f"{self.describe()} needs the prompt's pooled CLIP-L output, which this conditioning lacks: encode "
                "the prompt with DualCLIPLoader type hunyuan_video (the Llama and CLIP-L text encoders)"
            )
        if pooled.dim() != 2 or pooled.shape[-1] != pooled_dim:
            raise LatentShapeError(
                f"pooled_output has shape {tuple(pooled.shape)}; {self.describe()} takes [1, {pooled_dim}]"
            )
        check_batch(pooled, samples, "pooled_output")
        check_attention_mask(extras.get("attention_mask"), embeds, samples)
        patch_t, patch, _ = self.patch_size
        frames, height, width = samples.shape[2:]
        if height % patch or width % patch or frames % patch_t:
            raise LatentShapeError(
                f"the latent is {_size(samples)}; {self.describe()} needs its height and width to be multiples of "
                f"{patch} (video sizes multiples of {patch * HUNYUAN_LATENT.spatial_ratio})"
            )
        if extras.get("ref_latent") is not None:
            raise ValueError(CUSTOM_NOT_SUPPORTED)
        self._check_image_conditioning(extras, samples)

    def network_call(
        self,
        x: torch.Tensor,
        timestep: torch.Tensor,
        entry: ConditioningEntry,
        dtype: torch.dtype,
        denoise_mask: torch.Tensor | None = None,
    ) -> NetworkCall:
        embeds, extras = entry
        batch = x.shape[0]
        hidden = x
        if self.concat:
            hidden = torch.cat([x, *self._image_condition(extras, x, denoise_mask)], dim=1)
        mask = extras.get("attention_mask")
        if mask is None:
            mask = torch.ones(embeds.shape[:2])
        guidance = None
        if self.spec.config.get("guidance_embeds", True):  # diffusers' default
            scale = float(extras.get("guidance", DEFAULT_GUIDANCE))
            guidance = torch.full((batch,), scale, dtype=dtype, device=x.device) * GUIDANCE_MULTIPLIER
        per_sample = {
            "hidden_states": hidden.to(dtype),
            "timestep": timestep,
            "encoder_hidden_states": batched(embeds, x).to(x.device, dtype),
            "encoder_attention_mask": batched(mask, x).to(x.device, dtype),
            "pooled_projections": batched(extras["pooled_output"], x).to(x.device, dtype),
            "guidance": guidance,
        }
        return NetworkCall(per_sample, {GUIDING: extras.get("guiding_frame_index") is not None})

    def run_network(self, network: torch.nn.Module, call: NetworkCall) -> torch.Tensor:
        """The network within the first-frame modulation the call's ``GUIDING`` switch asks for (not an argument
        of the network)."""
        shared = dict(call.shared)
        guiding = shared.pop(GUIDING)
        with _first_frame_modulation(network, guiding=guiding):
            return super().run_network(network, NetworkCall(call.per_sample, shared))

    def work_estimate(self, samples: torch.Tensor, streams: int) -> WorkEstimate:
        batch, _, frames, height, width = samples.shape
        fmt = self.latent_format
        activation = estimate_activation_bytes(
            "transformer",
            width * fmt.spatial_ratio,
            height * fmt.spatial_ratio,
            (frames - 1) * fmt.temporal_ratio + 1,
            batch=batch * streams,
            hidden_size=self.hidden_size,
            patch_size=self.patch_size,
            spatial_ratio=fmt.spatial_ratio,
            temporal_ratio=fmt.temporal_ratio,
        )
        return WorkEstimate(activation)

    def _check_image_conditioning(self, extras: Mapping[str, Any], samples: torch.Tensor) -> None:
        image = extras.get("concat_latent_image")
        guiding = extras.get("guiding_frame_index")
        if self.concat and image is None:
            raise ValueError(
                f"{self.describe()} is an image-to-video model and needs a start image: give HunyuanImageToVideo a "
                'start_image with guidance_type "v1 (concat)"'
            )
        if not self.concat and image is not None:
            raise ValueError(
                f'concat_latent_image (HunyuanImageToVideo "v1 (concat)") needs the 33-channel image-to-video model '
                f'(hunyuan_video_image_to_video_720p); {self.describe()} takes the start image with "v2 (replace)"'
            )
        if guiding is not None:
            if self.spec.config.get("image_condition_type") != TOKEN_REPLACE:
                raise ValueError(
                    f'guiding_frame_index (HunyuanImageToVideo "v2 (replace)") needs the v2 replace image-to-video '
                    f"model (16 channels in, token-replace blocks); {self.describe()} has none"
                )
            if float(guiding) != 0.0:
                raise ValueError(f"guiding_frame_index is {guiding}; only the first frame (0) can guide")
        if image is not None:
            self.latent_format.check(image, "concat_latent_image")
            check_batch(image, samples, "concat_latent_image")
            if image.shape[3:] != samples.shape[3:]:
                raise LatentShapeError(
                    f"the start image latent is {_size(image)} but the latent being sampled is {_size(samples)}: "
                    "give HunyuanImageToVideo the same width and height as the latent"
                )
        mask = extras.get("concat_mask")
        if mask is not None and (mask.dim() != 5 or mask.shape[1] != 1 or mask.shape[2] != samples.shape[2]):
            raise LatentShapeError(
                f"concat_mask has shape {tuple(mask.shape)}; for {samples.shape[2]} latent frames it must be "
                f"[batch, 1, {samples.shape[2]}, height, width]"
            )

    def _image_condition(
        self, extras: Mapping[str, Any], x: torch.Tensor, denoise_mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The scaled image latent zero-padded (or cut) to ``x``'s frames, and the keep mask (1 = image kept)."""
        frames = x.shape[2]
        image = self.latent_format.process_in(extras["concat_latent_image"].to(x.device, torch.float32))
        image = F.pad(image, (0, 0, 0, 0, 0, max(0, frames - image.shape[2])))[:, :, :frames]
        mask = extras.get("concat_mask", denoise_mask)
        if mask is None:
            keep = torch.zeros(1, 1, *x.shape[2:], device=x.device)
        else:
            mask = mask.to(x.device, torch.float32)
            if mask.shape[3:] != x.shape[3:]:
                mask = F.interpolate(mask, size=tuple(x.shape[2:]), mode="nearest")
            keep = 1.0 - mask
        return batched(image, x), batched(keep, x)


@contextmanager
def _first_frame_modulation(network: torch.nn.Module, guiding: bool) -> Iterator[None]:
    """Within the block, a token-replace network modulates the first latent frame as at timestep 0 only when
    ``guiding``; otherwise with the step's own embedding, so it computes what plain blocks compute."""
    embedder = network.time_text_embed
    if guiding or getattr(embedder, "image_condition_type", None) != TOKEN_REPLACE:
        yield
        return

    def same_embedding(_module: torch.nn.Module, _args: Any, output: tuple[torch.Tensor, Any]) -> tuple:
        return output[0], output[0]

    handle = embedder.register_forward_hook(same_embedding)
    try:
        yield
    finally:
        handle.remove()


def _size(latent: torch.Tensor) -> str:
    return "x".join(str(n) for n in latent.shape[2:]) + " (frames x height x width)"
