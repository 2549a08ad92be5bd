"""The schedule of diffusion forcing (SkyReels-V2): which denoising step each latent frame is at in each iteration,
and how a long video is cut into overlapping chunks. Pure bookkeeping, no network.

Each causal block of frames has a progress: 0 before it starts, ``k`` once it has taken step ``k`` of ``steps``,
``steps + 1`` when it is clean (frames given as a prefix start there). In every iteration the first block, and any
block whose predecessor had finished, advances by one; any other block stays ``ar_step`` behind the one before it
(0: all blocks move together, the synchronous mode). This is the timestep matrix of diffusers'
``SkyReelsV2DiffusionForcingPipeline.generate_timestep_matrix`` as that pipeline uses it (its window always spans
the whole chunk). Clean frames appended at the end (the end image of image-to-video) count in the schedule as frames
being made and are then shown clean and never updated, as ``SkyReelsV2DiffusionForcingImageToVideoPipeline`` does.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["Chunk", "ForcingSchedule", "chunk_plan", "forcing_schedule", "frame_timesteps"]

NOT_STARTED_TIMESTEP = 999
"""The timestep frames that have not started are shown at (pure noise)."""


@dataclass(frozen=True)
class ForcingSchedule:
    """Per iteration (rows) and latent frame (columns): ``progress`` (see the module docstring) and ``update``,
    whether the frame takes a solver step in that iteration."""

    progress: torch.Tensor
    update: torch.Tensor

    @property
    def iterations(self) -> int:
        return int(self.progress.shape[0])


@dataclass(frozen=True)
class Chunk:
    """One pass of a (long) video: ``frames`` latent frames, of which the first ``prefix`` are clean frames (the
    start latent in the first chunk; in later ones taken from the end of the video so far, ``source`` being the index
    they start at in it) and the last ``end`` clean frames appended after the video (the end latent); frames from
    ``keep_from`` on, up to the end frames, are appended to the video."""

    frames: int
    prefix: int = 0
    source: int = 0
    keep_from: int = 0
    end: int = 0

    @property
    def made(self) -> int:
        """The frames of the chunk that belong to the video (all but the end frames)."""
        return self.frames - self.end


def forcing_schedule(
    frames: int, steps: int, ar_step: int, block_size: int, ready: int = 0, end: int = 0
) -> ForcingSchedule:
    """The schedule of a chunk of ``frames`` latent frames (a multiple of ``block_size``) over ``steps`` steps, the
    first ``ready`` frames clean from the start, the last ``end`` frames shown clean throughout."""
    if frames % block_size:
        raise ValueError(f"{frames} latent frames are not a whole number of causal blocks of {block_size}")
    blocks = frames // block_size
    clean = steps + 1
    row = torch.zeros(blocks, dtype=torch.long)
    row[: ready // block_size] = clean
    rows: list[torch.Tensor] = []
    updates: list[torch.Tensor] = []
    while bool((row < steps).any()):
        new = torch.empty_like(row)
        for block in range(blocks):
            leads = block == 0 or row[block - 1] >= steps
            new[block] = row[block] + 1 if leads else new[block - 1] - ar_step
        new = new.clamp(0, clean)
        updates.append((new != row) & (new != clean))
        rows.append(new)
        row = new
    progress = torch.stack(rows).repeat_interleave(block_size, dim=1)
    update = torch.stack(updates).repeat_interleave(block_size, dim=1)
    if end:
        progress[:, frames - end :] = clean
        update[:, frames - end :] = False
    return ForcingSchedule(progress, update)


def frame_timesteps(progress: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
    """The timestep of each frame at ``progress``: ``NOT_STARTED_TIMESTEP`` before its first step, ``timesteps[k -
    1]`` at step ``k``, 0 when clean (integers, as the schedule's steps are)."""
    template = torch.cat([torch.tensor([NOT_STARTED_TIMESTEP]), timesteps.detach().cpu().long(), torch.tensor([0])])
    return template[progress]


def chunk_plan(
    frames: int, base_frames: int, overlap: int | None, block_size: int, start: int = 0
) -> tuple[Chunk, ...]:
    """The passes over a video of ``frames`` latent frames: one when ``overlap`` is None or the video fits in
    ``base_frames``; else chunks of ``base_frames`` each starting with the last ``overlap`` frames of the video so far
    (cut down to whole causal blocks), as ``SkyReelsV2DiffusionForcingPipeline`` plans a long video. The first chunk
    starts with ``start`` given clean frames."""
    if overlap is None or frames <= base_frames:
        return (Chunk(frames, prefix=start),)
    if not 0 < overlap < base_frames:
        raise ValueError(
            f"an overlap of {overlap} latent frames must be at least 1 and below the chunk's {base_frames}"
        )
    stride = base_frames - overlap
    count = 1 + (frames - base_frames - 1) // stride + 1
    prefix = overlap - overlap % block_size
    chunks = [Chunk(base_frames, prefix=start)]
    video_frames = base_frames
    for index in range(1, count):
        remaining = frames - (index * stride + overlap)
        chunk_frames = min(remaining + overlap, base_frames)
        chunks.append(Chunk(chunk_frames, prefix, video_frames - overlap, overlap))
        video_frames += chunk_frames - overlap
    return tuple(chunks)
