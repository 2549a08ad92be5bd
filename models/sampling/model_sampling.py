"""How a model family parametrises noise: the state space, the network's input and output, the training sigmas.

Samplers work on a state ``x = alpha(sigma) * x0 + sigma * noise`` at noise level ``sigma`` (k-diffusion's convention).
``FlowSampling`` is rectified flow (``alpha = 1 - sigma``, the network predicts a velocity); ``EpsSampling`` is a
DDPM-discrete model in the variance-exploding state space (``alpha = 1``, the network predicts noise or ``v``).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from functools import cached_property

import torch
from torch import Tensor

__all__ = [
    "BETA_SCHEDULES",
    "PREDICTIONS",
    "EdmSampling",
    "EpsSampling",
    "FlowSampling",
    "ModelSampling",
    "ZeroSnrSampling",
]

BETA_SCHEDULES = ("scaled_linear", "linear")
PREDICTIONS = ("epsilon", "v_prediction")


def _per_sample(sigma: Tensor, like: Tensor) -> Tensor:
    """``sigma`` (0-d or one value per batch item) shaped to broadcast against ``like``."""
    if sigma.ndim == 0 or sigma.ndim >= like.ndim:
        return sigma
    return sigma.reshape(sigma.shape + (1,) * (like.ndim - sigma.ndim))


def _table_index(log_sigmas: Tensor, sigma: Tensor) -> Tensor:
    """The fractional index in the ascending table ``log_sigmas`` (float64) whose linearly interpolated value is
    ``log(sigma)``, clamped to the table."""
    log_sigma = sigma.detach().double().cpu().clamp(min=float(log_sigmas[0].exp())).log()
    high = torch.searchsorted(log_sigmas, log_sigma).clamp(1, len(log_sigmas) - 1)
    low = high - 1
    frac = ((log_sigma - log_sigmas[low]) / (log_sigmas[high] - log_sigmas[low])).clamp(0.0, 1.0)
    return (low + frac).to(device=sigma.device, dtype=torch.promote_types(sigma.dtype, torch.float32))


def _table_sigma(log_sigmas: Tensor, timestep: Tensor) -> Tensor:
    """``exp`` of the table ``log_sigmas`` linearly interpolated at the fractional index ``timestep`` (clamped)."""
    t = timestep.detach().double().cpu().clamp(0.0, len(log_sigmas) - 1)
    low = t.floor().long()
    high = t.ceil().long()
    frac = t - low
    log_sigma = (1.0 - frac) * log_sigmas[low] + frac * log_sigmas[high]
    return log_sigma.exp().to(device=timestep.device, dtype=torch.promote_types(timestep.dtype, torch.float32))


class ModelSampling(ABC):
    """The noise parametrisation of a model family; ``sigmas`` is its ascending float32 training sigma table."""

    @property
    @abstractmethod
    def sigmas(self) -> Tensor:
        """The discrete training sigmas, ascending, float32."""

    @property
    def sigma_min(self) -> float:
        return float(self.sigmas[0])

    @property
    def sigma_max(self) -> float:
        return float(self.sigmas[-1])

    @abstractmethod
    def timestep(self, sigma: Tensor) -> Tensor:
        """The value the network is called with at noise level ``sigma``."""

    @abstractmethod
    def sigma(self, timestep: Tensor) -> Tensor:
        """The noise level of a network timestep (inverse of ``timestep`` on the training range)."""

    @abstractmethod
    def alpha(self, sigma: Tensor) -> Tensor:
        """The signal scale of the state at ``sigma``: ``x = alpha * x0 + sigma * noise``."""

    @abstractmethod
    def noise_scaling(self, sigma: Tensor, noise: Tensor, latent: Tensor) -> Tensor:
        """The state at ``sigma`` made from a (partly) clean ``latent`` and unit Gaussian ``noise``."""

    @abstractmethod
    def inverse_noise_scaling(self, sigma: Tensor, latent: Tensor) -> Tensor:
        """Undo the state's signal scale on the final state (at ``sigma``, usually 0)."""

    @abstractmethod
    def denoised(self, x: Tensor, sigma: Tensor, model_output: Tensor) -> Tensor:
        """The x0 estimate from the network's raw prediction for state ``x`` at ``sigma``."""

    @abstractmethod
    def model_input(self, x: Tensor, sigma: Tensor) -> Tensor:
        """What the network is fed for state ``x`` at ``sigma``."""

    @abstractmethod
    def percent_to_sigma(self, percent: float) -> float:
        """The sigma reached after ``percent`` of the sampling: 1.0 gives 0.0; 0.0 gives a sigma at or above any the
        sampling can start from (a flow model's 1.0; ``inf`` for a variance-exploding one, as ComfyUI's huge value)."""


@dataclass(frozen=True)
class FlowSampling(ModelSampling):
    """Rectified flow ("CONST" in ComfyUI; SD3, Wan, Hunyuan, Mochi, LTX): ``x = (1 - sigma) x0 + sigma * noise``.

    ``sigma(t) = shift * t / (1 + (shift - 1) * t)`` with ``t = timestep / multiplier``; the network is called with
    ``sigma * multiplier`` (as diffusers' flow-match schedulers do) and predicts the velocity ``noise - x0``.
    """

    shift: float = 1.0
    multiplier: float = 1000.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.shift) and self.shift > 0):
            raise ValueError(f"FlowSampling: shift must be a positive number, got {self.shift}")
        if not (math.isfinite(self.multiplier) and self.multiplier > 0):
            raise ValueError(f"FlowSampling: multiplier must be a positive number, got {self.multiplier}")

    @cached_property
    def sigmas(self) -> Tensor:
        t = torch.arange(1, 1001, dtype=torch.float64) / 1000.0
        return self._shifted(t).to(torch.float32)

    def _shifted(self, t: Tensor) -> Tensor:
        return self.shift * t / (1.0 + (self.shift - 1.0) * t)

    def timestep(self, sigma: Tensor) -> Tensor:
        return sigma * self.multiplier

    def sigma(self, timestep: Tensor) -> Tensor:
        return self._shifted(timestep / self.multiplier)

    def alpha(self, sigma: Tensor) -> Tensor:
        return 1.0 - sigma

    def noise_scaling(self, sigma: Tensor, noise: Tensor, latent: Tensor) -> Tensor:
        sigma = _per_sample(sigma, latent)
        return sigma * noise + (1.0 - sigma) * latent

    def inverse_noise_scaling(self, sigma: Tensor, latent: Tensor) -> Tensor:
        """``latent / (1 - sigma)``; where ``sigma == 1`` the state holds no signal and is returned unchanged."""
        scale = 1.0 - _per_sample(sigma, latent)
        return torch.where(scale > 0, latent / torch.where(scale > 0, scale, 1.0), latent)

    def denoised(self, x: Tensor, sigma: Tensor, model_output: Tensor) -> Tensor:
        return x - _per_sample(sigma, x) * model_output

    def model_input(self, x: Tensor, sigma: Tensor) -> Tensor:
        return x

    def percent_to_sigma(self, percent: float) -> float:
        if percent <= 0.0:
            return 1.0
        if percent >= 1.0:
            return 0.0
        return float(self._shifted(torch.tensor(1.0 - percent, dtype=torch.float64)))


class _VarianceExploding(ModelSampling):
    """The variance-exploding state ``x = x0 + sigma * noise`` (unit data scale); the network is fed the VP state
    ``x / sqrt(sigma^2 + 1)``."""

    def alpha(self, sigma: Tensor) -> Tensor:
        return torch.ones_like(sigma)

    def noise_scaling(self, sigma: Tensor, noise: Tensor, latent: Tensor) -> Tensor:
        return latent + _per_sample(sigma, noise) * noise

    def inverse_noise_scaling(self, sigma: Tensor, latent: Tensor) -> Tensor:
        return latent

    def model_input(self, x: Tensor, sigma: Tensor) -> Tensor:
        return x / (_per_sample(sigma, x) ** 2 + 1.0).sqrt()


def _x0_from_v(x: Tensor, sigma: Tensor, v: Tensor) -> Tensor:
    """The data estimate of a ``v`` prediction for the variance-exploding state ``x`` at ``sigma`` (shaped to ``x``):
    ``v = alpha_vp * noise - sigma_vp * x0`` in the VP state, i.e. c_skip and c_out for unit data."""
    return x / (sigma**2 + 1.0) - v * sigma / (sigma**2 + 1.0).sqrt()


def _check_discrete(sampling: EpsSampling | ZeroSnrSampling) -> None:
    """``ValueError`` naming the sampling for a beta schedule, prediction or table size it cannot have."""
    name = type(sampling).__name__
    if sampling.schedule not in BETA_SCHEDULES:
        raise ValueError(f"{name}: unknown schedule {sampling.schedule!r}; valid: {', '.join(BETA_SCHEDULES)}")
    if sampling.prediction not in PREDICTIONS:
        raise ValueError(f"{name}: unknown prediction {sampling.prediction!r}; valid: {', '.join(PREDICTIONS)}")
    if sampling.steps < 2:
        raise ValueError(f"{name}: steps must be at least 2, got {sampling.steps}")
    if not 0.0 < sampling.beta_start <= sampling.beta_end < 1.0:
        raise ValueError(
            f"{name}: need 0 < beta_start <= beta_end < 1, got {sampling.beta_start} and {sampling.beta_end}"
        )


def _betas(sampling: EpsSampling | ZeroSnrSampling, linear_dtype: torch.dtype) -> Tensor:
    """The training betas: ``scaled_linear`` (linear in their square roots, float64) or ``linear`` (in
    ``linear_dtype``)."""
    if sampling.schedule == "scaled_linear":
        start, end = sampling.beta_start**0.5, sampling.beta_end**0.5
        return torch.linspace(start, end, sampling.steps, dtype=torch.float64) ** 2
    return torch.linspace(sampling.beta_start, sampling.beta_end, sampling.steps, dtype=linear_dtype)


@dataclass(frozen=True)
class EpsSampling(_VarianceExploding):
    """A DDPM-discrete model (SD1.5, AnimateDiff) in the variance-exploding state space: ``x = x0 + sigma * noise``.

    The training sigmas are ``sqrt((1 - abar_i) / abar_i)`` for the cumulative products ``abar_i`` of ``1 - beta_i``;
    the network is called with the fractional index of ``sigma`` in the log-sigma table and predicts the noise
    (``epsilon``) or ``v`` (``v_prediction``, with unit data scale).
    """

    beta_start: float = 0.00085
    beta_end: float = 0.012
    schedule: str = "scaled_linear"
    steps: int = 1000
    prediction: str = "epsilon"

    def __post_init__(self) -> None:
        _check_discrete(self)

    @cached_property
    def sigmas(self) -> Tensor:
        alphas_cumprod = torch.cumprod(1.0 - _betas(self, torch.float64), dim=0)
        return ((1.0 - alphas_cumprod) / alphas_cumprod).sqrt().to(torch.float32)

    @cached_property
    def _log_sigmas(self) -> Tensor:
        return self.sigmas.double().log()

    def timestep(self, sigma: Tensor) -> Tensor:
        return _table_index(self._log_sigmas, sigma)

    def sigma(self, timestep: Tensor) -> Tensor:
        return _table_sigma(self._log_sigmas, timestep)

    def denoised(self, x: Tensor, sigma: Tensor, model_output: Tensor) -> Tensor:
        sigma = _per_sample(sigma, x)
        if self.prediction == "epsilon":
            return x - sigma * model_output
        return _x0_from_v(x, sigma, model_output)

    def percent_to_sigma(self, percent: float) -> float:
        if percent <= 0.0:
            return math.inf
        if percent >= 1.0:
            return 0.0
        return float(self.sigma(torch.tensor((1.0 - percent) * (self.steps - 1), dtype=torch.float64)))


@dataclass(frozen=True)
class EdmSampling(_VarianceExploding):
    """Continuous EDM with ``v`` prediction (Stable Video Diffusion): ``x = x0 + sigma * noise`` for any ``sigma`` in
    ``[sigma_min, sigma_max]``, unit data scale.

    The network is fed ``x / sqrt(sigma^2 + 1)`` and called with ``c_noise = 0.25 * ln(sigma)``; its ``v`` output
    gives ``x0 = x / (sigma^2 + 1) - v * sigma / sqrt(sigma^2 + 1)`` (diffusers' ``EulerDiscreteScheduler`` with
    ``timestep_type="continuous"``). Schedulers read a table of ``TABLE_SIZE`` log-spaced sigmas.
    """

    sigma_min: float = 0.002
    sigma_max: float = 700.0

    TABLE_SIZE = 1000

    def __post_init__(self) -> None:
        if not (math.isfinite(self.sigma_max) and 0.0 < self.sigma_min < self.sigma_max):
            raise ValueError(f"EdmSampling: need 0 < sigma_min < sigma_max, got {self.sigma_min} and {self.sigma_max}")

    @cached_property
    def sigmas(self) -> Tensor:
        log_min, log_max = math.log(self.sigma_min), math.log(self.sigma_max)
        return torch.linspace(log_min, log_max, self.TABLE_SIZE, dtype=torch.float64).exp().to(torch.float32)

    def timestep(self, sigma: Tensor) -> Tensor:
        return 0.25 * sigma.log()

    def sigma(self, timestep: Tensor) -> Tensor:
        return (timestep / 0.25).exp()

    def denoised(self, x: Tensor, sigma: Tensor, model_output: Tensor) -> Tensor:
        return _x0_from_v(x, _per_sample(sigma, x), model_output)

    def percent_to_sigma(self, percent: float) -> float:
        if percent <= 0.0:
            return math.inf
        if percent >= 1.0:
            return 0.0
        log_min, log_max = math.log(self.sigma_min), math.log(self.sigma_max)
        return math.exp(log_min + (1.0 - percent) * (log_max - log_min))


@dataclass(frozen=True)
class ZeroSnrSampling(ModelSampling):
    """A DDPM-discrete model whose schedule may end at zero SNR (CogVideoX: ``CogVideoXDDIMScheduler``'s
    ``snr_shift_scale`` and ``rescale_betas_zero_snr``), in a flow-like state space that keeps that end finite.

    The scheduler's cumulative products ``abar_t`` (``1 - beta`` products, SNR divided by ``snr_shift_scale``, then
    rescaled to ``abar_999 = 0`` when ``zero_terminal_snr``) give the VP state ``sqrt(abar) x0 + sqrt(1 - abar) noise``.
    Samplers walk that state divided by ``sqrt(abar) + sqrt(1 - abar)``: ``x = (1 - sigma) x0 + sigma * noise`` with
    ``sigma = sqrt(1 - abar) / (sqrt(abar) + sqrt(1 - abar))``, so pure noise is ``sigma = 1`` (not the
    variance-exploding state's infinity) and Euler, which integrates ``dx/dsigma = (x - x0) / sigma`` exactly as
    for rectified flow, takes the DDIM (eta 0) step on the scheduler's timesteps. The network is fed the VP state
    and called with the fractional index of ``sigma`` in the table; it predicts ``v`` (``v_prediction``) or the
    noise (``epsilon``, which cannot recover the data at zero SNR and is refused there).
    """

    beta_start: float = 0.00085
    beta_end: float = 0.012
    schedule: str = "scaled_linear"
    steps: int = 1000
    prediction: str = "v_prediction"
    snr_shift_scale: float = 1.0
    zero_terminal_snr: bool = True

    def __post_init__(self) -> None:
        _check_discrete(self)
        name = type(self).__name__
        if not (math.isfinite(self.snr_shift_scale) and self.snr_shift_scale > 0):
            raise ValueError(f"{name}: snr_shift_scale must be a positive number, got {self.snr_shift_scale}")
        if self.zero_terminal_snr and self.prediction == "epsilon":
            raise ValueError(f"{name}: an epsilon-predicting model cannot denoise at zero terminal SNR")

    @cached_property
    def alphas_cumprod(self) -> Tensor:
        """``abar_t`` for ``t = 0 .. steps - 1`` (float64), computed as ``CogVideoXDDIMScheduler`` does."""
        from diffusers.schedulers.scheduling_ddim_cogvideox import rescale_zero_terminal_snr

        betas = _betas(self, torch.float32)  # the scheduler's linear betas are float32
        alphas_cumprod = torch.cumprod(1.0 - betas, dim=0).double()
        shift = self.snr_shift_scale
        alphas_cumprod = alphas_cumprod / (shift + (1.0 - shift) * alphas_cumprod)
        return rescale_zero_terminal_snr(alphas_cumprod) if self.zero_terminal_snr else alphas_cumprod

    @cached_property
    def sigmas(self) -> Tensor:
        signal, noise = self.alphas_cumprod.sqrt(), (1.0 - self.alphas_cumprod).sqrt()
        return (noise / (signal + noise)).to(torch.float32)

    @cached_property
    def _log_sigmas(self) -> Tensor:
        return self.sigmas.double().log()

    def timestep(self, sigma: Tensor) -> Tensor:
        return _table_index(self._log_sigmas, sigma)

    def sigma(self, timestep: Tensor) -> Tensor:
        return _table_sigma(self._log_sigmas, timestep)

    def alpha(self, sigma: Tensor) -> Tensor:
        return 1.0 - sigma

    def noise_scaling(self, sigma: Tensor, noise: Tensor, latent: Tensor) -> Tensor:
        sigma = _per_sample(sigma, latent)
        return sigma * noise + (1.0 - sigma) * latent

    def inverse_noise_scaling(self, sigma: Tensor, latent: Tensor) -> Tensor:
        """``latent / (1 - sigma)``; where ``sigma == 1`` the state holds no signal and is returned unchanged."""
        scale = 1.0 - _per_sample(sigma, latent)
        return torch.where(scale > 0, latent / torch.where(scale > 0, scale, 1.0), latent)

    def _vp_scale(self, sigma: Tensor) -> Tensor:
        """``sqrt(abar) + sqrt(1 - abar)``: the VP state over this one."""
        return ((1.0 - sigma) ** 2 + sigma**2).rsqrt()

    def denoised(self, x: Tensor, sigma: Tensor, model_output: Tensor) -> Tensor:
        sigma = _per_sample(sigma, x)
        if self.prediction == "epsilon":
            return (x - sigma * model_output) / (1.0 - sigma)
        # the scheduler's sqrt(abar) * x_vp - sqrt(1 - abar) * v, with x_vp = scale * x
        scale = self._vp_scale(sigma)
        return (1.0 - sigma) * scale**2 * x - sigma * scale * model_output

    def model_input(self, x: Tensor, sigma: Tensor) -> Tensor:
        return x * self._vp_scale(_per_sample(sigma, x))

    def percent_to_sigma(self, percent: float) -> float:
        if percent <= 0.0:
            return 1.0
        if percent >= 1.0:
            return 0.0
        return float(self.sigma(torch.tensor((1.0 - percent) * (self.steps - 1), dtype=torch.float64)))
