"""Running the ControlNets of a sampling run: each step, every conditioning entry's active controls (``CONTROL``
extra; see ``models.controlnet.application``) are run on the step's network input, and the sum of their scaled
residuals is set on the entry (``CONTROL_RESIDUALS``) for the family adapter to add to its UNet.

A control acts while the step's sigma lies between the sigmas its start and end percents give (ComfyUI's window:
``percent_to_sigma`` of the model's sampling), so 0 to 1 is every step. Its frames are fitted once per run: pictures
of another size are resized to the latent's pixel size (bilinear, centre-cropped to its aspect). For a ControlNet one
picture drives every frame, otherwise there must be one per latent frame. A SparseCtrl gets its pictures (or, for
the RGB one, their VAE latents) on the frames they condition, zeros elsewhere, and the mask of those frames, as
``AnimateDiffSparseControlNetPipeline`` prepares them.

The ControlNets are placed on the device for the whole run, before the diffusion model, so that the model's memory
plan counts them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

import torch

from models.controlnet.application import CONTROL, CONTROL_RESIDUALS, ControlApplication, ControlResiduals
from models.families.base import ConditioningEntry, FamilyAdapter, LatentShapeError
from models.memory import ModelManager
from models.pixels import resize_images
from models.sampling.model_sampling import ModelSampling

__all__ = ["ControlStep", "EntryControls", "check_controls", "controls_of", "placed_controls"]

EntryControls = Callable[[ConditioningEntry, torch.Tensor, torch.Tensor], ConditioningEntry]
"""One step's controls: ``(entry, network input, timestep) -> entry`` with its active controls' residuals set."""


def controls_of(entries: Sequence[ConditioningEntry]) -> list[ControlApplication]:
    """The distinct control applications of ``entries``, chains included, in the order first met."""
    found: dict[int, ControlApplication] = {}
    for _, extras in entries:
        last = extras.get(CONTROL)
        if last is None:
            continue
        if not isinstance(last, ControlApplication):
            raise ValueError(
                f"the {CONTROL!r} conditioning extra holds {type(last).__name__}, not an applied ControlNet"
            )
        for application in last.chain():
            found.setdefault(id(application), application)
    return list(found.values())


def check_controls(adapter: FamilyAdapter, entry: ConditioningEntry, samples: torch.Tensor) -> None:
    """Raise ``ValueError`` naming the apply node and input when a control of ``entry`` cannot drive ``adapter``'s
    network on ``samples`` (another kind of network, other widths, a frame count that fits no frame)."""
    for application in controls_of([entry]):
        control_net = application.control_net
        mismatch = adapter.controlnet_mismatch(control_net.spec.widths, control_net.spec.text_dim, control_net.sparse)
        if mismatch is not None:
            raise ValueError(f"{application.node}: control_net: {control_net.describe()}: {mismatch}")
        if control_net.sparse:
            _check_sparse_frames(application, samples.shape[2])
            continue
        given, frames = application.image.shape[0], samples.shape[2]
        if given not in (1, frames):
            raise LatentShapeError(
                f"{application.node}: image: {given} control frames for a latent of {frames} frames: give one "
                f"picture for every frame or one per frame"
            )


def _check_sparse_frames(application: ControlApplication, frames: int) -> None:
    """A SparseCtrl's pictures must condition distinct frames of the video, which its motion modules must span."""
    limit = application.control_net.spec.max_frames
    if frames > limit:
        raise LatentShapeError(
            f"{application.node}: control_net: {application.control_net.describe()} spans at most {limit} frames; "
            f"the latent has {frames}"
        )
    given = application.image.shape[0]
    if given > frames:
        raise LatentShapeError(f"{application.node}: image: {given} pictures for a latent of {frames} frames")
    indices = application.sparse_frames(frames)
    outside = [index for index in indices if not 0 <= index < frames]
    if outside:
        raise LatentShapeError(
            f"{application.node}: frame_indices: {outside} outside the latent's frames 0..{frames - 1}"
        )
    if len(set(indices)) != len(indices):
        raise LatentShapeError(f"{application.node}: frame_indices: {list(indices)} condition a frame twice")


@dataclass(frozen=True)
class _PlacedControl:
    """One control application ready to run: its module on the device, its frames fitted, its sigma window."""

    application: ControlApplication
    module: torch.nn.Module
    inputs: Mapping[str, torch.Tensor]
    sigma_start: float
    sigma_end: float

    def acts_at(self, sigma: float) -> bool:
        return self.sigma_end <= sigma <= self.sigma_start


class ControlStep:
    """The placed controls of one sampling run."""

    def __init__(self, adapter: FamilyAdapter, placed: Sequence[_PlacedControl]) -> None:
        self._adapter = adapter
        self._placed = {id(control.application): control for control in placed}

    def at(self, sigma: float) -> EntryControls:
        """The controls of the step at ``sigma``."""
        return lambda entry, x, timestep: self.with_residuals(entry, x, timestep, sigma)

    def with_residuals(
        self, entry: ConditioningEntry, x: torch.Tensor, timestep: torch.Tensor, sigma: float
    ) -> ConditioningEntry:
        """``entry`` with the summed residuals of its controls acting at ``sigma`` on the network input ``x`` at
        ``timestep``; unchanged when none acts."""
        residuals = None
        for application in controls_of([entry]):
            control = self._placed[id(application)]
            if not control.acts_at(sigma):
                continue
            output = self._run(control, x, timestep, entry)
            residuals = output if residuals is None else residuals + output
        if residuals is None:
            return entry
        return entry[0], {**entry[1], CONTROL_RESIDUALS: residuals}

    def _run(
        self, control: _PlacedControl, x: torch.Tensor, timestep: torch.Tensor, entry: ConditioningEntry
    ) -> ControlResiduals:
        control_net = control.application.control_net
        arguments = self._adapter.controlnet_arguments(
            x, timestep, entry, control_net.compute_dtype, whole_video=control_net.sparse
        )
        batch = x.shape[0]  # the inputs hold one latent sample's
        inputs = {name: value.repeat(batch, *([1] * (value.dim() - 1))) for name, value in control.inputs.items()}
        down, middle = control.module(
            **arguments, **inputs, conditioning_scale=control.application.strength, return_dict=False
        )
        return ControlResiduals(tuple(down), middle)


@contextmanager
def placed_controls(
    manager: ModelManager,
    adapter: FamilyAdapter,
    sampling: ModelSampling,
    entries: Sequence[ConditioningEntry],
    samples: torch.Tensor,
) -> Iterator[ControlStep | None]:
    """The controls of ``entries`` placed on ``manager``'s device for a run over ``samples`` (raw latent
    ``[B, C, T, H, W]``), or None when there are none; they stay placed until the block ends."""
    applications = controls_of(entries)
    if not applications:
        yield None
        return
    with ExitStack() as stack:
        modules = {}
        placed = []
        for application in applications:
            control_net = application.control_net
            device, dtype = manager.compute_device, control_net.compute_dtype
            inputs = {
                name: value.to(device, dtype)
                for name, value in _control_inputs(manager, adapter, application, samples).items()
            }
            if control_net.handle.key not in modules:
                modules[control_net.handle.key] = stack.enter_context(control_net.handle.use())
            placed.append(
                _PlacedControl(
                    application,
                    modules[control_net.handle.key],
                    {
                        name: value.to(manager.compute_device, control_net.compute_dtype)
                        for name, value in inputs.items()
                    },
                    sampling.percent_to_sigma(application.start_percent),
                    sampling.percent_to_sigma(application.end_percent),
                )
            )
        yield ControlStep(adapter, placed)


def _control_inputs(
    manager: ModelManager, adapter: FamilyAdapter, application: ControlApplication, samples: torch.Tensor
) -> dict[str, torch.Tensor]:
    """The control inputs of one latent sample (float32, CPU): a ControlNet's ``controlnet_cond`` per frame
    ``[T, 3, H, W]``; a SparseCtrl's ``controlnet_cond`` ``[1, C, T, h, w]`` (pictures, or their latents, on the
    conditioned frames and zeros elsewhere) and ``conditioning_mask`` ``[1, 1, T, h, w]``."""
    frames, height, width = samples.shape[2:]
    ratio = adapter.latent_format.spatial_ratio
    image = application.image.to(torch.float32)
    if image.shape[1:3] != (height * ratio, width * ratio):
        image = resize_images(image, width * ratio, height * ratio, "bilinear", "center")
    if not application.control_net.sparse:
        return {"controlnet_cond": image.movedim(-1, 1).expand(frames, -1, -1, -1).contiguous()}
    vae = application.vae
    if application.control_net.spec.condition_is_latent and vae is not None:
        condition = vae.latent_format.process_in(vae.encode(manager, image))
    else:
        condition = image.permute(3, 0, 1, 2).unsqueeze(0)  # [1, 3, N, H, W]
    cond = condition.new_zeros(*condition.shape[:2], frames, *condition.shape[3:])
    mask = condition.new_zeros(1, 1, frames, *condition.shape[3:])
    indices = list(application.sparse_frames(frames))
    cond[:, :, indices] = condition
    mask[:, :, indices] = 1.0
    return {"controlnet_cond": cond, "conditioning_mask": mask}
