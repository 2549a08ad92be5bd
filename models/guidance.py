"""Guiders (the ``GUIDER`` socket): turn a network and its conditioning into the denoiser samplers call.

``Guider.denoise(network, x, sigma)`` predicts under every conditioning entry (entries are averaged by their
``strength``), combines positive and negative with classifier-free guidance on the network's raw prediction (as
diffusers' pipelines do; for flow and epsilon models this equals guidance on the denoised estimate), and converts the
result to the ``x0`` estimate with the model's sampling. The negative pass is skipped when ``cfg`` is 1.

The entries run as one batched network call where the adapter can merge them (same text length, same extras: as
the pipelines batch their conditional and unconditional halves), else one call each; a batched call that runs out
of memory is redone one entry at a time. ``streams`` counts the batch for the memory estimate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from models.controlnet.control_step import ControlStep, EntryControls, check_controls
from models.diffusion_model import DiffusionModel
from models.families.base import ConditioningEntry
from models.oom import is_out_of_memory

__all__ = ["Conditioning", "Guider", "conditioning_entries", "with_extras"]

Conditioning = Sequence[Sequence[Any]]
"""ComfyUI's ``CONDITIONING``: a list of ``[tensor, extras dict]``."""


def conditioning_entries(conditioning: Conditioning, name: str) -> list[ConditioningEntry]:
    """The entries of a ``CONDITIONING`` value as ``(tensor, extras)`` pairs; ValueError naming ``name`` for
    anything else (an empty list, a bare tensor)."""
    if isinstance(conditioning, torch.Tensor) or not isinstance(conditioning, Sequence) or not conditioning:
        raise ValueError(f"{name} is not a conditioning list ([[tensor, {{...}}], ...]) or is empty")
    entries = []
    for index, item in enumerate(conditioning):
        if not isinstance(item, Sequence) or len(item) != 2 or not isinstance(item[0], torch.Tensor):
            raise ValueError(f"{name}[{index}] is not a [tensor, dict] pair")
        entries.append((item[0], dict(item[1] or {})))
    return entries


def with_extras(conditioning: Conditioning, name: str, extras: dict[str, Any]) -> list[list[Any]]:
    """A copy of ``conditioning`` with ``extras`` set on every entry (the input is not changed)."""
    return [[tensor, {**old, **extras}] for tensor, old in conditioning_entries(conditioning, name)]


@dataclass(frozen=True)
class Guider:
    """``model`` guided by ``positive`` (and ``negative`` at scale ``cfg``; ``BasicGuider`` has no negative)."""

    model: DiffusionModel
    positive: Conditioning
    negative: Conditioning | None = None
    cfg: float = 1.0

    @property
    def uses_negative(self) -> bool:
        return self.negative is not None and (self.cfg != 1.0 or self.model.video_min_cfg not in (None, 1.0))

    @property
    def streams(self) -> int:
        """The most predictions one network call makes at once, per latent sample (for the memory estimate): every
        positive and negative entry, which run batched when the adapter can merge them."""
        return sum(len(conditioning_entries(conditioning, name)) for name, conditioning in self._parts())

    def check(self, samples: torch.Tensor) -> None:
        """Raise ``ValueError`` naming what does not fit ``samples`` before any step runs."""
        for name, conditioning in self._parts():
            for entry in conditioning_entries(conditioning, name):
                try:
                    check_controls(self.model.adapter, entry, samples)
                    self.model.adapter.check_conditioning(entry, samples)
                except ValueError as exc:
                    raise type(exc)(f"{name}: {exc}") from exc

    def entries(self) -> list[ConditioningEntry]:
        """Every conditioning entry a prediction uses: the positive ones, then the negative ones."""
        return [entry for name, conditioning in self._parts() for entry in conditioning_entries(conditioning, name)]

    def denoise(
        self,
        network: torch.nn.Module,
        x: torch.Tensor,
        sigma: torch.Tensor,
        denoise_mask: torch.Tensor | None = None,
        controls: ControlStep | None = None,
    ) -> torch.Tensor:
        """The ``x0`` estimate for state ``x`` at ``sigma`` (0-d or ``[B]``); ``denoise_mask`` (``[B, 1, T, H, W]``,
        1 = generated) goes to the adapter when the latent keeps a region; ``controls`` are the run's placed
        ControlNets (``placed_controls``) when its conditioning has any."""
        sampling = self.model.sampling
        sigmas = sigma.reshape(-1).to(x.device, torch.float32).expand(x.shape[0])
        per_sample = sigmas.view(-1, *([1] * (x.dim() - 1)))
        x_in = sampling.model_input(x, per_sample)
        step_controls = controls.at(float(sigmas[0])) if controls is not None else None
        output = self.prediction(network, x_in, sampling.timestep(sigmas), denoise_mask, step_controls)
        return sampling.denoised(x, per_sample, output)

    def prediction(
        self,
        network: torch.nn.Module,
        x_in: torch.Tensor,
        timestep: torch.Tensor,
        denoise_mask: torch.Tensor | None = None,
        controls: EntryControls | None = None,
    ) -> torch.Tensor:
        """The guided raw network prediction for the network input ``x_in`` at ``timestep`` (``[B]``, or what the
        family's adapter takes, e.g. ``[B, F]`` per-frame timesteps): the entries averaged by strength, then CFG.
        ``denoise`` converts it to ``x0``; solvers that step on raw predictions (diffusion forcing) use it as is.
        ``controls`` sets the step's ControlNet residuals on each entry first."""
        parts = [(name, conditioning_entries(conditioning, name)) for name, conditioning in self._parts()]
        entries = [entry for _, part in parts for entry in part]
        if controls is not None:
            entries = [controls(entry, x_in, timestep) for entry in entries]
        predictions = self._predict(network, x_in, timestep, entries, denoise_mask)
        averaged = []
        for name, entries in parts:
            averaged.append(_strength_average(entries, predictions[: len(entries)], name))
            predictions = predictions[len(entries) :]
        output = averaged[0]
        if len(averaged) > 1:
            unconditional = averaged[1]
            output = unconditional + self._cfg_scale(output) * (output - unconditional)
        return output

    def _cfg_scale(self, output: torch.Tensor) -> float | torch.Tensor:
        """``cfg``; with the model's ``video_min_cfg``, per latent frame (dim 2) from it to ``cfg`` (as
        ``StableVideoDiffusionPipeline``'s min/max guidance scales)."""
        start = self.model.video_min_cfg
        if start is None:
            return self.cfg
        frames = output.shape[2]
        scale = torch.linspace(start, self.cfg, frames, dtype=torch.float32).to(output.device, output.dtype)
        return scale.view(1, 1, frames, *([1] * (output.dim() - 3)))

    def _predict(
        self,
        network: torch.nn.Module,
        x: torch.Tensor,
        timestep: torch.Tensor,
        entries: list[ConditioningEntry],
        denoise_mask: torch.Tensor | None,
    ) -> list[torch.Tensor]:
        """The raw predictions under ``entries``: batched where the adapter can, one at a time when that runs out
        of memory."""
        adapter, dtype = self.model.adapter, self.model.compute_dtype
        if len(entries) > 1:
            try:
                return adapter.predict_entries(network, x, timestep, entries, dtype, denoise_mask)
            except Exception as error:
                if not is_out_of_memory(error):
                    raise
        return adapter.predict_entries(network, x, timestep, entries, dtype, denoise_mask, batch=False)

    def _parts(self) -> list[tuple[str, Conditioning]]:
        parts = [("positive", self.positive)]
        if self.uses_negative:
            assert self.negative is not None
            parts.append(("negative", self.negative))
        return parts


def _strength_average(entries: list[ConditioningEntry], predictions: list[torch.Tensor], name: str) -> torch.Tensor:
    """The predictions under ``entries`` averaged by the entries' ``strength``."""
    total = None
    weight_sum = 0.0
    for (_, extras), prediction in zip(entries, predictions, strict=True):
        weight = float(extras.get("strength", 1.0))
        total = prediction * weight if total is None else total + prediction * weight
        weight_sum += weight
    assert total is not None
    if weight_sum <= 0:
        raise ValueError(f"{name}: the conditioning strengths add up to {weight_sum}; they must be positive")
    return total if weight_sum == 1.0 else total / weight_sum
