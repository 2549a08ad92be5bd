"""Wan Fun camera-control models: a Wan transformer whose patch embeddings get a camera term.

The camera embedding (``[B, 24, T, H, W]``: Plücker rays at the video's pixel size, four frames per latent frame,
from ``WanCameraEmbedding``) goes through ``control_adapter``: each latent frame's rays are pixel-unshuffled by the
VAE's 8x8 (``24 * 64`` channels at the latent size), projected to the model width by a convolution with the patch's
kernel and stride, and refined by residual 3x3 convolution pairs; the result is added to the patch embeddings of the
video latent before the transformer blocks. Parameter names are those of the released files
(``control_adapter.conv``, ``control_adapter.residual_blocks.N.conv1/conv2``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from diffusers import WanTransformer3DModel
from torch import nn

__all__ = ["CAMERA_CHANNELS", "CameraAdapter", "WanCameraTransformer3DModel"]

CAMERA_CHANNELS = 24
"""Six Plücker channels for each of the four frames of a latent frame."""
UNSHUFFLE = 8


class CameraResidualBlock(nn.Module):
    """``x + conv2(relu(conv1(x)))`` with 3x3 convolutions."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(width, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(torch.relu(self.conv1(x)))


class CameraAdapter(nn.Module):
    """Camera embeddings ``[B, C, T, H, W]`` to patch-embedding terms ``[B, width, T, H / 8 / p, W / 8 / p]``."""

    def __init__(self, in_channels: int, width: int, patch: tuple[int, int], residual_blocks: int = 1) -> None:
        super().__init__()
        self.pixel_unshuffle = nn.PixelUnshuffle(UNSHUFFLE)
        self.conv = nn.Conv2d(in_channels * UNSHUFFLE * UNSHUFFLE, width, kernel_size=patch, stride=patch)
        self.residual_blocks = nn.Sequential(*(CameraResidualBlock(width) for _ in range(residual_blocks)))

    def forward(self, camera: torch.Tensor) -> torch.Tensor:
        batch, channels, frames, height, width = camera.shape
        per_frame = camera.permute(0, 2, 1, 3, 4).reshape(batch * frames, channels, height, width)
        features = self.residual_blocks(self.conv(self.pixel_unshuffle(per_frame)))
        return features.reshape(batch, frames, *features.shape[1:]).permute(0, 2, 1, 3, 4)


class WanCameraTransformer3DModel(WanTransformer3DModel):
    """``WanTransformer3DModel`` with ``control_adapter``; ``forward`` also takes ``camera_embedding`` (None: no
    camera term, the plain transformer)."""

    def __init__(self, control_in_channels: int = CAMERA_CHANNELS, residual_blocks: int = 1, **config: Any) -> None:
        super().__init__(**config)
        width = self.config.num_attention_heads * self.config.attention_head_dim
        patch = tuple(self.config.patch_size[1:])
        self.control_adapter = CameraAdapter(control_in_channels, width, patch, residual_blocks)  # type: ignore[arg-type]
        self._camera: torch.Tensor | None = None
        self.patch_embedding.register_forward_hook(self._add_camera)

    def forward(  # type: ignore[override]
        self, *args: Any, camera_embedding: torch.Tensor | None = None, **kwargs: Any
    ) -> Any:
        with self._camera_for(camera_embedding):
            return super().forward(*args, **kwargs)

    @contextmanager
    def _camera_for(self, camera: torch.Tensor | None) -> Iterator[None]:
        """The camera embedding the patch-embedding hook adds during one forward call."""
        self._camera = camera
        try:
            yield
        finally:
            self._camera = None

    def _add_camera(self, _module: nn.Module, _inputs: Any, output: torch.Tensor) -> torch.Tensor:
        if self._camera is None:
            return output
        term = self.control_adapter(self._camera.to(output.device, self.control_adapter.conv.weight.dtype))
        return output + term.to(output.dtype)
