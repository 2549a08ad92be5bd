"""Wan Fun camera-control conditioning with ComfyUI's names: ``WanCameraEmbedding`` (a preset camera move as packed
Plücker embeddings), ``CameraPathToWanEmbedding`` (any ``CAMERA_PATH``, e.g. a RealEstate10K file or a composed
move, packed the same way) and ``WanCameraImageToVideo`` (a start image and the embedding as conditioning), for Wan
Fun camera-control models (``models.families.wan.camera``).
"""

from __future__ import annotations

from typing import Any

import torch

from models.clip_vision import ClipVisionOutput
from models.control.camera import CameraPath
from models.control.plucker import plucker_embedding
from models.control.wan_camera import WAN_CAMERA_MOVES, pack_camera_embedding, wan_fun_camera_path
from models.guidance import Conditioning, with_extras
from models.video_vae import VideoVAE
from nodes.camera import CAMERA_PATH
from nodes.latent import MAX_SIZE, check_video_size
from nodes.wan import CATEGORY, encoded_over_zero, video_inputs

WAN_CAMERA_EMBEDDING = "WAN_CAMERA_EMBEDDING"


def _size_inputs() -> dict[str, Any]:
    return {
        "width": ("INT", {"default": 832, "min": 16, "max": MAX_SIZE, "step": 16}),
        "height": ("INT", {"default": 480, "min": 16, "max": MAX_SIZE, "step": 16}),
    }


def _packed(node: str, path: CameraPath, width: int, height: int) -> torch.Tensor:
    try:
        return pack_camera_embedding(plucker_embedding(path, width, height))
    except ValueError as error:
        raise ValueError(f"{node}: {error} (length must be 4k + 1 frames)") from error


class WanCameraEmbedding:
    """A preset camera move as the packed Plücker embedding Wan Fun camera models take."""

    FUNCTION = "embed"
    CATEGORY = "camera"
    RETURN_TYPES = (WAN_CAMERA_EMBEDDING, "INT", "INT", "INT")
    RETURN_NAMES = ("camera_embedding", "width", "height", "length")
    DESCRIPTION = (
        "A camera move (pan, zoom, roll) over the clip as per-pixel Plücker rays, four frames per latent frame, for "
        "Wan Fun camera-control models; passes width, height and length on."
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "camera_pose": (list(WAN_CAMERA_MOVES), {"default": "Static"}),
                **_size_inputs(),
                "length": ("INT", {"default": 81, "min": 1, "max": MAX_SIZE, "step": 4}),
            },
            "optional": {
                "speed": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 10.0, "step": 0.1}),
                "fx": ("FLOAT", {"default": 0.5, "min": 0.0, "max": 1.0, "step": 0.000000001}),
                "fy": ("FLOAT", {"default": 0.5, "min": 0.0, "max": 1.0, "step": 0.000000001}),
                "cx": ("FLOAT", {"default": 0.5, "min": 0.0, "max": 1.0, "step": 0.01}),
                "cy": ("FLOAT", {"default": 0.5, "min": 0.0, "max": 1.0, "step": 0.01}),
            },
        }

    def embed(
        self,
        camera_pose: str,
        width: int,
        height: int,
        length: int,
        speed: float = 1.0,
        fx: float = 0.5,
        fy: float = 0.5,
        cx: float = 0.5,
        cy: float = 0.5,
    ) -> tuple[torch.Tensor, int, int, int]:
        node = "WanCameraEmbedding"
        try:
            path = wan_fun_camera_path(camera_pose, length, width, height, speed, (fx, fy, cx, cy))
        except ValueError as error:
            raise ValueError(f"{node}: {error}") from error
        return _packed(node, path, width, height), width, height, length


class CameraPathToWanEmbedding:
    """Any camera path as the packed Plücker embedding Wan Fun camera models take."""

    FUNCTION = "embed"
    CATEGORY = "camera"
    RETURN_TYPES = (WAN_CAMERA_EMBEDDING,)
    RETURN_NAMES = ("camera_embedding",)
    DESCRIPTION = (
        "Packs a camera path (a preset, a composed move or a RealEstate10K file; 4k + 1 frames) as the camera "
        "embedding of Wan Fun camera-control models."
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"camera_path": (CAMERA_PATH, {}), **_size_inputs()}}

    def embed(self, camera_path: CameraPath, width: int, height: int) -> tuple[torch.Tensor]:
        if not isinstance(camera_path, CameraPath):
            raise ValueError(f"CameraPathToWanEmbedding: camera_path must be a CAMERA_PATH, not {type(camera_path)}")
        return (_packed("CameraPathToWanEmbedding", camera_path, width, height),)


class WanCameraImageToVideo:
    """Conditioning of Wan Fun camera-control models: a start image and a camera embedding."""

    FUNCTION = "encode"
    CATEGORY = CATEGORY
    RETURN_TYPES = ("CONDITIONING", "CONDITIONING", "LATENT")
    RETURN_NAMES = ("positive", "negative", "latent")
    DESCRIPTION = (
        "Encodes a start image (the latent space's zero elsewhere) and attaches a camera embedding for a Wan Fun "
        "camera-control model; gives an empty latent."
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": video_inputs(),
            "optional": {
                "clip_vision_output": ("CLIP_VISION_OUTPUT", {}),
                "start_image": ("IMAGE", {}),
                "camera_conditions": (WAN_CAMERA_EMBEDDING, {}),
            },
        }

    def encode(
        self,
        positive: Conditioning,
        negative: Conditioning,
        vae: VideoVAE,
        width: int,
        height: int,
        length: int,
        batch_size: int,
        clip_vision_output: ClipVisionOutput | None = None,
        start_image: torch.Tensor | None = None,
        camera_conditions: torch.Tensor | None = None,
    ) -> tuple[list[list[Any]], list[list[Any]], dict[str, torch.Tensor]]:
        check_video_size(width, height, length, vae.latent_format.spatial_ratio)
        extras: dict[str, Any] = {}
        if start_image is not None:
            extras["concat_latent_image"] = encoded_over_zero(vae, start_image, width, height, length, "start_image")
        latent_frames = vae.latent_format.latent_frames(length)
        if camera_conditions is not None:
            expected = (24, latent_frames, height, width)
            if camera_conditions.dim() != 5 or tuple(camera_conditions.shape[1:]) != expected:
                raise ValueError(
                    f"WanCameraImageToVideo: camera_conditions is {tuple(camera_conditions.shape)}; for this width, "
                    f"height and length it must be [1, {', '.join(map(str, expected))}] (from WanCameraEmbedding "
                    "with the same size and length)"
                )
            extras["camera_conditions"] = camera_conditions
        if clip_vision_output is not None:
            extras["clip_vision_output"] = clip_vision_output
        fmt = vae.latent_format
        latent = torch.zeros(
            batch_size, fmt.channels, latent_frames, height // fmt.spatial_ratio, width // fmt.spatial_ratio
        )
        return (
            with_extras(positive, "positive", extras),
            with_extras(negative, "negative", extras),
            {"samples": latent},
        )


NODE_CLASS_MAPPINGS = {
    "WanCameraEmbedding": WanCameraEmbedding,
    "CameraPathToWanEmbedding": CameraPathToWanEmbedding,
    "WanCameraImageToVideo": WanCameraImageToVideo,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "WanCameraEmbedding": "Wan Camera Embedding",
    "CameraPathToWanEmbedding": "Camera Path To Wan Embedding",
    "WanCameraImageToVideo": "Wan Camera Image To Video",
}
