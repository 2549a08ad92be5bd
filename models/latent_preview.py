"""Latent previews: a linear latent-to-RGB projection per latent format, so samplers can show each step's x0
estimate as a picture without running the VAE.

The projection is fitted to the VAE itself: when a VAE loads, a small seeded random latent is decoded and the
pooled colours are regressed (least squares, lightly regularised) on the latent channels. Until a VAE of the
model's latent format has been seen, a run falls back to the latent's own three principal components (structure
and motion, false colours), fixed at the run's first preview so the colours do not flicker between steps.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from models.families.base import LatentFormat
from models.memory import ModelManager
from models.video_vae import VideoVAE

__all__ = ["LATENT_PREVIEWS_SERVICE", "LatentPreviews", "LatentRgbProjection", "fit_rgb_projection"]

LATENT_PREVIEWS_SERVICE = "latent_previews"
"""The name nodes reach the ``LatentPreviews`` by: ``current_context().services.get(LATENT_PREVIEWS_SERVICE)``."""

FIT_LATENT_SIZE = 12  # latent pixels per side decoded for the fit (2 latent frames: 288 samples per fit)
FIT_SEED = 20261121
RIDGE = 1e-3


@dataclass(frozen=True)
class LatentRgbProjection:
    """``rgb = latent_channels @ weight + bias`` (``weight`` ``[C, 3]``), on raw latents, colours in 0..1."""

    weight: torch.Tensor
    bias: torch.Tensor

    def image(self, latent: torch.Tensor) -> torch.Tensor:
        """The middle latent frame of the first item of a raw latent ``[B, C, T, h, w]`` as ``[h, w, 3]`` in 0..1."""
        frame = latent[0, :, latent.shape[2] // 2].float().cpu()  # [C, h, w]
        rgb = torch.einsum("chw,cr->hwr", frame, self.weight) + self.bias
        return rgb.clamp(0.0, 1.0)


def fit_rgb_projection(vae: VideoVAE, manager: ModelManager) -> LatentRgbProjection:
    """Fit ``vae``'s latent-to-RGB projection from one small decode (raw latents in, pooled colours out)."""
    fmt = vae.latent_format
    generator = torch.Generator().manual_seed(FIT_SEED)
    normalised = torch.randn(1, fmt.channels, 2, FIT_LATENT_SIZE, FIT_LATENT_SIZE, generator=generator)
    raw = fmt.process_out(normalised)
    with torch.no_grad():
        frames = vae.decode(manager, raw)  # [1 + temporal_ratio, H, W, 3]
    colours = _pooled_colours(frames, fmt)  # [2, h, w, 3]
    inputs = torch.cat(
        [raw[0].permute(1, 2, 3, 0).reshape(-1, fmt.channels), torch.ones(colours[..., 0].numel(), 1)], 1
    )
    targets = colours.reshape(-1, 3)
    gram = inputs.T @ inputs + RIDGE * len(inputs) * torch.eye(inputs.shape[1])
    solution = torch.linalg.solve(gram, inputs.T @ targets)
    return LatentRgbProjection(solution[:-1].contiguous(), solution[-1].contiguous())


def pca_projection(latent: torch.Tensor) -> LatentRgbProjection:
    """A projection onto the three principal components of a raw latent ``[B, C, T, h, w]``, scaled to 0..1."""
    samples = latent[0].float().cpu().flatten(1).T  # [pixels, C]
    mean = samples.mean(dim=0)
    _, _, basis = torch.linalg.svd(samples - mean, full_matrices=False)
    components = basis[:3].T  # [C, 3] (fewer channels than 3 leave the rest black)
    if components.shape[1] < 3:
        components = F.pad(components, (0, 3 - components.shape[1]))
    components = components * torch.sign(components.sum(dim=0, keepdim=True) + 1e-12)  # a fixed sign per axis
    projected = (samples - mean) @ components
    scale = 0.5 / (projected.abs().amax(dim=0) + 1e-6)
    weight = components * scale
    return LatentRgbProjection(weight, 0.5 - mean @ weight)


class LatentPreviews:
    """Projections per latent format, learnt from the VAEs loaded so far; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_format: dict[str, LatentRgbProjection] = {}
        self._fitted_vaes: set[str] = set()

    def learn(self, vae: VideoVAE, manager: ModelManager) -> None:
        """Fit ``vae``'s projection once per VAE (the latest VAE of a format serves that format)."""
        key = vae.handle.key
        with self._lock:
            if key in self._fitted_vaes:
                return
        projection = fit_rgb_projection(vae, manager)
        with self._lock:
            self._fitted_vaes.add(key)
            self._by_format[vae.latent_format.name] = projection

    def projection(self, fmt: LatentFormat) -> LatentRgbProjection | None:
        with self._lock:
            return self._by_format.get(fmt.name)


def _pooled_colours(frames: torch.Tensor, fmt: LatentFormat) -> torch.Tensor:
    """Decoded frames ``[N, H, W, 3]`` averaged onto the latent grid ``[T, h, w, 3]``: the first frame alone, then
    ``temporal_ratio`` frames per latent frame, ``spatial_ratio`` pixels per latent pixel."""
    groups = [frames[:1], *frames[1:].split(fmt.temporal_ratio)]
    per_frame = torch.stack([group.mean(dim=0) for group in groups])  # [T, H, W, 3]
    pooled = F.avg_pool2d(per_frame.permute(0, 3, 1, 2), fmt.spatial_ratio)
    return pooled.permute(0, 2, 3, 1)
