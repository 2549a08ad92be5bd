"""The ``VAE`` socket: a video VAE held by the memory manager, encoding ``IMAGE`` frames to raw latents and back.

Frames are one video: ``IMAGE [N, H, W, 3]`` in 0..1 becomes ``[1, C, T, h, w]`` with ``T = (N - 1) / 4 + 1`` and
``h, w`` the size over the spatial ratio; decoding gives ``[B * N, H, W, 3]``. Encoding takes the posterior's mode,
as diffusers' image-to-video pipelines do. An out-of-memory decode is retried with the offload policy stepped down
and then in spatial tiles.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import torch

from models.families.base import LatentFormat, LatentShapeError
from models.families.kinds import VaeCodec
from models.memory import ModelManager
from models.memory_types import WorkEstimate
from models.model_handle import ModelHandle
from models.offload_policy import estimate_activation_bytes
from models.oom import ModelOutOfMemoryError, run_with_oom_recovery
from models.vae_tiling import TileSettings

__all__ = ["VideoVAE"]

logger = logging.getLogger(__name__)

DECODER_WIDTH = 96  # channels of the Wan 2.1 decoder at full resolution (for the memory estimate)


@dataclass(frozen=True)
class VideoVAE:
    """A video VAE (``AutoencoderKLWan`` for Wan), the latent format it codes and how its module is called."""

    name: str
    handle: ModelHandle
    latent_format: LatentFormat
    compute_dtype: torch.dtype
    codec: VaeCodec = field(default_factory=VaeCodec)

    def check_frames(self, images: torch.Tensor, what: str = "pixels") -> None:
        """Raise ``LatentShapeError`` unless ``images`` is ``[N, H, W, 3]`` with sizes this VAE can code."""
        fmt = self.latent_format
        if images.dim() != 4 or images.shape[-1] != 3:
            raise LatentShapeError(f"{what} has shape {tuple(images.shape)}; expected IMAGE frames [N, H, W, 3]")
        frames, height, width = images.shape[:3]
        ratio = fmt.spatial_ratio
        if height % ratio or width % ratio:
            raise LatentShapeError(
                f"{what} is {width}x{height}; the {fmt.name} VAE needs width and height divisible by {ratio}"
            )
        if (frames - 1) % fmt.temporal_ratio:
            raise LatentShapeError(
                f"{what} has {frames} frames; the {fmt.name} VAE codes 1 + {fmt.temporal_ratio}k frames "
                f"(e.g. {frames - (frames - 1) % fmt.temporal_ratio})"
            )

    def encode(self, manager: ModelManager, images: torch.Tensor) -> torch.Tensor:
        """Raw latent ``[1, C, T, h, w]`` (float32, CPU) of ``images`` as one video."""
        self.check_frames(images)
        video = images.permute(3, 0, 1, 2).unsqueeze(0) * 2.0 - 1.0  # [1, 3, N, H, W] in -1..1

        def run(module: torch.nn.Module) -> torch.Tensor:
            pixels = video.to(manager.compute_device, self.compute_dtype)
            return self.codec.encode(module, pixels)

        latent = run_with_oom_recovery(manager, self.handle, run, self._work(images.shape[0], *images.shape[1:3]))
        return latent.to("cpu", torch.float32)

    def decode(self, manager: ModelManager, samples: torch.Tensor, tiles: TileSettings | None = None) -> torch.Tensor:
        """``IMAGE [B * N, H, W, 3]`` (float32, CPU, 0..1) for raw latents ``[B, C, T, h, w]``; in ``tiles`` when
        given, and in default tiles after running out of memory whole."""
        self.latent_format.check(samples, "samples")
        try:
            return self._decode(manager, samples, tiles)
        except ModelOutOfMemoryError:
            if tiles is not None:
                raise
            logger.warning("%s: out of memory decoding whole; decoding in %d px tiles", self.name, TileSettings().size)
            return self._decode(manager, samples, TileSettings())

    def _decode(self, manager: ModelManager, samples: torch.Tensor, tiles: TileSettings | None) -> torch.Tensor:
        fmt = self.latent_format
        batch, _, frames, height, width = samples.shape

        def run(module: torch.nn.Module) -> torch.Tensor:
            latent = samples.to(manager.compute_device, self.compute_dtype)
            if tiles is None:
                return self.codec.decode(module, latent)
            return self.codec.decode_tiled(module, latent, tiles)

        out_frames = (frames - 1) * fmt.temporal_ratio + 1
        size = (tiles.size, tiles.size) if tiles else (height * fmt.spatial_ratio, width * fmt.spatial_ratio)
        video = run_with_oom_recovery(manager, self.handle, run, self._work(batch * min(out_frames, 4), *size))
        video = (video.float() / 2.0 + 0.5).clamp(0.0, 1.0)  # [B, 3, N, H, W]
        return video.permute(0, 2, 3, 4, 1).reshape(-1, *video.shape[3:], 3).cpu().contiguous()

    def _work(self, frames: int, height: int, width: int) -> WorkEstimate:
        dtype_bytes = torch.finfo(self.compute_dtype).bits // 8
        return WorkEstimate(
            estimate_activation_bytes(
                "vae_decode", width, height, frames, dtype_bytes=dtype_bytes, hidden_size=DECODER_WIDTH
            )
        )
