"""ControlNet nodes with ComfyUI's sockets: ``ControlNetLoader`` loads a Stable Diffusion 1.5 ControlNet file (the
original ``control_v11*_sd15_*`` layout or diffusers') into the memory manager as ``CONTROL_NET``."""

from __future__ import annotations

from typing import Any

from graph.context import current_context
from models.controlnet.loading import ControlNet, load_controlnet
from models.errors import ModelLoadError
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


NODE_CLASS_MAPPINGS = {"ControlNetLoader": ControlNetLoader}
NODE_DISPLAY_NAME_MAPPINGS = {"ControlNetLoader": "Load ControlNet Model"}
