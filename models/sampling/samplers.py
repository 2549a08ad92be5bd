"""Samplers by ComfyUI name: ``get_sampler`` checks a name and its options once; ``Sampler.sample`` runs it.

A sampler walks a descending sigma list with a denoiser ``D(x, sigma) -> x0`` from the already-noised state ``x``.
Stochastic samplers draw fresh noise from the given CPU generator; deterministic ones never touch it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from types import MappingProxyType

import torch
from torch import Tensor

from models.sampling import samplers_multistep, samplers_single
from models.sampling.model_sampling import ModelSampling
from models.sampling.sampling_run import Denoiser, SamplingRun, StepCallback
from models.sampling.uni_pc import uni_pc

__all__ = ["SAMPLER_NAMES", "Denoiser", "Sampler", "SamplerOptions", "StepCallback", "get_sampler"]

Option = float | str


class SamplerOptions(Mapping[str, Option]):
    """A sampler's options: read-only, hashable and picklable (unlike ``MappingProxyType``)."""

    __slots__ = ("_items",)

    def __init__(self, values: Mapping[str, Option]) -> None:
        self._items = tuple(values.items())

    def __getitem__(self, key: str) -> Option:
        for name, value in self._items:
            if name == key:
                return value
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(frozenset(self._items))

    def __repr__(self) -> str:
        return f"SamplerOptions({dict(self._items)!r})"


@dataclass(frozen=True)
class _Method:
    """A sampler method and the options it takes, with their defaults."""

    run: Callable[..., Tensor]
    defaults: SamplerOptions = field(default_factory=lambda: SamplerOptions({}))


_NOISE = SamplerOptions({"eta": 1.0, "s_noise": 1.0})
_METHODS: Mapping[str, _Method] = MappingProxyType(
    {
        "euler": _Method(samplers_single.euler),
        "euler_ancestral": _Method(samplers_single.euler_ancestral, _NOISE),
        "heun": _Method(samplers_single.heun),
        "dpm_2": _Method(samplers_single.dpm_2),
        "dpmpp_2m": _Method(samplers_multistep.dpmpp_2m),
        "dpmpp_2m_sde": _Method(samplers_multistep.dpmpp_2m_sde, SamplerOptions({**_NOISE, "solver_type": "midpoint"})),
        "dpmpp_3m_sde": _Method(samplers_multistep.dpmpp_3m_sde, _NOISE),
        "lcm": _Method(samplers_single.lcm),
        "ddim": _Method(samplers_single.ddim),
        "uni_pc": _Method(partial(uni_pc, variant="bh1")),
        "uni_pc_bh2": _Method(partial(uni_pc, variant="bh2")),
    }
)
SAMPLER_NAMES: tuple[str, ...] = tuple(_METHODS)


def _checked_options(name: str, options: Mapping[str, Option]) -> dict[str, Option]:
    """``options`` over the method's defaults, each known and valid."""
    defaults = _METHODS[name].defaults
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        valid = ", ".join(defaults) or "none"
        raise ValueError(f"sampler {name!r}: unknown option(s) {', '.join(unknown)}; valid options: {valid}")
    merged = {**defaults, **options}
    for key in ("eta", "s_noise"):
        if key in merged:
            value = merged[key]
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not (math.isfinite(value) and value >= 0)
            ):
                raise ValueError(f"sampler {name!r}: option {key} must be a finite number >= 0, got {value!r}")
            merged[key] = float(value)
    if "solver_type" in merged and merged["solver_type"] not in samplers_multistep.SDE_SOLVER_TYPES:
        valid = ", ".join(samplers_multistep.SDE_SOLVER_TYPES)
        raise ValueError(f"sampler {name!r}: unknown solver_type {merged['solver_type']!r}; valid: {valid}")
    return merged


def _checked_sigmas(sigmas: Tensor, model_sampling: ModelSampling) -> tuple[float, ...]:
    """The sigma list as exact floats: 1-D, finite, strictly descending, >= 0, within the model's state space."""
    if not isinstance(sigmas, Tensor) or sigmas.ndim != 1:
        shape = tuple(sigmas.shape) if isinstance(sigmas, Tensor) else type(sigmas).__name__
        raise ValueError(f"sigmas must be a 1-D tensor, got {shape}")
    if not sigmas.is_floating_point() or not bool(torch.isfinite(sigmas).all()):
        raise ValueError(f"sigmas must be finite floating-point values, got {sigmas.tolist()}")
    values = tuple(float(s) for s in sigmas.detach().double().cpu())
    if any(a <= b for a, b in itertools.pairwise(values)):
        raise ValueError(f"sigmas must be strictly descending, got {list(values)}")
    if values and values[-1] < 0.0:
        raise ValueError(f"sigmas must not be negative, got {list(values)}")
    if values and float(model_sampling.alpha(torch.tensor(values[0], dtype=torch.float64))) < 0.0:
        raise ValueError(f"sigma {values[0]} is outside the state space of {type(model_sampling).__name__}")
    return values


@dataclass(frozen=True)
class Sampler:
    """A sampler by ComfyUI name with its options (defaults filled in, read-only); what the SAMPLER socket carries."""

    name: str
    options: Mapping[str, Option] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.name not in _METHODS:
            raise ValueError(f"unknown sampler {self.name!r}; valid samplers: {', '.join(SAMPLER_NAMES)}")
        object.__setattr__(self, "options", SamplerOptions(_checked_options(self.name, self.options)))

    def sample(
        self,
        denoiser: Denoiser,
        x: Tensor,
        sigmas: Tensor,
        model_sampling: ModelSampling,
        *,
        generator: torch.Generator | None = None,
        callback: StepCallback | None = None,
    ) -> Tensor:
        """Walk ``sigmas`` from the noised state ``x`` (at ``sigmas[0]``); fewer than two sigmas return ``x``.

        Args:
            denoiser: ``(x, sigma) -> x0`` estimate, ``sigma`` one value per batch item.
            generator: the CPU generator stochastic samplers draw noise from (the global one when None).
            callback: called after every step with ``(step, total steps, x, denoised)``.
        """
        if not isinstance(x, Tensor) or not x.is_floating_point() or x.ndim < 1:
            raise ValueError("x must be a floating-point tensor with a batch dimension")
        if generator is not None and generator.device.type != "cpu":
            raise ValueError(f"generator must be a CPU torch.Generator, got one on {generator.device}")
        values = _checked_sigmas(sigmas, model_sampling)
        if len(values) < 2:
            return x
        run = SamplingRun(denoiser, values, sigmas.dtype, model_sampling, generator, callback)
        return _METHODS[self.name].run(run, x, **self.options)


def get_sampler(name: str, **options: Option) -> Sampler:
    """The sampler ``name`` (one of ``SAMPLER_NAMES``) with ``options`` (e.g. ``eta``, ``s_noise``) over defaults."""
    return Sampler(name, options)
