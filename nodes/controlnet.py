"""ControlNet nodes with ComfyUI's sockets: ``ControlNetLoader`` loads a Stable Diffusion 1.5 ControlNet file (the
original ``control_v11*_sd15_*`` layout or diffusers') into the memory manager as ``CONTROL_NET``;
``ControlNetApplyAdvanced`` (and the older ``ControlNetApply``) set it on conditioning with its control frames,
strength and start/end percent. Applying another ControlNet to conditioning that has one chains them: both act.

On video, the ControlNet runs on every frame with that frame's control picture (frames as the batch, as diffusers'
``AnimateDiffControlNetPipeline``). AnimateDiff SparseCtrl files load through the same loader; ``SparseCtrlApply``
conditions chosen frames on key pictures (as ``AnimateDiffSparseControlNetPipeline``).
"""

from __future__ import annotations

import dataclasses
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
        "original control_v11 layout or diffusers') or an AnimateDiff SparseCtrl (v3_sd15_sparsectrl_rgb / "
        "_scribble); its configuration is read from its weights. SDXL ControlNets and T2I-Adapters are not "
        "supported yet."
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


def _applied_to_both(
    positive: Conditioning,
    negative: Conditioning,
    make: Callable[[ControlApplication | None], ControlApplication],
    strength: float,
) -> tuple[list[list[Any]], list[list[Any]]]:
    """Positive and negative with the control applied; as they are (copied) at strength 0, as ComfyUI does."""
    if strength == 0:
        return [list(item) for item in positive], [list(item) for item in negative]
    return _applied(positive, "positive", make), _applied(negative, "negative", make)


def _application(
    node: str,
    control_net: ControlNet,
    image: torch.Tensor,
    strength: float,
    window: tuple[float, float] = (0.0, 1.0),
    **sparse: Any,
) -> Callable[[ControlApplication | None], ControlApplication]:
    """What applies ``control_net`` after a previous control (checked now); ``sparse``: a SparseCtrl's
    ``frame_indices`` and ``vae``."""
    if not isinstance(control_net, ControlNet):
        raise ValueError(f"{node}: control_net: expected a CONTROL_NET from ControlNetLoader, got {type(control_net)}")
    if not isinstance(image, torch.Tensor) or image.dim() != 4 or image.shape[-1] != 3 or image.shape[0] < 1:
        shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise ValueError(f"{node}: image: expected IMAGE frames [N, H, W, 3], got {shape}")
    frames = image.detach().to("cpu", torch.float32)
    first = ControlApplication(control_net, frames, strength, *window, node=node, **sparse)
    made: dict[int, ControlApplication] = {id(None): first}

    def make(previous: ControlApplication | None) -> ControlApplication:
        """One application per distinct previous control, shared by the entries that had it (as ComfyUI shares
        them), so that positive and negative run the same control."""
        if id(previous) not in made:
            made[id(previous)] = dataclasses.replace(first, previous=previous)
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
        "ControlNets chain and all act. Strength 0 leaves the conditioning as it is. A SparseCtrl gets its pictures "
        "spread evenly over the video (Apply SparseCtrl chooses the frames); the RGB one needs the VAE."
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
        sparse = {"vae": vae} if isinstance(control_net, ControlNet) and control_net.sparse else {}
        make = _application(node, control_net, image, strength, (start_percent, end_percent), **sparse)
        return _applied_to_both(positive, negative, make, strength)


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
        make = _application("ControlNetApply", control_net, image, strength)
        if strength == 0:
            return ([list(item) for item in conditioning],)
        return (_applied(conditioning, "conditioning", make),)


class SparseCtrlApply:
    """Condition chosen frames of an AnimateDiff video on key pictures with a SparseCtrl (RGB or scribble)."""

    FUNCTION = "apply_sparsectrl"
    CATEGORY = "conditioning/controlnet"
    RETURN_TYPES = ("CONDITIONING", "CONDITIONING")
    RETURN_NAMES = ("positive", "negative")
    DESCRIPTION = (
        "Applies an AnimateDiff SparseCtrl (v3_sd15_sparsectrl_rgb / _scribble, loaded with Load ControlNet Model) "
        "to the positive and negative conditioning: each picture conditions one latent frame (frame_indices, e.g. "
        "'0, 8, -1'; empty spreads them evenly from the first frame to the last) and its motion modules carry the "
        "control to the other frames. The RGB SparseCtrl takes the pictures' latents: connect the video's VAE. "
        "Pictures of another size than the video are resized to it (bilinear, centre crop)."
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "positive": ("CONDITIONING",),
                "negative": ("CONDITIONING",),
                "control_net": (CONTROL_NET, {"tooltip": "A SparseCtrl file from Load ControlNet Model."}),
                "image": ("IMAGE", {"tooltip": "The key pictures (RGB frames or scribbles), one per indexed frame."}),
                "strength": _strength_input(),
                "start_percent": _percent_input(0.0, "Where in the sampling it starts acting."),
                "end_percent": _percent_input(1.0, "Where in the sampling it stops acting."),
                "frame_indices": (
                    "STRING",
                    {"default": "", "tooltip": "Comma-separated latent frames, one per picture; empty: spread."},
                ),
            },
            "optional": {"vae": ("VAE", {"tooltip": "Needed by the RGB SparseCtrl, which takes latents."})},
        }

    def apply_sparsectrl(
        self,
        positive: Conditioning,
        negative: Conditioning,
        control_net: ControlNet,
        image: torch.Tensor,
        strength: float,
        start_percent: float,
        end_percent: float,
        frame_indices: str,
        vae: Any = None,
    ) -> tuple[list[list[Any]], list[list[Any]]]:
        node = "SparseCtrlApply"
        if isinstance(control_net, ControlNet) and not control_net.sparse:
            raise ValueError(f"{node}: control_net: {control_net.describe()} is no SparseCtrl: use Apply ControlNet")
        indices = _frame_indices(node, frame_indices)
        window = (start_percent, end_percent)
        make = _application(node, control_net, image, strength, window, frame_indices=indices, vae=vae)
        return _applied_to_both(positive, negative, make, strength)


def _frame_indices(node: str, text: str) -> tuple[int, ...] | None:
    """``"0, 8, -1"`` as ``(0, 8, -1)``; None for an empty text."""
    parts = [part.strip() for part in text.replace(";", ",").split(",") if part.strip()]
    if not parts:
        return None
    try:
        return tuple(int(part) for part in parts)
    except ValueError as error:
        raise ValueError(f"{node}: frame_indices: {text!r} is not a comma-separated list of frame numbers") from error


def _percent_input(default: float, tooltip: str) -> tuple[str, dict[str, Any]]:
    return ("FLOAT", {"default": default, "min": 0.0, "max": 1.0, "step": 0.001, "tooltip": tooltip})


NODE_CLASS_MAPPINGS = {
    "ControlNetLoader": ControlNetLoader,
    "ControlNetApplyAdvanced": ControlNetApplyAdvanced,
    "ControlNetApply": ControlNetApply,
    "SparseCtrlApply": SparseCtrlApply,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "ControlNetLoader": "Load ControlNet Model",
    "ControlNetApplyAdvanced": "Apply ControlNet",
    "ControlNetApply": "Apply ControlNet (OLD)",
    "SparseCtrlApply": "Apply SparseCtrl",
}
