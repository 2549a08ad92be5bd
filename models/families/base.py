"""What generic model code asks of a model family: its latent format, how to call its network on one conditioning
entry (``network_call``: arguments split into per-sample and shared ones, so that the calls of several entries
merge into one batched call where they fit), how much memory a run takes, and its default noise parametrisation.

A family adapter is the only code that knows a family's network signature and conditioning extras; samplers,
guiders and nodes call these methods and nothing family-specific.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from models.accelerate.caches import cache_context
from models.memory_types import WorkEstimate
from models.sampling.model_sampling import ModelSampling

__all__ = [
    "ConditioningEntry",
    "FamilyAdapter",
    "LatentFormat",
    "LatentShapeError",
    "NetworkCall",
    "batched",
    "check_attention_mask",
    "check_batch",
    "check_text_embeddings",
    "mergeable",
    "merged_call",
]

ConditioningEntry = tuple[torch.Tensor, Mapping[str, Any]]
"""One ``[tensor, extras]`` item of a ``CONDITIONING`` list (the extras are read, never changed in place)."""


class LatentShapeError(ValueError):
    """A latent or image does not fit the model: wrong channels, rank, or a size the family cannot take."""


@dataclass(frozen=True)
class LatentFormat:
    """A family's VAE latent space: channel count, per-channel statistics and compression ratios.

    ``LATENT`` values hold raw VAE latents (what ``VAEEncode`` gives and ``VAEDecode`` takes); the network works on
    ``(raw - mean) / std``.
    """

    name: str
    channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    spatial_ratio: int
    temporal_ratio: int

    def __post_init__(self) -> None:
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            raise ValueError(f"{self.name}: {self.channels} channels need as many means and stds")

    def process_in(self, latent: torch.Tensor) -> torch.Tensor:
        """Raw VAE latent ``[B, C, T, H, W]`` -> the network's normalised space."""
        mean, std = self._stats(latent)
        return (latent - mean) / std

    def process_out(self, latent: torch.Tensor) -> torch.Tensor:
        """The network's space -> raw VAE latent."""
        mean, std = self._stats(latent)
        return latent * std + mean

    def latent_frames(self, frames: int) -> int:
        """Latent frames for ``frames`` video frames (the first frame is coded alone)."""
        return (frames - 1) // self.temporal_ratio + 1

    def check(self, samples: torch.Tensor, what: str = "latent") -> None:
        """Raise ``LatentShapeError`` unless ``samples`` is a ``[B, C, T, H, W]`` latent of this format."""
        if samples.dim() != 5:
            raise LatentShapeError(
                f"{what} has shape {tuple(samples.shape)}; a {self.name} video latent is [batch, {self.channels}, "
                "frames, height, width]"
            )
        if samples.shape[1] != self.channels:
            raise LatentShapeError(
                f"{what} has {samples.shape[1]} channels; the {self.name} latent has {self.channels} (was it made "
                "for another model family, or by another VAE?)"
            )

    def _stats(self, latent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.check(latent)
        shape = (1, self.channels, 1, 1, 1)
        mean = torch.tensor(self.mean, dtype=latent.dtype, device=latent.device).view(shape)
        std = torch.tensor(self.std, dtype=latent.dtype, device=latent.device).view(shape)
        return mean, std


def batched(tensor: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``tensor`` (a conditioning tensor) with its batch repeated to the latent ``x``'s: a batch of one serves any
    batch; another size that differs raises ``LatentShapeError``."""
    if tensor.shape[0] == x.shape[0]:
        return tensor
    if tensor.shape[0] != 1:
        raise LatentShapeError(f"conditioning batch {tensor.shape[0]} does not match latent batch {x.shape[0]}")
    return tensor.expand(x.shape[0], *tensor.shape[1:])


def check_batch(tensor: torch.Tensor | None, samples: torch.Tensor, what: str) -> None:
    """``LatentShapeError`` unless ``tensor`` (when given) has batch 1 (shared by all samples) or the latent's."""
    if tensor is not None and tensor.shape[0] not in (1, samples.shape[0]):
        raise LatentShapeError(f"{what} has batch {tensor.shape[0]} but the latent has batch {samples.shape[0]}")


def check_text_embeddings(
    embeds: torch.Tensor, samples: torch.Tensor, width: int | None, model: str, hint: str
) -> None:
    """``LatentShapeError`` unless the text conditioning is ``[1 or batch, tokens, width]`` (any width when None);
    ``model`` is the adapter's description, ``hint`` says how to encode the prompt for it."""
    if embeds.dim() != 3 or (width is not None and embeds.shape[-1] != width):
        raise LatentShapeError(
            f"the text conditioning has shape {tuple(embeds.shape)}; {model} takes [batch, tokens, {width}] ({hint})"
        )
    check_batch(embeds, samples, "the text conditioning")


def check_attention_mask(mask: torch.Tensor | None, embeds: torch.Tensor, samples: torch.Tensor) -> None:
    """``LatentShapeError`` unless the conditioning's ``attention_mask`` (when given) is ``[1 or batch, tokens]`` for
    its text's tokens."""
    if mask is None:
        return
    tokens = embeds.shape[1]
    if mask.dim() != 2 or mask.shape[-1] != tokens:
        raise LatentShapeError(
            f"attention_mask has shape {tuple(mask.shape)}; for {tokens} text tokens it must be [batch, {tokens}]"
        )
    check_batch(mask, samples, "attention_mask")


@dataclass(frozen=True)
class NetworkCall:
    """The keyword arguments of one network call, split by how they batch: ``per_sample`` values (tensors with the
    batch on dim 0, tuples of such tensors, lists with one item per sample, or None) and ``shared`` ones that hold
    for every sample (sizes, position embeddings, switches). Calls whose shared values are equal and whose
    per-sample values differ only in their batch merge into one batched call (``merged_call``)."""

    per_sample: Mapping[str, Any]
    shared: Mapping[str, Any]


def merged_call(calls: Sequence[NetworkCall]) -> NetworkCall | None:
    """One call over the samples of all ``calls`` in order (tensors concatenated on dim 0, tuples of tensors item by
    item, lists joined), or None when they cannot share one (see ``mergeable``)."""
    first = calls[0]
    if len(calls) == 1:
        return first
    if not all(mergeable(first, call) for call in calls[1:]):
        return None
    per_sample: dict[str, Any] = {}
    for name, value in first.per_sample.items():
        values = [call.per_sample[name] for call in calls]
        if isinstance(value, torch.Tensor):
            per_sample[name] = torch.cat(values)
        elif isinstance(value, tuple):
            per_sample[name] = tuple(torch.cat(parts) for parts in zip(*values, strict=True))
        elif isinstance(value, list):
            per_sample[name] = [item for part in values for item in part]
        else:
            per_sample[name] = None
    return NetworkCall(per_sample, first.shared)


def mergeable(call: NetworkCall, other: NetworkCall) -> bool:
    """Whether two calls can run as one: the same argument names, per-sample values alike but for their batch
    (shape beyond dim 0, dtype, device; or both lists, or both None), and equal shared values (a text of another
    token length, another frame rate or a switch set differently keeps them apart)."""
    if call.per_sample.keys() != other.per_sample.keys() or not _same(call.shared, other.shared):
        return False
    return all(_alike(value, other.per_sample[name]) for name, value in call.per_sample.items())


def _alike(value: Any, other: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return (
            isinstance(other, torch.Tensor)
            and value.dim() > 0
            and value.shape[1:] == other.shape[1:]
            and value.dtype == other.dtype
            and value.device == other.device
        )
    if isinstance(value, tuple):
        return (
            isinstance(other, tuple)
            and len(value) == len(other)
            and all(_alike(item, other_item) for item, other_item in zip(value, other, strict=True))
        )
    if isinstance(value, list):
        return isinstance(other, list)
    return value is None and other is None


def _same(value: Any, other: Any) -> bool:
    """Whether two shared argument values are equal (tensors by value, containers item by item)."""
    if value is other:
        return True
    if isinstance(value, torch.Tensor):
        return (
            isinstance(other, torch.Tensor)
            and value.shape == other.shape
            and value.dtype == other.dtype
            and value.device == other.device
            and bool(torch.equal(value, other))
        )
    if isinstance(value, Mapping):
        return (
            isinstance(other, Mapping)
            and value.keys() == other.keys()
            and all(_same(value[key], other[key]) for key in value)
        )
    if isinstance(value, list | tuple):
        return (
            type(value) is type(other)
            and len(value) == len(other)
            and all(_same(item, other_item) for item, other_item in zip(value, other, strict=True))
        )
    return type(value) is type(other) and bool(value == other)


class FamilyAdapter(ABC):
    """One model family's plumbing around its (diffusers) network; instances describe one loaded variant."""

    family: str
    latent_format: LatentFormat

    @abstractmethod
    def describe(self) -> str:
        """A short description for logs and output info, e.g. ``"Wan 2.1 i2v, dim 5120, 40 layers"``."""

    @abstractmethod
    def default_sampling(self) -> ModelSampling:
        """The noise parametrisation the family was trained with (before any ``ModelSampling*`` node)."""

    @abstractmethod
    def network_call(
        self,
        x: torch.Tensor,
        timestep: torch.Tensor,
        entry: ConditioningEntry,
        dtype: torch.dtype,
        denoise_mask: torch.Tensor | None = None,
    ) -> NetworkCall:
        """The network's arguments for state ``x`` (the network's space, float32, ``[B, C, T, H, W]``) at
        ``timestep`` (``[B]``) under one conditioning entry; the network computes in ``dtype`` (its weights may be
        stored in another, e.g. fp8). ``denoise_mask`` (``[B, 1, T, H, W]``, 1 where generated) is given when the
        latent keeps a region; families with per-token timesteps use it."""

    def network_output(self, output: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The raw network output of one call's samples as float32 shaped like ``x``."""
        return output.float()

    def run_network(self, network: torch.nn.Module, call: NetworkCall) -> torch.Tensor:
        """``network`` called with ``call``'s arguments; its first output."""
        return network(**call.per_sample, **call.shared, return_dict=False)[0]

    def predict(
        self,
        network: torch.nn.Module,
        x: torch.Tensor,
        timestep: torch.Tensor,
        entry: ConditioningEntry,
        dtype: torch.dtype,
        denoise_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The network's raw prediction for ``x`` at ``timestep`` under one conditioning entry, float32 shaped like
        ``x`` (the arguments as ``network_call``'s)."""
        return self.network_output(
            self.run_network(network, self.network_call(x, timestep, entry, dtype, denoise_mask)), x
        )

    def predict_entries(
        self,
        network: torch.nn.Module,
        x: torch.Tensor,
        timestep: torch.Tensor,
        entries: Sequence[ConditioningEntry],
        dtype: torch.dtype,
        denoise_mask: torch.Tensor | None = None,
        *,
        batch: bool = True,
    ) -> list[torch.Tensor]:
        """``predict`` under each of ``entries``, in order. With ``batch``, entries whose calls merge (the same
        shapes and shared settings; see ``merged_call``) run as one network call over their samples, as diffusers'
        pipelines batch the conditional and unconditional passes; the rest run one call each."""
        calls = [self.network_call(x, timestep, entry, dtype, denoise_mask) for entry in entries]
        groups = _mergeable_groups(calls) if batch else [[index] for index in range(len(calls))]
        predictions: dict[int, torch.Tensor] = {}
        for group in groups:
            merged = merged_call([calls[index] for index in group])
            assert merged is not None  # the group was formed of mergeable calls
            with cache_context(network, f"entries-{'-'.join(map(str, group))}"):
                outputs = self.run_network(network, merged).tensor_split(len(group))
            for index, output in zip(group, outputs, strict=True):
                predictions[index] = self.network_output(output, x)
        return [predictions[index] for index in range(len(calls))]

    def controlnet_mismatch(self, widths: tuple[int, ...], text_dim: int, sparse: bool) -> str | None:
        """Why a ControlNet (a SparseCtrl when ``sparse``) with level ``widths`` attending to text of ``text_dim``
        cannot drive this network (None when it can). By default none can: ControlNets add residuals to UNets."""
        return f"ControlNets drive Stable Diffusion 1.5 and AnimateDiff UNets, not {self.describe()}"

    def controlnet_arguments(
        self,
        x: torch.Tensor,
        timestep: torch.Tensor,
        entry: ConditioningEntry,
        dtype: torch.dtype,
        *,
        whole_video: bool = False,
    ) -> dict[str, torch.Tensor]:
        """A ControlNet's ``sample``, ``timestep`` and ``encoder_hidden_states`` for the network input ``x`` at
        ``timestep`` under ``entry``, in ``dtype`` (only for networks ``controlnet_mismatch`` accepts); with
        ``whole_video`` the sample is the video ``[B, C, T, H, W]`` (a SparseCtrl's), else its frames as batch."""
        raise NotImplementedError(f"{self.describe()} takes no ControlNet")

    def known_state(
        self, sampling: ModelSampling, sigma: torch.Tensor, noise: torch.Tensor, clean: torch.Tensor
    ) -> torch.Tensor:
        """What the network sees, at ``sigma``, of the region a noise mask keeps: by default the kept latent noised
        to ``sigma`` with the run's starting noise (inpainting); families that denoise per token keep it clean."""
        return sampling.noise_scaling(sigma, noise, clean)

    @abstractmethod
    def check_conditioning(self, entry: ConditioningEntry, samples: torch.Tensor) -> None:
        """Raise ``LatentShapeError``/``ValueError`` naming what does not fit before any step runs."""

    @abstractmethod
    def work_estimate(self, samples: torch.Tensor, streams: int) -> WorkEstimate:
        """The working memory of one forward over ``samples`` for ``streams`` parallel predictions."""


def _mergeable_groups(calls: Sequence[NetworkCall]) -> list[list[int]]:
    """The indices of ``calls`` grouped so that each group's calls merge (first fit, in order)."""
    groups: list[list[int]] = []
    for index, call in enumerate(calls):
        for group in groups:
            if mergeable(calls[group[0]], call):
                group.append(index)
                break
        else:
            groups.append([index])
    return groups
