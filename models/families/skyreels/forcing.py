"""Diffusion-forcing sampling of SkyReels-V2 models, as ``SkyReelsV2DiffusionForcingPipeline`` samples: every latent
frame has its own timestep (``forcing_schedule``), the network sees them all at once, and each frame is advanced by
its own UniPC solver; long videos are made in overlapping chunks, each conditioned on the end of the video so far.

The per-frame solver is diffusers' ``UniPCMultistepScheduler`` object, one per frame, as the pipeline steps them:
diffusion forcing needs a stepwise solver whose multistep history belongs to one frame and advances only when that
frame is updated, while the network call is shared by all frames. Reelgraph's samplers are whole-schedule loops
that call the denoiser themselves, so they cannot be interleaved frame by frame; the scheduler object is exactly the
stepwise form, and using it keeps the solver identical to the pipeline's (order 2, bh2, lower order at the end).

Image-to-video, as ``SkyReelsV2DiffusionForcingImageToVideoPipeline``: the start latent (the VAE-encoded start image,
or frames of a video to continue) replaces the first frames of the first chunk's noise and stays clean (noised by
``addnoise_condition`` like any prefix), and is part of the video made; the end latent is appended after the last
frame, clean, seen by the network but never updated, and left out of the result. Later chunks repeat the end of the
video so far as in text-to-video.

Noise: each chunk's starting noise is drawn in turn from ``torch.Generator().manual_seed(seed)`` on the CPU (as the
pipeline draws it from a CPU generator); the noise ``addnoise_condition`` puts on the prefix frames comes from a
second generator with the same seed (the pipeline draws it from torch's global generator).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import torch

from models.diffusion_model import DiffusionModel
from models.families.base import LatentFormat, LatentShapeError, batched
from models.families.skyreels.adapter import DEFAULT_FPS, SkyReelsAdapter
from models.families.skyreels.forcing_schedule import (
    Chunk,
    ForcingSchedule,
    chunk_plan,
    forcing_schedule,
    frame_timesteps,
)
from models.guidance import Conditioning, Guider, with_extras
from models.memory import ModelManager
from models.oom import run_with_oom_recovery

__all__ = ["ForcingSettings", "ProgressListener", "sample_diffusion_forcing"]

ProgressListener = Callable[[int, int, torch.Tensor], None]
"""Called after each iteration with (iterations done, total, the raw latent of the chunk being made)."""
ADDNOISE_SCALE = 0.001
"""``addnoise_condition`` is a timestep; the prefix is mixed with that many thousandths of noise."""


@dataclass(frozen=True)
class ForcingSettings:
    """The sampling's settings; frame counts are latent frames.

    Args:
        steps: solver steps per frame.
        shift: the flow shift of the timestep schedule.
        cfg: the guidance scale (1: no negative pass).
        base_frames: latent frames per chunk of a long video.
        overlap: latent frames each chunk repeats from the video so far (None: the whole video in one pass).
        ar_step: how many steps each causal block stays behind the one before it (0: synchronous).
        causal_block_size: frames per causal block (attention sees only its own and earlier blocks when above 1).
        addnoise_condition: noise put on the prefix frames, as a timestep (0: none; about 20 smooths long videos).
        fps: the frame rate, for models with an fps embedding.
    """

    steps: int
    shift: float
    cfg: float
    base_frames: int
    overlap: int | None = None
    ar_step: int = 0
    causal_block_size: int = 1
    addnoise_condition: float = 0.0
    fps: int = DEFAULT_FPS


def sample_diffusion_forcing(
    manager: ModelManager,
    model: DiffusionModel,
    positive: Conditioning,
    negative: Conditioning,
    latent: torch.Tensor,
    seed: int,
    settings: ForcingSettings,
    on_progress: ProgressListener | None = None,
    *,
    start: torch.Tensor | None = None,
    end: torch.Tensor | None = None,
) -> torch.Tensor:
    """The raw latent of a video shaped like ``latent`` (``[B, C, T, H, W]``; its values are not used), sampled by
    diffusion forcing, beginning with the raw latent frames ``start`` and leading to ``end`` when given. Raises
    ``ValueError`` naming what does not fit before any step."""
    adapter = model.adapter
    if not isinstance(adapter, SkyReelsAdapter):
        raise ValueError(
            f"model: diffusion forcing needs a SkyReels-V2 model (a diffusers SkyReels-V2 folder or a single file with "
            f"the fps embedding); {model.name} is {adapter.describe()}"
        )
    if model.accelerations:
        names = ", ".join(acceleration.describe() for acceleration in model.accelerations)
        raise ValueError(f"model: {names}: the diffusion-forcing sampler takes no accelerator yet")
    fmt = adapter.latent_format
    fmt.check(latent, "latent_image")
    fps = {"fps": settings.fps}
    guider = Guider(model, with_extras(positive, "positive", fps), with_extras(negative, "negative", fps), settings.cfg)
    guider.check(latent)
    start_frames = _clean_frames(start, "start_latent", latent, fmt)
    end_frames = _clean_frames(end, "end_latent", latent, fmt)
    chunks = _chunks(latent.shape[2], settings, start_frames, end_frames)
    schedules = [_schedule(chunk, settings) for chunk in chunks]
    total = sum(schedule.iterations for schedule in schedules)
    timesteps = _solver(settings).timesteps
    device = manager.compute_device

    def run(network: torch.nn.Module) -> torch.Tensor:
        noise = torch.Generator().manual_seed(seed)
        condition_noise = torch.Generator().manual_seed(seed)
        video: torch.Tensor | None = None
        done = 0
        with _causal_blocks(network, settings.causal_block_size):
            for chunk, schedule in zip(chunks, schedules, strict=True):
                shape = (latent.shape[0], latent.shape[1], chunk.made, *latent.shape[3:])
                x = torch.randn(shape, generator=noise, dtype=torch.float32).to(device)
                if chunk.prefix:
                    prefix = start_frames if video is None else video[:, :, chunk.source : chunk.source + chunk.prefix]
                    assert prefix is not None
                    x[:, :, : chunk.prefix] = prefix.to(device)
                if chunk.end:
                    assert end_frames is not None
                    x = torch.cat([x, end_frames.to(device)], dim=2)
                solvers = [_solver(settings, device) for _ in range(chunk.frames)]
                for row in range(schedule.iterations):
                    t = frame_timesteps(schedule.progress[row], timesteps)
                    x_in, t_in = _conditioned_prefix(x, t, chunk.prefix, settings.addnoise_condition, condition_noise)
                    prediction = guider.prediction(network, x_in, t_in.to(device))
                    for frame in schedule.update[row].nonzero().flatten().tolist():
                        x[:, :, frame] = solvers[frame].step(
                            prediction[:, :, frame], t[frame], x[:, :, frame], return_dict=False
                        )[0]
                    done += 1
                    if on_progress is not None:
                        on_progress(done, total, fmt.process_out(x[:, :, : chunk.made]))
                made = x[:, :, chunk.keep_from : chunk.made]
                video = made if video is None else torch.cat([video, made], dim=2)
        assert video is not None
        return video

    largest = max(chunks, key=lambda chunk: chunk.frames)
    work = adapter.work_estimate(latent[:, :, :1].expand(-1, -1, largest.frames, -1, -1), guider.streams)
    out = run_with_oom_recovery(manager, model.handle, run, work, policy=model.offload)
    return fmt.process_out(out).cpu()


def _clean_frames(
    frames: torch.Tensor | None, name: str, latent: torch.Tensor, fmt: LatentFormat
) -> torch.Tensor | None:
    """The raw latent frames ``frames`` (input ``name``) in the network's state space, batched to ``latent``'s;
    ``LatentShapeError`` naming the input when they do not fit it."""
    if frames is None:
        return None
    fmt.check(frames, name)
    if frames.shape[3:] != latent.shape[3:]:
        raise LatentShapeError(
            f"{name} is {_size(frames)} latent pixels but latent_image is {_size(latent)}: encode an image of the "
            "video's width and height (scale it first)"
        )
    if frames.shape[0] not in (1, latent.shape[0]):
        raise LatentShapeError(f"{name} has a batch of {frames.shape[0]}; latent_image has {latent.shape[0]}")
    return batched(fmt.process_in(frames.float()), latent)


def _chunks(
    frames: int, settings: ForcingSettings, start: torch.Tensor | None, end: torch.Tensor | None
) -> tuple[Chunk, ...]:
    """The chunk plan with the start and end frames (the end ones after the video's single chunk); ``ValueError``
    naming the input they do not fit."""
    block = settings.causal_block_size
    ready = 0 if start is None else start.shape[2]
    chunks = chunk_plan(frames, settings.base_frames, settings.overlap, block, ready)
    if ready and (ready >= chunks[0].frames or ready % block):
        raise LatentShapeError(
            f"start_latent has {ready} latent frames; the first chunk has {chunks[0].frames} and its clean start must "
            f"be fewer, and a whole number of causal blocks of {block} (use causal_block_size 1 with one image)"
        )
    if end is None:
        return chunks
    if len(chunks) > 1:
        raise ValueError(
            f"end_latent: the video is made in {len(chunks)} chunks (its length is above base_num_frames, with "
            "overlap_history); an end image needs the whole video in one pass"
        )
    after = end.shape[2]
    if (frames + after) % block:
        raise LatentShapeError(
            f"end_latent: {frames} latent frames and {after} end frames are not a whole number of causal blocks of "
            f"{block}"
        )
    return (replace(chunks[0], frames=frames + after, end=after),)


def _size(latent: torch.Tensor) -> str:
    return f"{latent.shape[-1]}x{latent.shape[-2]}"


def _schedule(chunk: Chunk, settings: ForcingSettings) -> ForcingSchedule:
    try:
        return forcing_schedule(
            chunk.frames, settings.steps, settings.ar_step, settings.causal_block_size, chunk.prefix, chunk.end
        )
    except ValueError as exc:
        raise LatentShapeError(
            f"causal_block_size: {exc} (the chunk lengths in latent frames must be multiples of it)"
        ) from exc


def _solver(settings: ForcingSettings, device: torch.device | None = None) -> Any:
    """One frame's UniPC solver over the flow-matching timesteps with the run's shift."""
    from diffusers import UniPCMultistepScheduler

    solver = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=settings.shift)
    solver.set_timesteps(settings.steps, device=device)
    return solver


def _conditioned_prefix(
    x: torch.Tensor, t: torch.Tensor, prefix: int, addnoise: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """The network input and ``[B, F]`` timesteps: with ``addnoise`` above 0 the clean prefix frames slightly noised
    and shown at that timestep."""
    x_in = x.clone()
    t_in = t.expand(x.shape[0], -1).clone()
    if addnoise > 0 and prefix:
        factor = ADDNOISE_SCALE * addnoise
        part = x_in[:, :, :prefix]
        noise = torch.randn(part.shape, generator=generator, dtype=part.dtype).to(part.device)
        x_in[:, :, :prefix] = part * (1.0 - factor) + noise * factor
        t_in[:, :prefix] = addnoise
    return x_in, t_in


@contextmanager
def _causal_blocks(network: torch.nn.Module, size: int) -> Iterator[None]:
    """The network with block-causal attention over ``size`` frames for the run (its setting restored after)."""
    config: Any = network.config  # type: ignore[union-attr]
    previous = config.num_frame_per_block
    network.register_to_config(num_frame_per_block=size)  # type: ignore[operator]
    try:
        yield
    finally:
        network.register_to_config(num_frame_per_block=previous)  # type: ignore[operator]
