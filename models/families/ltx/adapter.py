"""The LTX-Video family adapter: how ``LTXVideoTransformer3DModel`` is called on a normalised latent.

The latent ``[B, 128, T, H, W]`` is packed into tokens as ``LTXPipeline`` packs it and the output unpacked. The
network predicts the flow velocity ``noise - x0`` (``LTXPipeline`` steps its scheduler with it unchanged).

Conditioning extras it reads:

- ``attention_mask``: ``[1|B, L]`` (1 = real token) of the T5 encoding, passed as ``encoder_attention_mask``;
- ``frame_rate``: set by ``LTXVConditioning`` (default 25, ``LTXPipeline``'s); the temporal RoPE coordinates are
  in seconds: ``rope_interpolation_scale = (8 / frame_rate, 32, 32)``;
- ``keyframe_idxs``: ``LTXVAddGuide``'s record of guide latent frames appended at the end of the latent's frame
  axis, a list of ``(latent_start, latent_frames, pixel_frame_idx)``: those tokens get the RoPE coordinates of the
  video frames they stand for (latent frame ``j`` of a guide: pixel frame ``pixel_frame_idx + 8 j``) instead of
  their appended position.

A ``noise_mask`` (``LTXVImgToVideo``'s kept first frame, guides with strength) makes per-token timesteps, each
token's ``timestep * mask``, as ``LTXImageToVideoPipeline`` gives ``t * (1 - conditioning_mask)``; the kept region
stays clean (``known_state``).

RoPE positions follow ``LTXPipeline``: latent frame ``f`` sits at pixel frame ``8 f`` (no causal shift of the first
frame, which ``LTXConditionPipeline`` applies).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

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
from models.families.ltx.checkpoint import LtxTransformerSpec
from models.families.ltx.latents import LTXV_LATENT
from models.memory_types import WorkEstimate
from models.offload_policy import estimate_activation_bytes
from models.sampling.model_sampling import FlowSampling, ModelSampling

__all__ = [
    "DEFAULT_FRAME_RATE",
    "DEFAULT_MU",
    "Keyframe",
    "LTXAdapter",
    "ltx_adapter_from_config",
    "ltxv_video_coords",
    "pack_latent",
    "unpack_tokens",
]

DEFAULT_FRAME_RATE = 25.0
DEFAULT_MU = 2.37
"""ComfyUI's LTX-Video sampling default (its ``ModelSamplingFlux`` ``mu``) before any ``ModelSamplingLTXV``; as a
``FlowSampling`` shift it is ``e^2.37``."""

Keyframe = tuple[int, int, int]
"""``(latent_start, latent_frames, pixel_frame_idx)``: guide latent frames appended at ``latent_start``."""


def pack_latent(latent: torch.Tensor, patch: int = 1, patch_t: int = 1) -> torch.Tensor:
    """``[B, C, T, H, W]`` -> ``[B, T/pt * H/p * W/p, C * pt * p * p]`` tokens, frame-major (``LTXPipeline``)."""
    batch, channels, frames, height, width = latent.shape
    tokens = latent.reshape(batch, channels, frames // patch_t, patch_t, height // patch, patch, width // patch, patch)
    return tokens.permute(0, 2, 4, 6, 1, 3, 5, 7).flatten(4, 7).flatten(1, 3)


def unpack_tokens(
    tokens: torch.Tensor, frames: int, height: int, width: int, patch: int = 1, patch_t: int = 1
) -> torch.Tensor:
    """The inverse of ``pack_latent`` for a latent of ``frames x height x width`` (latent units)."""
    batch = tokens.shape[0]
    latent = tokens.reshape(batch, frames // patch_t, height // patch, width // patch, -1, patch_t, patch, patch)
    return latent.permute(0, 4, 1, 5, 2, 6, 3, 7).flatten(6, 7).flatten(4, 5).flatten(2, 3)


def ltxv_video_coords(
    batch: int,
    frames: int,
    height: int,
    width: int,
    frame_rate: float,
    keyframes: Sequence[Keyframe] = (),
    patch: int = 1,
    patch_t: int = 1,
    spatial_ratio: int = LTXV_LATENT.spatial_ratio,
    temporal_ratio: int = LTXV_LATENT.temporal_ratio,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """The RoPE coordinates ``[B, 3, tokens]`` (seconds, pixels, pixels) the transformer's ``video_coords`` takes.

    Without keyframes they equal what ``rope_interpolation_scale = (temporal_ratio / frame_rate, spatial_ratio,
    spatial_ratio)`` makes (the same float operations); the tokens of each keyframe's latent frames get the time of
    the video frames they stand for.
    """
    grid_f = torch.arange(frames // patch_t, dtype=torch.float32, device=device)
    grid_h = torch.arange(height // patch, dtype=torch.float32, device=device)
    grid_w = torch.arange(width // patch, dtype=torch.float32, device=device)
    grid = torch.stack(torch.meshgrid(grid_f, grid_h, grid_w, indexing="ij"))
    time = grid[0] * (temporal_ratio / frame_rate) * patch_t
    latent_frame = grid[0] * patch_t
    for start, count, pixel in keyframes:
        inside = (latent_frame >= start) & (latent_frame < start + count)
        seconds = (pixel + temporal_ratio * (latent_frame - start)) / frame_rate
        time = torch.where(inside, seconds, time)
    coords = torch.stack([time, grid[1] * spatial_ratio * patch, grid[2] * spatial_ratio * patch])
    return coords.flatten(1).unsqueeze(0).expand(batch, -1, -1)


class LTXAdapter(FamilyAdapter):
    """One LTX-Video transformer (from ``detect_ltx_transformer`` or a diffusers config)."""

    family = "ltxv"

    def __init__(self, spec: LtxTransformerSpec) -> None:
        self.spec = spec
        self.latent_format: LatentFormat = LTXV_LATENT
        config = spec.config
        self.patch = int(config["patch_size"])
        self.patch_t = int(config["patch_size_t"])
        per_token = self.patch * self.patch * self.patch_t
        if int(config["in_channels"]) != LTXV_LATENT.channels * per_token:
            raise LatentShapeError(
                f"{spec.describe()}: {config['in_channels']} input channels do not fit the {LTXV_LATENT.channels}-"
                f"channel LTX-Video latent with patch {self.patch_t}x{self.patch}x{self.patch}"
            )

    def describe(self) -> str:
        return self.spec.describe()

    def default_sampling(self) -> FlowSampling:
        return FlowSampling(shift=math.exp(DEFAULT_MU))

    def check_conditioning(self, entry: ConditioningEntry, samples: torch.Tensor) -> None:
        embeds, extras = entry
        caption = int(self.spec.config["caption_channels"])
        check_text_embeddings(
            embeds, samples, caption, self.describe(), "was it encoded by another family's text encoder?"
        )
        check_attention_mask(extras.get("attention_mask"), embeds, samples)
        _, _, frames, height, width = samples.shape
        if frames % self.patch_t or height % self.patch or width % self.patch:
            raise LatentShapeError(f"the latent's {frames}x{height}x{width} is not a multiple of the patch size")
        for keyframe in extras.get("keyframe_idxs") or ():
            start, count, _ = _keyframe(keyframe)
            if start < 0 or count < 1 or start + count > frames:
                raise LatentShapeError(
                    f"keyframe_idxs names latent frames {start}..{start + count - 1}, but the latent has {frames} "
                    "frames: was the guided latent cropped (LTXVCropGuides) before this sampler?"
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
        if denoise_mask is not None:
            per_token = denoise_mask[:, 0, :: self.patch_t, :: self.patch, :: self.patch].flatten(1)
            timestep = per_token.to(timestep) * timestep.reshape(-1, 1)
        text = batched(embeds, x).to(x.device, dtype)
        mask = extras.get("attention_mask")
        mask = torch.ones(text.shape[:2]) if mask is None else batched(mask, x)
        per_sample = {
            "hidden_states": pack_latent(x, self.patch, self.patch_t).to(dtype),
            "encoder_hidden_states": text,
            "timestep": timestep,
            "encoder_attention_mask": mask.to(x.device, torch.float32),  # the network takes (1 - mask) * -10000
        }
        positions = self._positions(x, float(extras.get("frame_rate", DEFAULT_FRAME_RATE)), extras)
        if "video_coords" in positions:
            return NetworkCall(per_sample | positions, {})
        return NetworkCall(per_sample, positions)

    def network_output(self, output: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        frames, height, width = x.shape[2:]
        return unpack_tokens(output.float(), frames, height, width, self.patch, self.patch_t)

    def _positions(self, x: torch.Tensor, frame_rate: float, extras: Mapping[str, Any]) -> dict[str, Any]:
        """The transformer's RoPE arguments: ``LTXPipeline``'s grid and interpolation scale (shared by all
        samples), or with keyframes the explicit per-sample coordinates that place them at their frames."""
        batch, _, frames, height, width = x.shape
        fmt = self.latent_format
        keyframes = [_keyframe(item) for item in extras.get("keyframe_idxs") or ()]
        if not keyframes:
            return {
                "num_frames": frames // self.patch_t,
                "height": height // self.patch,
                "width": width // self.patch,
                "rope_interpolation_scale": (fmt.temporal_ratio / frame_rate, fmt.spatial_ratio, fmt.spatial_ratio),
            }
        coords = ltxv_video_coords(
            batch, frames, height, width, frame_rate, keyframes, self.patch, self.patch_t,
            fmt.spatial_ratio, fmt.temporal_ratio, x.device,
        )  # fmt: skip
        return {"video_coords": coords}

    def known_state(
        self, sampling: ModelSampling, sigma: torch.Tensor, noise: torch.Tensor, clean: torch.Tensor
    ) -> torch.Tensor:
        return clean

    def work_estimate(self, samples: torch.Tensor, streams: int) -> WorkEstimate:
        batch, _, frames, height, width = samples.shape
        fmt = self.latent_format
        activation = estimate_activation_bytes(
            "transformer",
            width * fmt.spatial_ratio,
            height * fmt.spatial_ratio,
            (frames - 1) * fmt.temporal_ratio + 1,
            batch=batch * streams,
            hidden_size=self.spec.width,
            patch_size=(self.patch_t, self.patch, self.patch),
            spatial_ratio=fmt.spatial_ratio,
            temporal_ratio=fmt.temporal_ratio,
        )
        return WorkEstimate(activation)


def ltx_adapter_from_config(config: Mapping[str, Any]) -> LTXAdapter:
    """The adapter for a diffusers ``LTXVideoTransformer3DModel`` ``config.json``."""
    return LTXAdapter(LtxTransformerSpec(MappingProxyType(dict(config))))


def _keyframe(item: Any) -> Keyframe:
    try:
        start, count, pixel = (int(value) for value in item)
    except (TypeError, ValueError) as exc:
        raise LatentShapeError(
            f"keyframe_idxs holds {item!r}; each entry is (latent_start, latent_frames, pixel_frame_idx)"
        ) from exc
    return start, count, pixel
