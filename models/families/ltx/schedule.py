"""LTX-Video's resolution-dependent flow shift and the sigmas of ComfyUI's ``LTXVScheduler``.

The shift grows linearly in the token count (``LTXPipeline``'s ``calculate_shift`` with the LTX-Video scheduler
config: ``base_shift`` at 1024 tokens, ``max_shift`` at 4096) and is applied as an exponential time shift,
``sigma' = e^mu / (e^mu + (1/sigma - 1))``, which is ``FlowSampling(shift=e^mu)``. With ``stretch`` the non-zero
sigmas are stretched so the last one equals ``terminal``: ``1 - (1 - sigma) * (1 - terminal) / (1 - sigma_last)``
(diffusers' ``shift_terminal``; ``LTXPipeline``'s scheduler config sets 0.1).
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "BASE_SHIFT",
    "BASE_TOKENS",
    "DEFAULT_TOKENS",
    "MAX_SHIFT",
    "MAX_TOKENS",
    "TERMINAL",
    "ltxv_mu",
    "ltxv_shift",
    "ltxv_sigmas",
]

BASE_SHIFT = 0.95
MAX_SHIFT = 2.05
BASE_TOKENS = 1024
MAX_TOKENS = 4096
DEFAULT_TOKENS = 4096
"""The token count assumed without a latent (``LTXVScheduler`` / ``ModelSamplingLTXV`` without ``latent``)."""
TERMINAL = 0.1
UNSTRETCHABLE = 1e-6
"""A last non-zero sigma this close to 1 (one step) is left alone: stretching it would divide by ~0."""


def ltxv_mu(tokens: int, base_shift: float = BASE_SHIFT, max_shift: float = MAX_SHIFT) -> float:
    """The exponential time-shift parameter ``mu`` for ``tokens`` latent tokens (frames x height x width)."""
    slope = (max_shift - base_shift) / (MAX_TOKENS - BASE_TOKENS)
    return tokens * slope + (base_shift - slope * BASE_TOKENS)


def ltxv_shift(tokens: int, base_shift: float = BASE_SHIFT, max_shift: float = MAX_SHIFT) -> float:
    """``e^mu``: the ``FlowSampling`` shift equal to the exponential time shift for ``tokens`` tokens
    (``ModelSamplingLTXV``)."""
    return math.exp(ltxv_mu(tokens, base_shift, max_shift))


def ltxv_sigmas(
    steps: int,
    max_shift: float = MAX_SHIFT,
    base_shift: float = BASE_SHIFT,
    stretch: bool = True,
    terminal: float = TERMINAL,
    tokens: int = DEFAULT_TOKENS,
) -> torch.Tensor:
    """``steps + 1`` float32 sigmas from 1 to 0, as ComfyUI's ``LTXVScheduler`` gives them.

    Raises ``ValueError`` for fewer than one step or a terminal outside ``[0, 1)``.
    """
    if steps < 1:
        raise ValueError(f"LTXVScheduler: steps must be at least 1, got {steps}")
    if not 0.0 <= terminal < 1.0:
        raise ValueError(f"LTXVScheduler: terminal must be in [0, 1), got {terminal}")
    sigmas = torch.linspace(1.0, 0.0, steps + 1)
    shift = math.exp(ltxv_mu(tokens, base_shift, max_shift))
    nonzero = sigmas != 0
    safe = torch.where(nonzero, sigmas, torch.ones_like(sigmas))
    sigmas = torch.where(nonzero, shift / (shift + (1.0 / safe - 1.0)), torch.zeros_like(sigmas))
    last = int(nonzero.nonzero()[-1])
    one_minus = 1.0 - sigmas
    if stretch and float(one_minus[last]) > UNSTRETCHABLE:
        scale = (1.0 - terminal) / float(one_minus[last])
        sigmas = torch.where(nonzero, 1.0 - one_minus * scale, sigmas)
    return sigmas.to(torch.float32)
