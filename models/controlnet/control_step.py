"""Running the ControlNets of a sampling run: each step, every conditioning entry's active controls (``CONTROL``
extra; see ``models.controlnet.application``) are run on the step's network input, and the sum of their scaled
residuals is set on the entry (``CONTROL_RESIDUALS``) for the family adapter to add to its UNet.

A control acts while the step's sigma lies between the sigmas its start and end percents give (ComfyUI's window:
``percent_to_sigma`` of the model's sampling), so 0 to 1 is every step. Its frames are fitted once per run: one
picture drives every frame, otherwise there must be one per latent frame; pictures of another size are resized to
the latent's pixel size (bilinear, centre-cropped to its aspect).

The ControlNets are placed on the device for the whole run, before the diffusion model, so that the model's memory
plan counts them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
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
    frames = samples.shape[2]
    for application in controls_of([entry]):
        spec = application.control_net.spec
        mismatch = adapter.controlnet_mismatch(spec.widths, spec.text_dim)
        if mismatch is not None:
            raise ValueError(f"{application.node}: control_net: {application.control_net.describe()}: {mismatch}")
        given = application.image.shape[0]
        if given not in (1, frames):
            raise LatentShapeError(
                f"{application.node}: image: {given} control frames for a latent of {frames} frames: give one "
                f"picture for every frame or one per frame"
            )


@dataclass(frozen=True)
class _PlacedControl:
    """One control application ready to run: its module on the device, its frames fitted, its sigma window."""

    application: ControlApplication
    module: torch.nn.Module
    hint: torch.Tensor
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
        arguments = self._adapter.controlnet_arguments(x, timestep, entry, control_net.compute_dtype)
        hint = control.hint.repeat(x.shape[0], 1, 1, 1)  # frames as batch, per latent sample
        down, middle = control.module(
            **arguments,
            controlnet_cond=hint,
            conditioning_scale=control.application.strength,
            return_dict=False,
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
    frames, height, width = samples.shape[2:]
    ratio = adapter.latent_format.spatial_ratio
    with ExitStack() as stack:
        modules = {}
        placed = []
        for application in applications:
            handle = application.control_net.handle
            if handle.key not in modules:
                modules[handle.key] = stack.enter_context(handle.use())
            hint = _fitted_hint(application, frames, height * ratio, width * ratio)
            placed.append(
                _PlacedControl(
                    application,
                    modules[handle.key],
                    hint.to(manager.compute_device, application.control_net.compute_dtype),
                    sampling.percent_to_sigma(application.start_percent),
                    sampling.percent_to_sigma(application.end_percent),
                )
            )
        yield ControlStep(adapter, placed)


def _fitted_hint(application: ControlApplication, frames: int, height: int, width: int) -> torch.Tensor:
    """The application's frames as ``[frames, 3, height, width]`` float32: resized when needed, one picture
    repeated for every frame."""
    image = application.image.to(torch.float32)
    if image.shape[1:3] != (height, width):
        image = resize_images(image, width, height, "bilinear", "center")
    return image.movedim(-1, 1).expand(frames, -1, -1, -1).contiguous() if image.shape[0] == 1 else image.movedim(-1, 1)
