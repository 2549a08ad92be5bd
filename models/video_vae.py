"""The ``VAE`` socket: a video VAE held by the memory manager, encoding ``IMAGE`` frames to raw latents and back.

Frames are one video: ``IMAGE [N, H, W, 3]`` in 0..1 becomes ``[1, C, T, h, w]`` with ``T = (N - 1) / 4 + 1`` and
``h, w`` the size over the spatial ratio; decoding gives ``[B * N, H, W, 3]``. Encoding takes the posterior's mode,
as diffusers' image-to-video pipelines do. ``options`` (``VAEMemoryOptions``) choose tiling and slicing; by default
an out-of-memory encode or decode is retried with the offload policy stepped down and then in tiles.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from functools import partial

import torch

from models.families.base import LatentFormat, LatentShapeError
from models.families.kinds import VaeCodec
from models.memory import ModelManager
from models.memory_types import WorkEstimate
from models.model_handle import ModelHandle
from models.offload_policy import estimate_activation_bytes
from models.oom import ModelOutOfMemoryError, run_with_oom_recovery
from models.vae_tiling import TileSettings, VaeMemoryOptions, sliced_coding

__all__ = ["VideoVAE"]

logger = logging.getLogger(__name__)

DECODER_WIDTH = 96  # channels of the Wan 2.1 decoder at full resolution (for the memory estimate)


@dataclass(frozen=True)
class VideoVAE:
    """A video VAE (``AutoencoderKLWan`` for Wan), the latent format it codes, how its module is called and how
    it codes within memory."""

    name: str
    handle: ModelHandle
    latent_format: LatentFormat
    compute_dtype: torch.dtype
    codec: VaeCodec = field(default_factory=VaeCodec)
    options: VaeMemoryOptions = field(default_factory=VaeMemoryOptions)

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
        """Raw latent ``[1, C, T, h, w]`` (float32, CPU) of ``images`` as one video, in tiles when the options say
        so (``always``, or ``auto`` after running out of memory whole)."""
        self.check_frames(images)
        video = images.permute(3, 0, 1, 2).unsqueeze(0) * 2.0 - 1.0  # [1, 3, N, H, W] in -1..1
        frames, height, width = images.shape[:3]

        def coded(tiles: TileSettings | None) -> torch.Tensor:
            def run(module: torch.nn.Module) -> torch.Tensor:
                pixels = video.to(manager.compute_device, self.compute_dtype)
                with self._slicing(module):
                    if tiles is None:
                        return self.codec.encode(module, pixels)
                    return self.codec.encode_tiled(module, pixels, tiles)

            size = (tiles.size, tiles.size) if tiles else (height, width)
            return run_with_oom_recovery(manager, self.handle, run, self._work(frames, *size))

        return self._with_tiling(coded, None, "encoding").to("cpu", torch.float32)

    def decode(self, manager: ModelManager, samples: torch.Tensor, tiles: TileSettings | None = None) -> torch.Tensor:
        """``IMAGE [B * N, H, W, 3]`` (float32, CPU, 0..1) for raw latents ``[B, C, T, h, w]``; in ``tiles`` when
        given, else as the options say (by default whole, and in tiles after running out of memory whole)."""
        self.latent_format.check(samples, "samples")
        videos = samples.split(1) if self.options.slicing else (samples,)
        return torch.cat(
            [self._with_tiling(partial(self._decode, manager, video), tiles, "decoding") for video in videos]
        )

    def _with_tiling(
        self, coded: Callable[[TileSettings | None], torch.Tensor], tiles: TileSettings | None, what: str
    ) -> torch.Tensor:
        """``coded`` in the given ``tiles``, or as the tiling option says: ``always`` in its tiles, ``never`` whole,
        ``auto`` whole and then, after running out of memory, in its tiles."""
        if tiles is not None:
            return coded(tiles)
        options = self.options
        if options.tiling == "always":
            return coded(options.tiles)
        try:
            return coded(None)
        except ModelOutOfMemoryError:
            if options.tiling == "never":
                raise
            logger.warning("%s: out of memory %s whole; retrying in %d px tiles", self.name, what, options.tiles.size)
            return coded(options.tiles)

    def _slicing(self, module: torch.nn.Module) -> AbstractContextManager[None]:
        return sliced_coding(module) if self.options.slicing else nullcontext()

    def _decode(self, manager: ModelManager, samples: torch.Tensor, tiles: TileSettings | None) -> torch.Tensor:
        fmt = self.latent_format
        batch, _, frames, height, width = samples.shape

        def run(module: torch.nn.Module) -> torch.Tensor:
            latent = samples.to(manager.compute_device, self.compute_dtype)
            with self._slicing(module):
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
