"""One sampling run: noise a latent, run a sampler with a guider's denoiser on the model under the memory manager
(with out-of-memory recovery), and return the raw latents.

``LATENT`` values hold raw VAE latents; the run moves them into the network's space (``LatentFormat.process_in``)
and back. With leftover noise (the last sigma above 0, as ``KSamplerAdvanced`` hands a latent from a high-noise to
a low-noise model) the state is stored through ``inverse_noise_scaling`` so that the next run's ``noise_scaling``
with zero noise restores it exactly.

With a noise mask (1 = generate, 0 = keep), the kept region is put back into the state before every network call
(as the family's adapter wants it: noised to the step's sigma, or clean for per-token-timestep families) and into
every x0 estimate, and the result keeps that region's latent unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from models.accelerate.acceleration import AppliedAcceleration, accelerated_step, applied_accelerations
from models.controlnet.control_step import ControlStep, placed_controls
from models.families.base import LatentShapeError
from models.guidance import Guider
from models.memory import ModelManager
from models.noise import Noise
from models.noise_mask import latent_noise_mask
from models.oom import run_with_oom_recovery
from models.sampling.samplers import Sampler

__all__ = ["SamplingResult", "StepListener", "sample_latent"]

StepListener = Callable[[int, int, torch.Tensor], None]
"""Called after each step with (steps done, total steps, the step's raw x0 estimate ``[B, C, T, H, W]``)."""


@dataclass(frozen=True)
class SamplingResult:
    """The sampled raw latent and the last step's x0 estimate (``SamplerCustom``'s ``denoised_output``)."""

    samples: torch.Tensor
    denoised: torch.Tensor


def sample_latent(
    manager: ModelManager,
    guider: Guider,
    sampler: Sampler,
    sigmas: torch.Tensor,
    latent_image: torch.Tensor,
    noise: Noise,
    on_step: StepListener | None = None,
    noise_mask: torch.Tensor | None = None,
) -> SamplingResult:
    """Sample ``latent_image`` (raw, ``[B, C, T, H, W]``) along ``sigmas`` with ``sampler`` and ``guider``; only
    where ``noise_mask`` (any form ``latent_noise_mask`` takes) is 1, when given.

    Raises ``ValueError`` (a ``LatentShapeError`` for shapes) naming what does not fit before any step, and
    ``ModelOutOfMemoryError`` when the model does not fit even after freeing memory and stepping the policy down.
    """
    model = guider.model
    fmt = model.adapter.latent_format
    fmt.check(latent_image, "latent_image")
    guider.check(latent_image)
    if sigmas.dim() != 1:
        raise ValueError(f"sigmas must be a 1-D list of noise levels, got shape {tuple(sigmas.shape)}")
    mask = None
    if noise_mask is not None:
        try:
            mask = latent_noise_mask(noise_mask, latent_image.shape, fmt)
        except LatentShapeError as exc:
            raise LatentShapeError(f"latent_image: {exc}") from exc
    if len(sigmas) < 2:  # nothing to do (denoise 0, or an empty split)
        return SamplingResult(latent_image.clone(), latent_image.clone())
    start_noise, generator = noise.draw(latent_image)
    device = manager.compute_device
    sigmas = sigmas.to(device, torch.float32)
    start_noise = start_noise.to(device)
    clean = fmt.process_in(latent_image.to(device, torch.float32))
    x = model.sampling.noise_scaling(sigmas[0], start_noise, clean)
    last_denoised = [clean]
    if mask is not None:
        mask = mask.to(device)

    def step_done(step: int, total: int, _x: torch.Tensor, denoised: torch.Tensor) -> None:
        last_denoised[0] = denoised
        if on_step is not None:
            on_step(step + 1, total, fmt.process_out(denoised))

    def denoiser(
        network: torch.nn.Module, controls: ControlStep | None, accelerations: list[AppliedAcceleration]
    ) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        def denoise(state: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
            with accelerated_step(accelerations, float(sigma.reshape(-1)[0])):
                if mask is None:
                    return guider.denoise(network, state, sigma, controls=controls)
                known = model.adapter.known_state(model.sampling, sigma, start_noise, clean)
                denoised = guider.denoise(network, state * mask + known * (1.0 - mask), sigma, mask, controls)
                return denoised * mask + clean * (1.0 - mask)

        return denoise

    work = model.adapter.work_estimate(latent_image, guider.streams)
    with placed_controls(manager, model.adapter, model.sampling, guider.entries(), latent_image) as controls:

        def run(network: torch.nn.Module) -> torch.Tensor:
            description = model.adapter.describe()
            with applied_accelerations(network, model.accelerations, model.sampling, description) as accelerations:
                return sampler.sample(
                    denoiser(network, controls, accelerations),
                    x,
                    sigmas,
                    model.sampling,
                    generator=generator,
                    callback=step_done,
                )

        out = run_with_oom_recovery(manager, model.handle, run, work, policy=model.offload)
    samples = fmt.process_out(model.sampling.inverse_noise_scaling(sigmas[-1], out)).cpu()
    if mask is not None:  # the kept region exactly as given (not through the normalisation and back)
        keep = mask.cpu() == 0
        samples = torch.where(keep, latent_image, samples)
    return SamplingResult(samples, fmt.process_out(last_denoised[0]).cpu())
