"""A ``LATENT``'s ``noise_mask`` (1 where the sampler generates, 0 where it keeps the latent) brought to the latent's
shape, whether it was given at latent resolution (``Wan22ImageToVideoLatent``) or as an image-size ``MASK``."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from models.families.base import LatentFormat, LatentShapeError

__all__ = ["latent_noise_mask"]


def latent_noise_mask(mask: torch.Tensor, latent_shape: torch.Size, fmt: LatentFormat) -> torch.Tensor:
    """``mask`` as float32 ``[B, 1, T, h, w]`` for a latent of ``latent_shape`` ``[B, C, T, h, w]``, values in 0..1.

    Accepted forms:
        ``[B|1, 1|C, T', h', w']``: latent frames (channels averaged), resized to the latent if needed;
        ``[H, W]`` or ``[1, H, W]`` (a ``MASK``): the same mask for every frame;
        ``[N, H, W]`` or ``[N, 1, H, W]``: one mask per video frame; a latent frame is generated where any of the
        video frames it codes is (the first frame is coded alone).
    Spatial sizes are resized bilinearly. Raises ``LatentShapeError`` for any other shape.
    """
    if not isinstance(mask, torch.Tensor) or (not mask.is_floating_point() and mask.dtype != torch.bool):
        raise LatentShapeError(f"noise_mask must be a float tensor, got {type(mask).__name__}")
    batch, _, frames, height, width = latent_shape
    mask = mask.detach().to("cpu", torch.float32)
    if mask.dim() == 5:
        video = mask.mean(dim=1, keepdim=True)
    elif mask.dim() in (2, 3, 4):
        video = _frame_masks(mask.reshape(-1, *mask.shape[-2:]), frames, fmt.temporal_ratio)
    else:
        raise LatentShapeError(
            f"noise_mask has shape {tuple(mask.shape)}; expected [H, W], [frames, H, W] or a latent-size "
            "[batch, 1, frames, h, w] mask"
        )
    if video.shape[0] not in (1, batch):
        raise LatentShapeError(f"noise_mask has a batch of {video.shape[0]}; the latent's batch is {batch}")
    if video.shape[2:] != (frames, height, width):
        video = F.interpolate(video, size=(frames, height, width), mode="trilinear", align_corners=False)
    return video.expand(batch, -1, -1, -1, -1).clamp(0.0, 1.0)


def _frame_masks(masks: torch.Tensor, frames: int, temporal_ratio: int) -> torch.Tensor:
    """Per-video-frame masks ``[N, H, W]`` (N = 1: all frames) as ``[1, 1, frames, H, W]`` latent-frame masks."""
    if masks.shape[0] == 1:
        return masks.reshape(1, 1, 1, *masks.shape[-2:]).expand(-1, -1, frames, -1, -1)
    video_frames = (frames - 1) * temporal_ratio + 1
    if masks.shape[0] != video_frames:
        raise LatentShapeError(
            f"noise_mask has {masks.shape[0]} frames; the latent codes {video_frames} video frames (or give one "
            "mask for all frames)"
        )
    groups = [masks[:1]] + [masks[1 + k * temporal_ratio : 1 + (k + 1) * temporal_ratio] for k in range(frames - 1)]
    latent_frames = torch.stack([group.amax(dim=0) for group in groups])
    return latent_frames.unsqueeze(0).unsqueeze(0)
