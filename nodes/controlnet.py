"""ControlNet nodes with ComfyUI's sockets: ``ControlNetLoader`` loads a Stable Diffusion 1.5 ControlNet file (the
original ``control_v11*_sd15_*`` layout or diffusers') into the memory manager as ``CONTROL_NET``;
``ControlNetApplyAdvanced`` (and the older ``ControlNetApply``) set it on conditioning with its control frames,
strength and start/end percent. Applying another ControlNet to conditioning that has one chains them: both act.

On video, the ControlNet runs on every frame with that frame's control picture (frames as the batch, as diffusers'
``AnimateDiffControlNetPipeline``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from graph.context import current_context
from models.controlnet.application import CONTROL, ControlApplication
from models.controlnet.loading import ControlNet, load_controlnet
from models.errors import ModelLoadError
from models.guidance import Conditioning, conditioning_entries
from models.memory import MODELS_SERVICE, ModelManager
from nodes.model_files import ModelFolderBound, resolve_model_file

CONTROLNET_FOLDER = "controlnet"
CONTROL_NET = "CONTROL_NET"


def _manager() -> ModelManager:
    return current_context().service(MODELS_SERVICE)


class ControlNetLoader(ModelFolderBound):
    """A Stable Diffusion 1.5 ControlNet file (canny, depth, openpose, lineart, tile, ...)."""

    FUNCTION = "load_controlnet"
    CATEGORY = "loaders"
    RETURN_TYPES = (CONTROL_NET,)
    OUTPUT_TOOLTIPS = ("The ControlNet, for the Apply ControlNet nodes.",)
    DESCRIPTION = (
        f"Loads a Stable Diffusion 1.5 ControlNet from the {CONTROLNET_FOLDER} folder (.safetensors or .pth, in the "
        "original control_v11 layout or diffusers'); its configuration is read from its weights. SDXL ControlNets and "
        "T2I-Adapters are not supported yet."
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"control_net_name": cls.model_input(CONTROLNET_FOLDER, "The ControlNet file.")}}

    def load_controlnet(self, control_net_name: str) -> tuple[ControlNet]:
        node = "ControlNetLoader"
        try:
            path = resolve_model_file(CONTROLNET_FOLDER, control_net_name, "control_net_name")
        except ValueError as error:
            raise ValueError(f"{node}: {error}") from error
        try:
            return (load_controlnet(_manager(), path),)
        except ModelLoadError as error:
            raise ValueError(f"{node}: control_net_name: {error}") from error


def _strength_input() -> tuple[str, dict[str, Any]]:
    return ("FLOAT", {"default": 1.0, "min": 0.0, "max": 10.0, "step": 0.01, "tooltip": "The scale of its effect."})


def _applied(
    conditioning: Conditioning, name: str, make: Callable[[ControlApplication | None], ControlApplication]
) -> list[list[Any]]:
    """A copy of ``conditioning`` whose entries carry the application ``make`` gives for the control they had."""
    out = []
    for tensor, extras in conditioning_entries(conditioning, name):
        previous = extras.get(CONTROL)
        if previous is not None and not isinstance(previous, ControlApplication):
            raise ValueError(f"{name} carries a {CONTROL!r} extra that is not an applied ControlNet")
        out.append([tensor, {**extras, CONTROL: make(previous)}])
    return out


def _application(
    node: str, control_net: ControlNet, image: torch.Tensor, strength: float, start: float, end: float
) -> Callable[[ControlApplication | None], ControlApplication]:
    if not isinstance(control_net, ControlNet):
        raise ValueError(f"{node}: control_net: expected a CONTROL_NET from ControlNetLoader, got {type(control_net)}")
    if not isinstance(image, torch.Tensor) or image.dim() != 4 or image.shape[-1] != 3 or image.shape[0] < 1:
        shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise ValueError(f"{node}: image: expected IMAGE frames [N, H, W, 3], got {shape}")
    if not 0.0 <= start <= end <= 1.0:
        raise ValueError(f"{node}: start_percent ({start}) must not be above end_percent ({end})")
    frames = image.detach().to("cpu", torch.float32)
    made: dict[int, ControlApplication] = {}

    def make(previous: ControlApplication | None) -> ControlApplication:
        """One application per distinct previous control, shared by the entries that had it (as ComfyUI shares
        them), so that positive and negative run the same control."""
        if id(previous) not in made:
            made[id(previous)] = ControlApplication(control_net, frames, strength, start, end, node, previous)
        return made[id(previous)]

    return make


class ControlNetApplyAdvanced:
    """Drive sampling with a ControlNet and its control frames, on both positive and negative conditioning."""

    FUNCTION = "apply_controlnet"
    CATEGORY = "conditioning/controlnet"
    RETURN_TYPES = ("CONDITIONING", "CONDITIONING")
    RETURN_NAMES = ("positive", "negative")
    DESCRIPTION = (
        "Applies a ControlNet with its control frames (one picture for every frame, or one per latent frame) to the "
        "positive and negative conditioning, acting from start_percent to end_percent of the sampling. Control "
        "frames of another size than the video are resized to it (bilinear, centre crop). Applied again, "
        "ControlNets chain and all act. Strength 0 leaves the conditioning as it is."
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "positive": ("CONDITIONING",),
                "negative": ("CONDITIONING",),
                "control_net": (CONTROL_NET,),
                "image": ("IMAGE", {"tooltip": "The control frames (edges, depth, pose ...)."}),
                "strength": _strength_input(),
                "start_percent": _percent_input(0.0, "Where in the sampling it starts acting."),
                "end_percent": _percent_input(1.0, "Where in the sampling it stops acting."),
            },
            "optional": {"vae": ("VAE", {"tooltip": "Not needed by Stable Diffusion 1.5 ControlNets."})},
        }

    def apply_controlnet(
        self,
        positive: Conditioning,
        negative: Conditioning,
        control_net: ControlNet,
        image: torch.Tensor,
        strength: float,
        start_percent: float,
        end_percent: float,
        vae: Any = None,
    ) -> tuple[list[list[Any]], list[list[Any]]]:
        node = "ControlNetApplyAdvanced"
        make = _application(node, control_net, image, strength, start_percent, end_percent)
        if strength == 0:
            return [list(item) for item in positive], [list(item) for item in negative]
        return _applied(positive, "positive", make), _applied(negative, "negative", make)


class ControlNetApply:
    """ComfyUI's older apply node: one conditioning, the whole sampling."""

    FUNCTION = "apply_controlnet"
    CATEGORY = "conditioning/controlnet"
    RETURN_TYPES = ("CONDITIONING",)
    DEPRECATED = True
    DESCRIPTION = (
        "Applies a ControlNet with its control frames to one conditioning for the whole sampling (use Apply "
        "ControlNet with VAE for positive and negative and a start/end percent)."
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "conditioning": ("CONDITIONING",),
                "control_net": (CONTROL_NET,),
                "image": ("IMAGE", {"tooltip": "The control frames (edges, depth, pose ...)."}),
                "strength": _strength_input(),
            }
        }

    def apply_controlnet(
        self, conditioning: Conditioning, control_net: ControlNet, image: torch.Tensor, strength: float
    ) -> tuple[list[list[Any]]]:
        make = _application("ControlNetApply", control_net, image, strength, 0.0, 1.0)
        if strength == 0:
            return ([list(item) for item in conditioning],)
        return (_applied(conditioning, "conditioning", make),)


def _percent_input(default: float, tooltip: str) -> tuple[str, dict[str, Any]]:
    return ("FLOAT", {"default": default, "min": 0.0, "max": 1.0, "step": 0.001, "tooltip": tooltip})


NODE_CLASS_MAPPINGS = {
    "ControlNetLoader": ControlNetLoader,
    "ControlNetApplyAdvanced": ControlNetApplyAdvanced,
    "ControlNetApply": ControlNetApply,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "ControlNetLoader": "Load ControlNet Model",
    "ControlNetApplyAdvanced": "Apply ControlNet",
    "ControlNetApply": "Apply ControlNet (OLD)",
}
